// Trend across rounds: each round's estimate joined by a line, its confidence interval as a
// whisker, as the results pages draw intervals. Data come from a json_script block (the CSP
// forbids inline scripts); a suppressed round arrives as null and leaves a gap.
(function () {
  "use strict";
  var source = document.getElementById("trend-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var lang = document.documentElement.lang || "ko";
  var BLUE = "#0b50d0";
  var INK = "#212529";

  function format(value) {
    if (value === null || value === undefined) { return "—"; }
    var options = { maximumFractionDigits: data.digits, minimumFractionDigits: data.digits };
    var text = value.toLocaleString(lang, options);
    return data.percent ? text + " %" : text;
  }

  function present(value) { return value !== null && value !== undefined; }

  // Each point's interval [low, high] as a vertical whisker with caps.
  var whiskers = {
    id: "trendWhiskers",
    afterDatasetsDraw: function (chart) {
      var meta = chart.getDatasetMeta(0);
      var scale = chart.scales.y, ctx = chart.ctx, area = chart.chartArea;
      ctx.save();
      ctx.beginPath();
      ctx.rect(area.left, area.top, area.right - area.left, area.bottom - area.top);
      ctx.clip();
      ctx.strokeStyle = INK;
      ctx.lineWidth = 1.5;
      meta.data.forEach(function (point, j) {
        var low = data.low[j], high = data.high[j];
        if (!present(low) || !present(high) || !present(data.values[j])) { return; }
        var from = scale.getPixelForValue(low), to = scale.getPixelForValue(high);
        ctx.beginPath();
        ctx.moveTo(point.x, from); ctx.lineTo(point.x, to);
        ctx.moveTo(point.x - 6, from); ctx.lineTo(point.x + 6, from);
        ctx.moveTo(point.x - 6, to); ctx.lineTo(point.x + 6, to);
        ctx.stroke();
      });
      ctx.restore();
    }
  };

  function bounds() {
    var lows = data.low.filter(present), highs = data.high.filter(present);
    var values = data.values.filter(present);
    var top = Math.max.apply(null, highs.concat(values, [0]));
    var bottom = Math.min.apply(null, lows.concat(values, [0]));
    var axis = { beginAtZero: true, ticks: { callback: function (v) { return format(v); } } };
    if (data.percent) { axis.max = Math.min(100, Math.ceil(top / 10) * 10 || 100); }
    else { axis.suggestedMax = top; axis.suggestedMin = bottom; }
    return axis;
  }

  var canvas = document.getElementById("trend-chart");
  if (!canvas) { return; }
  new Chart(canvas, {
    type: "line",
    data: {
      labels: data.labels,
      datasets: [{
        label: data.names.estimate,
        data: data.values,
        borderColor: BLUE,
        backgroundColor: BLUE,
        pointRadius: 5,
        pointHoverRadius: 7,
        borderWidth: 2,
        fill: false,
        spanGaps: false
      }]
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      layout: { padding: { left: 8, right: 16 } },
      scales: { y: bounds(), x: { offset: true } },
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            label: function (item) { return data.names.estimate + ": " + format(item.raw); },
            afterLabel: function (item) {
              var j = item.dataIndex;
              if (!present(data.low[j]) || !present(data.high[j])) { return ""; }
              return data.names.ci + ": " + format(data.low[j]) + " – " + format(data.high[j]);
            }
          }
        }
      }
    },
    plugins: [whiskers]
  });
})();
