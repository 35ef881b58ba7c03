// govsoc console: the only script. Adds a "select all" box to the queue's bulk form; every
// page works without it (plain forms and links).
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
