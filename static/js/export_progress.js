// The export job page: polls the job's status, moves the progress bar, and reloads the page
// when the job ends so that the server shows the download link (the CSP forbids inline
// scripts, so this file is all there is).
(function () {
  "use strict";
  var bar = document.getElementById("export-progress");
  if (!bar || !bar.dataset.statusUrl) { return; }
  var label = document.getElementById("export-progress-label");

  function show(data) {
    bar.value = data.progress;
    bar.textContent = data.percent + " %";
    if (label) { label.textContent = data.percent + " %"; }
  }

  function poll() {
    fetch(bar.dataset.statusUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (data) {
        show(data);
        if (data.finished) { window.location.reload(); } else { window.setTimeout(poll, 1500); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }

  window.setTimeout(poll, 1000);
})();
