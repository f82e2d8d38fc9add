// Autosave while typing, skip logic decided by the server, and conflicts between people of
// one firm shown beside the field. The server is the authority: without this script every
// page still works with plain form posts.
//
// Every save sends the whole page and, in "shown", what the page showed for each field; the
// server stores only what this person changed and reports fields someone else changed in
// the meantime. One save is in flight at a time, so saves arrive in order; a failed save is
// retried with backoff and "Saved" appears only once the server has confirmed.
(function () {
  "use strict";
  var form = document.getElementById("questionnaire");
  if (!form) { return; }
  var url = form.dataset.autosaveUrl;
  var delay = parseInt(form.dataset.autosaveDelay || "1200", 10);
  var status = document.getElementById("autosave-status");
  var lang = document.documentElement.lang || undefined;
  var shown = JSON.parse(form.elements.shown.value || "{}");
  var timer = null;       // a save waiting to be sent
  var inFlight = null;    // the save on its way
  var unsent = false;     // changes not yet confirmed by the server
  var backoff = 0;
  var stopped = false;

  function say(text, warn) {
    if (!status) { return; }
    status.textContent = text;
    status.classList.toggle("autosave-status--warn", !!warn);
  }

  function names() { return Object.keys(shown); }

  function inputs(name) {
    return Array.prototype.filter.call(form.elements, function (el) { return el.name === name; });
  }

  function valueOf(name) {
    var els = inputs(name);
    if (!els.length) { return undefined; }
    if (els[0].type === "checkbox") {
      return els.filter(function (el) { return el.checked; }).map(function (el) { return el.value; });
    }
    if (els[0].type === "radio") {
      var on = els.filter(function (el) { return el.checked; })[0];
      return on ? on.value : "";
    }
    return els[0].value;
  }

  function setValue(name, value) {
    inputs(name).forEach(function (el) {
      if (el.type === "checkbox") { el.checked = Array.isArray(value) && value.indexOf(el.value) >= 0; }
      else if (el.type === "radio") { el.checked = el.value === value; }
      else if (el.value !== value) { el.value = Array.isArray(value) ? value.join(" ") : value; }
    });
  }

  function same(a, b) {
    var norm = function (v) { return Array.isArray(v) ? v.slice().sort().join("\u0000") : String(v == null ? "" : v); };
    return norm(a) === norm(b);
  }

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

  function payload() {
    var data = new FormData(form);
    data.delete("action");
    data.delete("decide");
    data.set("shown", JSON.stringify(shown));
    data.set("clock", String(Date.now()));
    return data;
  }

  function sentValues() {
    var sent = {};
    names().forEach(function (name) { sent[name] = valueOf(name); });
    return sent;
  }

  // The server's answer: what is stored now, and the fields in conflict.
  function settle(body, sent) {
    if (body.relevant) { applyRelevance(body.relevant); }
    var current = body.current || {};
    var conflicts = body.conflicts || {};
    Object.keys(current).forEach(function (name) {
      if (conflicts[name] || document.getElementById(name + "-conflict")) { return; }
      var now = valueOf(name);
      if (same(now, sent[name])) {
        // Untouched since sent: show what is stored (another person's answer included).
        if (!same(now, current[name])) { setValue(name, current[name]); }
        shown[name] = current[name];
      } else if (same(current[name], sent[name])) {
        shown[name] = current[name];
      }
    });
    form.elements.shown.value = JSON.stringify(shown);
    var first = null;
    Object.keys(conflicts).forEach(function (name) {
      var old = document.getElementById(name + "-conflict");
      var holder = document.createElement("div");
      holder.innerHTML = conflicts[name];
      var panel = holder.firstElementChild;
      if (old) { old.replaceWith(panel); return; }
      var block = document.getElementById("q-" + name);
      var after = block && (block.querySelector("legend") || block.querySelector("label"));
      if (!block) { return; }
      var hint = block.querySelector(".form-text");
      (hint || after).insertAdjacentElement("afterend", panel);
      first = first || panel;
    });
    if (first) {
      say(status.dataset.conflictText, true);
      first.focus();
    }
  }

  function send() {
    timer = null;
    if (inFlight || stopped) { if (!stopped) { unsent = true; } return inFlight; }
    unsent = false;
    var sent = sentValues();
    var data = payload();
    inFlight = fetch(url, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" }
    }).then(function (response) {
      var json = (response.headers.get("Content-Type") || "").indexOf("json") >= 0;
      if (response.status >= 500 || response.status === 429) { throw new Error("retry"); }
      if (!json || response.redirected) {
        // Signed out, or refused: retrying will not help; the page post will say why.
        stopped = true;
        return { body: {} };
      }
      return response.json().then(function (body) { return { body: body }; });
    }).then(function (result) {
      var body = result.body;
      inFlight = null;
      if (stopped) { unsent = true; say(status.dataset.stoppedText, true); return; }
      if (body.redirect) { window.location.assign(body.redirect); return; }
      backoff = 0;
      settle(body, sent);
      if (unsent) { schedule(0); return; }
      if (!body.conflict && !document.querySelector("[data-conflict]")) {
        var time = new Date().toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
        say(status.dataset.savedText + " " + time);
      }
    }).catch(function () {
      inFlight = null;
      unsent = true;
      backoff = Math.min(backoff ? backoff * 2 : 1000, 30000);
      say(status.dataset.retryText, true);
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(send, backoff);
    });
    return inFlight;
  }

  function schedule(wait) {
    unsent = true;
    if (stopped) { return; }
    say(form.dataset.savingText || "…");
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(send, wait);
  }

  function pending() { return unsent || !!inFlight || !!timer; }

  form.addEventListener("input", function (event) {
    var type = event.target.type;
    if (type === "hidden") { return; }
    schedule(type === "radio" || type === "checkbox" ? 150 : delay);
  });
  form.addEventListener("change", function (event) {
    if (event.target.type === "radio" || event.target.type === "checkbox") { schedule(150); }
  });

  // Deciding a conflict: keeping mine stores it over the answer seen; taking the saved one
  // puts it in the field. Either way the page now counts as having shown the saved answer.
  form.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-decide]");
    if (!button) { return; }
    event.preventDefault();
    var panel = button.closest("[data-conflict]");
    var name = panel.dataset.conflict;
    var seen = JSON.parse(panel.querySelector("input[name='seen__" + name + "']").value);
    shown[name] = seen;
    if (button.dataset.decide === "theirs") { setValue(name, seen); }
    form.elements.shown.value = JSON.stringify(shown);
    panel.remove();
    var first = inputs(name)[0];
    if (first) { first.focus(); }
    schedule(0);
  });

  // Moving on: a waiting autosave is superseded by the page save; one on its way is
  // awaited, so the page save carries what the page now shows.
  form.addEventListener("submit", function (event) {
    // Offline, the post would end on the browser's error page: stay, and keep the answers.
    if (navigator.onLine === false) {
      event.preventDefault();
      unsent = true;
      say(status.dataset.offlineText, true);
      status.scrollIntoView({ block: "center" });
      return;
    }
    if (timer) { clearTimeout(timer); timer = null; }
    form.elements.shown.value = JSON.stringify(shown);
    form.elements.clock.value = String(Date.now());
    if (!inFlight || form.dataset.ready) { unsent = false; form.dataset.leaving = "1"; return; }
    event.preventDefault();
    var submitter = event.submitter;
    inFlight.finally(function () {
      form.dataset.ready = "1";
      form.requestSubmit(submitter || undefined);
    });
  });

  window.addEventListener("online", function () { if (unsent && !inFlight) { schedule(0); } });

  // A conflict found by a page post: take the person to it, as autosave does.
  var conflict = form.querySelector("[data-conflict]");
  if (conflict) {
    say(status.dataset.conflictText, true);
    conflict.focus();
  }

  window.addEventListener("beforeunload", function (event) {
    if (form.dataset.leaving || !pending()) { return; }
    if (navigator.sendBeacon) { navigator.sendBeacon(url, payload()); }
    event.preventDefault();
    event.returnValue = status.dataset.leaveText;
    return status.dataset.leaveText;
  });
})();
