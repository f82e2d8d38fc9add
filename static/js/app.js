// Small behaviours shared by every page (no inline scripts: the CSP forbids them).
(function () {
  "use strict";
  document.querySelectorAll(".js-autosubmit").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  document.querySelectorAll(".js-hide-with-script").forEach(function (el) { el.hidden = true; });
  document.querySelectorAll(".js-print").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var button = form.querySelector(".js-submit-once");
      if (!button) { return; }
      if (form.dataset.submitted) { event.preventDefault(); return; }
      form.dataset.submitted = "1";
    });
  });
  // A part of a form that matters only when a radio button is chosen shows only then.
  document.querySelectorAll("[data-shown-with]").forEach(function (part) {
    var radio = document.getElementById(part.dataset.shownWith);
    if (!radio) { return; }
    var update = function () { part.hidden = !radio.checked; };
    radio.form.querySelectorAll("input[name='" + radio.name + "']").forEach(function (other) {
      other.addEventListener("change", update);
    });
    update();
  });
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();
