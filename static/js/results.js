// Results detail charts: bars with confidence-interval whiskers per domain, and the estimate
// across published versions with its CI band. Data come from a json_script block (the CSP
// forbids inline scripts); suppressed cells arrive as null and are not drawn.
(function () {
  "use strict";
  var source = document.getElementById("results-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var lang = document.documentElement.lang || "ko";
  var BLUE = "#0b50d0";
  var BAND = "rgba(11, 80, 208, 0.15)";
  var BAR = "rgba(11, 80, 208, 0.6)";
  var INK = "#212529";
  var OFFICIAL = "#198754";

  function format(value) {
    if (value === null || value === undefined) { return "—"; }
    var options = { maximumFractionDigits: data.digits, minimumFractionDigits: data.digits };
    var text = value.toLocaleString(lang, options);
    return data.percent ? text + " %" : text;
  }

  function fill(template, name, value) {
    return template.replace("%(" + name + ")s", value);
  }

  function ciText(low, high) {
    if (low === null || high === null || low === undefined || high === undefined) { return ""; }
    return data.names.ci + ": " + format(low) + " – " + format(high);
  }

  // Draws each bar's CI [low, high] as a whisker, along the value axis of the chart.
  var whiskers = {
    id: "ciWhiskers",
    afterDatasetsDraw: function (chart) {
      var horizontal = chart.options.indexAxis === "y";
      var scale = horizontal ? chart.scales.x : chart.scales.y;
      var ctx = chart.ctx, area = chart.chartArea;
      chart.data.datasets.forEach(function (dataset, index) {
        var meta = chart.getDatasetMeta(index);
        if (!dataset.low || meta.hidden) { return; }
        ctx.save();
        ctx.beginPath();
        ctx.rect(area.left, area.top, area.right - area.left, area.bottom - area.top);
        ctx.clip();
        ctx.strokeStyle = INK;
        ctx.lineWidth = 1.5;
        meta.data.forEach(function (bar, j) {
          var low = dataset.low[j], high = dataset.high[j];
          if (low === null || high === null || low === undefined || high === undefined) { return; }
          var from = scale.getPixelForValue(low), to = scale.getPixelForValue(high);
          var centre = horizontal ? bar.y : bar.x;
          var half = Math.max(3, (horizontal ? bar.height : bar.width) / 4);
          ctx.beginPath();
          if (horizontal) {
            ctx.moveTo(from, centre); ctx.lineTo(to, centre);
            ctx.moveTo(from, centre - half); ctx.lineTo(from, centre + half);
            ctx.moveTo(to, centre - half); ctx.lineTo(to, centre + half);
          } else {
            ctx.moveTo(centre, from); ctx.lineTo(centre, to);
            ctx.moveTo(centre - half, from); ctx.lineTo(centre + half, from);
            ctx.moveTo(centre - half, to); ctx.lineTo(centre + half, to);
          }
          ctx.stroke();
        });
        ctx.restore();
      });
    }
  };

  function largest(values) {
    return values.reduce(function (top, v) { return v !== null && v > top ? v : top; }, 0);
  }

  function smallest(values) {
    return values.reduce(function (low, v) { return v !== null && v < low ? v : low; }, 0);
  }

  // The axis takes in every interval, so whiskers are never cut (Wald intervals of means
  // and totals can go below zero).
  function valueAxis(lows, highs) {
    var axis = { beginAtZero: true, ticks: { callback: function (v) { return format(v); } } };
    if (data.percent) { axis.max = Math.min(100, Math.ceil(largest(highs) / 10) * 10 || 100); }
    else { axis.suggestedMax = largest(highs); axis.suggestedMin = smallest(lows); }
    return axis;
  }

  function drawDomain(domain, index) {
    var canvas = document.getElementById("chart-" + index);
    var box = document.getElementById("box-" + index);
    if (!canvas || !box) { return; }
    // One bar row per value; set through the CSSOM, which the CSP allows.
    box.style.height = Math.max(160, 34 * domain.labels.length + 70) + "px";
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: domain.labels,
        datasets: [{
          label: data.names.estimate,
          data: domain.values,
          low: domain.low,
          high: domain.high,
          backgroundColor: BAR,
          borderColor: BLUE,
          borderWidth: 1
        }]
      },
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { x: valueAxis(domain.low, domain.high) },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (item) { return data.names.estimate + ": " + format(item.raw); },
              afterLabel: function (item) {
                return ciText(domain.low[item.dataIndex], domain.high[item.dataIndex]);
              }
            }
          }
        }
      },
      plugins: [whiskers]
    });
  }

  function drawHistory(history) {
    var canvas = document.getElementById("history-chart");
    if (!canvas || !history.runs.length) { return; }
    var official = history.official;
    var labels = history.runs.map(function (n) { return fill(data.names.version, "number", n); });
    var points = official.map(function (wave, j) {
      return wave ? 6 : (history.runs[j] === data.current ? 4 : 2);
    });
    new Chart(canvas, {
      type: "line",
      data: {
        labels: labels,
        datasets: [
          { label: data.names.low, data: history.low, borderColor: "transparent",
            pointRadius: 0, fill: false, spanGaps: false },
          { label: data.names.ci, data: history.high, borderColor: "transparent",
            backgroundColor: BAND, pointRadius: 0, fill: "-1", spanGaps: false },
          { label: data.names.estimate, data: history.values, borderColor: BLUE,
            backgroundColor: official.map(function (w) { return w ? OFFICIAL : BLUE; }),
            pointStyle: official.map(function (w) { return w ? "rectRot" : "circle"; }),
            pointRadius: points, pointHoverRadius: 7, borderWidth: 2, fill: false,
            spanGaps: false }
        ]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: { y: valueAxis(history.low, history.high), x: { ticks: { maxTicksLimit: 16 } } },
        plugins: {
          legend: { labels: { filter: function (item) { return item.datasetIndex !== 0; } } },
          tooltip: {
            filter: function (item) { return item.datasetIndex === 2; },
            callbacks: {
              label: function (item) { return data.names.estimate + ": " + format(item.raw); },
              afterLabel: function (item) {
                var j = item.dataIndex;
                var lines = [ciText(history.low[j], history.high[j])];
                if (official[j]) { lines.push(fill(data.names.official, "wave", official[j])); }
                return lines.filter(Boolean);
              }
            }
          }
        }
      }
    });
  }

  data.domains.forEach(drawDomain);
  drawHistory(data.history);
})();
