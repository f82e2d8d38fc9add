// The waves page: while a wave's emails are being sent, its progress element asks the server
// for a fresh copy every two seconds and stops once nothing waits (no inline scripts: CSP).
(function () {
  "use strict";

  function poll(element) {
    fetch(element.dataset.progressUrl, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var fresh = holder.firstElementChild;
        element.replaceWith(fresh);
        if (fresh.dataset.progressUrl) { window.setTimeout(function () { poll(fresh); }, 2000); }
      })
      .catch(function () { window.setTimeout(function () { poll(element); }, 5000); });
  }

  document.querySelectorAll(".wave-progress[data-progress-url]").forEach(function (element) {
    window.setTimeout(function () { poll(element); }, 2000);
  });
})();
