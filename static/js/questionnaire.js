// Autosave while typing and skip logic decided by the server (the server is the authority;
// without this script every page still works with plain form posts).
(function () {
  "use strict";
  var form = document.getElementById("questionnaire");
  if (!form) { return; }
  var url = form.dataset.autosaveUrl;
  var delay = parseInt(form.dataset.autosaveDelay || "1200", 10);
  var status = document.getElementById("autosave-status");
  var timer = null;
  var inFlight = null;
  var dirty = false;

  function say(text) { if (status) { status.textContent = text; } }

  function applyRelevance(relevant) {
    var on = {};
    relevant.forEach(function (name) { on[name] = true; });
    form.querySelectorAll("[data-question]").forEach(function (block) {
      var show = !!on[block.dataset.question];
      block.hidden = !show;
      if (block.tagName === "FIELDSET") { block.disabled = !show; }
      block.querySelectorAll("input, textarea, select").forEach(function (input) {
        input.disabled = !show;
      });
    });
  }

  function save() {
    timer = null;
    dirty = false;
    var data = new FormData(form);
    data.delete("action");
    say(form.dataset.savingText || "…");
    inFlight = fetch(url, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" }
    }).then(function (response) {
      return response.json().then(function (body) { return { status: response.status, body: body }; });
    }).then(function (result) {
      var body = result.body;
      if (body.redirect) { window.location.assign(body.redirect); return; }
      if (body.relevant) { applyRelevance(body.relevant); }
      if (typeof body.revision === "number") { form.elements.revision.value = body.revision; }
      if (body.conflict) {
        say(status.dataset.conflictText);
      } else {
        var now = new Date();
        say(status.dataset.savedText + " " + now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
      }
    }).catch(function () {
      say(status.dataset.offlineText);
      dirty = true;
    }).finally(function () { inFlight = null; });
    return inFlight;
  }

  function schedule(wait) {
    dirty = true;
    say(form.dataset.savingText || "…");
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(save, wait);
  }

  form.addEventListener("input", function (event) {
    var type = event.target.type;
    schedule(type === "radio" || type === "checkbox" ? 150 : delay);
  });
  form.addEventListener("change", function (event) {
    if (event.target.type === "radio" || event.target.type === "checkbox") { schedule(150); }
  });

  // Moving on: a pending autosave is superseded by the page save; one already sent is
  // awaited, so the page save carries the revision it produced.
  form.addEventListener("submit", function (event) {
    dirty = false;
    if (timer) { clearTimeout(timer); timer = null; }
    if (!inFlight || form.dataset.ready) { return; }
    event.preventDefault();
    var submitter = event.submitter;
    inFlight.then(function () {
      form.dataset.ready = "1";
      form.requestSubmit(submitter || undefined);
    });
  });

  window.addEventListener("beforeunload", function () {
    if (dirty && navigator.sendBeacon) {
      var data = new FormData(form);
      data.delete("action");
      navigator.sendBeacon(url, data);
    }
  });
})();
