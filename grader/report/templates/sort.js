// Click a column header to sort the table by it (again: the other way). No data comes from
// here: the rows are the page's own, sorted by their cells' data-sort or text.
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.querySelectorAll("th");
  headers.forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.dataset.type === "number";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column], y = b.cells[column];
        var p = x.dataset.sort !== undefined ? x.dataset.sort : x.textContent;
        var q = y.dataset.sort !== undefined ? y.dataset.sort : y.textContent;
        var order = numeric ? parseFloat(p) - parseFloat(q) : p.localeCompare(q);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
