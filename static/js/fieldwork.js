// The fieldwork dashboard's chart: cumulative completes per day against the target.
// The data come from a json_script block (the CSP forbids inline scripts).
(function () {
  "use strict";
  var source = document.getElementById("progress-data");
  var canvas = document.getElementById("progress-chart");
  if (!source || !canvas || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);

  function line(label, values, colour, dashed) {
    return {
      label: label,
      data: values,
      borderColor: colour,
      backgroundColor: colour,
      borderDash: dashed ? [6, 4] : [],
      borderWidth: 2,
      pointRadius: 0,
      spanGaps: false
    };
  }

  new Chart(canvas, {
    type: "line",
    data: {
      labels: data.labels,
      datasets: [
        line(data.names.completes, data.completes, "#0b50d0", false),
        line(data.names.responses, data.responses, "#198754", false),
        line(data.names.target, data.labels.map(function () { return data.target; }), "#dc3545", true)
      ]
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: { x: { ticks: { maxTicksLimit: 12 } }, y: { beginAtZero: true } }
    }
  });
})();
