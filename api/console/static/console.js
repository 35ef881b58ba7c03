// govsoc console: the only script. Adds a "select all" box to the queue's bulk form, and counts
// an incident's deadlines down (the time left, and "overdue" once one passes) without a reload;
// every page works without it (plain forms and links, the times as of the page's rendering).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("bulk");
  if (!form) { return; }
  var boxes = form.querySelectorAll("input[name=incident]");
  var head = form.querySelector("thead th");
  if (!boxes.length || !head) { return; }
  var all = document.createElement("input");
  all.type = "checkbox";
  all.id = "select-all";
  all.setAttribute("aria-label", document.documentElement.lang === "vi" ? "Chọn tất cả" : "Select all");
  all.addEventListener("change", function () {
    boxes.forEach(function (box) { box.checked = all.checked; });
  });
  head.appendChild(all);
});

// Deadlines: each `.countdown` holds its due time and the page's own phrases ("{d} left",
// "overdue by {d}"); the length reads like the server's (the largest unit reaching 1.5, as
// Babel's format_timedelta), in the page's language.
document.addEventListener("DOMContentLoaded", function () {
  var cells = document.querySelectorAll(".countdown[data-due]");
  if (!cells.length || typeof Intl === "undefined" || !Intl.NumberFormat) { return; }
  var lang = document.documentElement.lang || "en";
  var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
               ["hour", 3600], ["minute", 60], ["second", 1]];
  function length(seconds) {
    var s = Math.abs(seconds);
    for (var i = 0; i < units.length; i++) {
      var value = s / units[i][1];
      if (value >= 1.5 || i === units.length - 1) {
        var n = Math.max(1, Math.round(value));
        return new Intl.NumberFormat(lang, {style: "unit", unit: units[i][0], unitDisplay: "long"}).format(n);
      }
    }
    return "";
  }
  function tick() {
    var now = Date.now();
    cells.forEach(function (cell) {
      var due = Date.parse(cell.getAttribute("data-due"));
      if (isNaN(due)) { return; }
      var left = (due - now) / 1000;
      var phrase = cell.getAttribute(left < 0 ? "data-overdue" : "data-left");
      cell.textContent = phrase.replace("{d}", length(left));
      cell.setAttribute("data-live", "");
      var status = cell.closest("tr") && cell.closest("tr").querySelector(".sla");
      if (left < 0 && status && !status.classList.contains("overdue")) {
        status.className = "sla overdue";
        status.textContent = cell.getAttribute("data-overdue-label");
      }
    });
  }
  tick();
  setInterval(tick, 30000);
});
