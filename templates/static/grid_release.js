/* The assessment grid's LMS column (issue 15): per student whether the grade is held, released (on its
   way), delivered or superseded, the counts above the grid, and "Release all" with a confirmation that
   says how many grades go to the LMS. Everything from GET /api/offerings/{id}/delivery (`columns`). */
(function () {
  "use strict";
  var T = window.Tally;
  var root = document.getElementById("assessment");
  if (!T || !root) return;
  var $ = T.$, el = T.el, clear = T.clear, api = T.api;
  var key = "assessment-" + root.dataset.assessmentId;
  var base = "/api/offerings/" + root.dataset.offeringId + "/delivery";
  var NAMES = { held: "held", released: "released", delivered: "delivered", superseded: "superseded", failed: "failed" };
  var column = null;
  var timer = null;

  async function refresh() {
    var r = await api("GET", base);
    if (!r.ok) return;
    column = (r.data.columns || []).find(function (c) { return c.key === key; }) || null;
    if (!column) return;
    var byStudent = new Map(column.students.map(function (s) { return [s.studentId, s]; }));
    document.querySelectorAll("#points-grid tr[data-student]").forEach(function (tr) {
      var cell = tr.querySelector(".lms-cell");
      if (!cell) return;
      clear(cell);
      var s = byStudent.get(Number(tr.getAttribute("data-student")));
      var state = s && NAMES[s.state];
      tr.setAttribute("data-lms", state || "none");
      if (state) cell.appendChild(el("span", { class: "pill state-" + state, text: state }));
    });
    var c = column.counts;
    $("grid-lms-counts").textContent = "Release: " + column.release + " · held " + c.held + " · released " + c.released +
      " · delivered " + c.delivered + " · superseded " + c.superseded;
    var button = $("grid-release-all");
    button.textContent = "Release all (" + c.held + ")";
    button.disabled = !c.held;
    $("grid-release").hidden = false;
  }

  function later() {
    if (timer) clearTimeout(timer);
    timer = setTimeout(function () { timer = null; refresh(); }, 400);
  }

  document.addEventListener("tally:grid-changed", later);

  // The grade → number map of the column ("the grade's number"), on the scheme page.
  var numbers = $("grade-numbers");
  if (numbers) numbers.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var body = {};
    numbers.querySelectorAll("input[data-grade]").forEach(function (input) {
      body[input.getAttribute("data-grade")] = T.decimal.normalise(input.value);
    });
    var r = await api("PUT", base + "/columns/" + key, { gradeNumbers: body });
    T.setStatus($("grade-numbers-status"), r.ok
      ? "Saved. The changed numbers go to the LMS with the next release (open the page again for the tables)."
      : "Not saved: " + r.data.message + (Array.isArray(r.data.details) ? " " + r.data.details.map(function (d) {
        return d.message; }).join("; ") : ""), r.ok ? "ok" : "bad");
    later();
  });
  $("grid-release-all").addEventListener("click", async function () {
    var n = column ? column.counts.held : 0;
    if (!n) return;
    var question = "Release " + n + " held grade" + (n === 1 ? "" : "s") + "? " + n + " grade" +
      (n === 1 ? " goes" : "s go") + " to the LMS and to the students.";
    if (!window.confirm(question)) return;
    var r = await api("POST", base + "/columns/" + key + "/release");
    T.setStatus($("grid-status"), r.ok ? r.data.released + " grades released: they go to the LMS and the students now."
      : "Nothing was released: " + r.data.message, r.ok ? "ok" : "bad");
    refresh();
  });
})();
