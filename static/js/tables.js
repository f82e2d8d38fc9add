// Long tables, enhanced: sortable columns (table[data-sortable]), a filter box
// (table[data-filterable]) and keyboard-scrollable boxes for wide tables. Without script the
// tables are complete and in their server-side order; nothing depends on this file.
(function () {
  "use strict";
  var strings = document.body.dataset;

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) { return ""; }
    if (cell.dataset.sort !== undefined) { return cell.dataset.sort; }
    return cell.textContent.trim();
  }

  // Numbers as shown on the pages: "1,234", "12.5 %", "—" (none, sorted last).
  function asNumber(text) {
    var cleaned = text.replace(/[,\s%]/g, "");
    if (cleaned === "" || cleaned === "—" || !/^[-+]?\d*\.?\d+(e[-+]?\d+)?$/i.test(cleaned)) {
      return null;
    }
    return parseFloat(cleaned);
  }

  function compare(a, b) {
    var x = asNumber(a), y = asNumber(b);
    if (x !== null && y !== null) { return x - y; }
    if (x !== null) { return -1; }
    if (y !== null) { return 1; }
    return a.localeCompare(b, document.documentElement.lang || "ko");
  }

  function sortBy(table, header, index) {
    var body = table.tBodies[0];
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(header.parentNode.cells, function (th) {
      th.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var order = compare(cellValue(r1, index), cellValue(r2, index));
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function makeSortable(table) {
    var head = table.tHead && table.tHead.rows[table.tHead.rows.length - 1];
    if (!head || !table.tBodies.length || table.tBodies[0].rows.length < 2) { return; }
    Array.prototype.forEach.call(head.cells, function (th, index) {
      if (th.dataset.nosort !== undefined) { return; }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort-button";
      while (th.firstChild) { button.appendChild(th.firstChild); }
      button.setAttribute("title", strings.sortLabel || "Sort");
      th.appendChild(button);
      button.addEventListener("click", function () { sortBy(table, th, index); });
    });
  }

  function makeFilterable(table, number) {
    var body = table.tBodies[0];
    if (!body) { return; }
    var tools = document.createElement("div");
    tools.className = "table-tools";
    var id = "table-filter-" + number;
    var label = document.createElement("label");
    label.htmlFor = id;
    label.className = "form-label mb-0";
    label.textContent = strings.filterLabel || "Filter";
    var input = document.createElement("input");
    input.type = "search";
    input.id = id;
    input.className = "form-control form-control-sm";
    input.setAttribute("aria-controls", table.id || "");
    var count = document.createElement("span");
    count.className = "table-tools__count";
    count.setAttribute("role", "status");
    tools.appendChild(label);
    tools.appendChild(input);
    tools.appendChild(count);
    var box = table.closest(".table-responsive") || table;
    box.parentNode.insertBefore(tools, box);
    var total = body.rows.length;
    input.addEventListener("input", function () {
      var words = input.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      Array.prototype.forEach.call(body.rows, function (row) {
        var text = row.textContent.toLowerCase();
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        row.hidden = !match;
        if (match) { shown += 1; }
      });
      var template = strings.rowsShown || "{shown} of {total} rows";
      count.textContent = words.length ?
        template.replace("{shown}", shown).replace("{total}", total) : "";
    });
  }

  // A box that scrolls must be reachable from the keyboard, and named for screen readers.
  function labelScrollingBoxes() {
    document.querySelectorAll(".table-responsive").forEach(function (box) {
      var hint = box.previousElementSibling;
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      // Say so above a box that scrolls, or its last columns go unseen on a phone.
      if (hint && hint.classList.contains("scroll-hint")) { hint.hidden = !scrolls; }
      else if (scrolls && strings.scrollHint) {
        hint = document.createElement("p");
        hint.className = "scroll-hint small text-body-secondary mb-1";
        hint.textContent = strings.scrollHint;
        box.parentNode.insertBefore(hint, box);
      }
      if (!scrolls) { return; }
      var table = box.querySelector("table");
      var caption = table && table.caption ? table.caption.textContent.trim() : "";
      var heading = box.closest("section") && box.closest("section").querySelector("h2, h3");
      box.setAttribute("tabindex", "0");
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", caption || (heading ? heading.textContent.trim() : strings.tableLabel || "Table"));
    });
  }

  document.querySelectorAll("table[data-sortable]").forEach(makeSortable);
  document.querySelectorAll("table[data-filterable]").forEach(makeFilterable);
  labelScrollingBoxes();
  window.addEventListener("resize", labelScrollingBoxes);
  document.querySelectorAll("details.long-table").forEach(function (details) {
    details.addEventListener("toggle", labelScrollingBoxes);
  });
})();
