// cudnn-matrix results site: sortable tables and a filter box. Pages read fully without it.
"use strict";

function cellValue(row, index) {
  const cell = row.cells[index];
  if (!cell) return "";
  return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
}

function compareValues(a, b) {
  const x = parseFloat(a), y = parseFloat(b);
  if (!isNaN(x) && !isNaN(y) && /^[\d.+-]/.test(a) && /^[\d.+-]/.test(b)) return x - y;
  return a.localeCompare(b, undefined, { numeric: true });
}

function makeSortable(table) {
  const headers = table.tHead ? Array.from(table.tHead.rows[0].cells) : [];
  headers.forEach((header, index) => {
    header.tabIndex = 0;
    header.title = "Sort by this column";
    const sort = () => {
      const ascending = header.getAttribute("aria-sort") !== "ascending";
      headers.forEach((other) => other.removeAttribute("aria-sort"));
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      for (const body of table.tBodies) {
        const rows = Array.from(body.rows);
        rows.sort((r1, r2) => compareValues(cellValue(r1, index), cellValue(r2, index)) * (ascending ? 1 : -1));
        rows.forEach((row) => body.appendChild(row));
      }
    };
    header.addEventListener("click", sort);
    header.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); } });
  });
}

function makeFilter(input) {
  const table = document.getElementById(input.dataset.table);
  if (!table) return;
  input.addEventListener("input", () => {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const body of table.tBodies) {
      for (const row of body.rows) {
        const text = row.textContent.toLowerCase();
        row.hidden = !words.every((word) => text.includes(word));
      }
    }
  });
}

document.querySelectorAll("table.sortable").forEach(makeSortable);
document.querySelectorAll("input.filter").forEach(makeFilter);
