/* Tally's ledger pages: the teacher's grid, forms and drill-down (#ledger), and the
   student's own points (#my-grades).

   Every call goes through api.js (loaded first), which sends the page's session token as a
   Bearer token. Every string from the API reaches the DOM through textContent or
   createElement, never innerHTML. */
(function () {
  "use strict";

  var TYPE_NAMES = {
    SEMINAR: "Seminar", EXAM: "Exam", COURSEWORK: "Coursework", HOMEWORK: "Homework", OTHER: "Other", CUSTOM: "Custom",
  };
  var TYPE_CODES = ["SEMINAR", "EXAM", "COURSEWORK", "HOMEWORK", "OTHER", "CUSTOM"];

  // -- small helpers (the shared ones from api.js) ----------------------------------------

  var T = window.Tally;
  var $ = T.$, el = T.el, clear = T.clear, api = T.api, fmtDate = T.fmtDate, setStatus = T.setStatus;

  /** What a teacher types ("7,5", " 7.5 ") as the API's points string ("7.5"); the API judges it. */
  function normPoints(raw) { return T.decimal.normalise(raw); }  // api.js: the API's one grammar

  /** A write whose points may be far outside the usual range: the bonus dialog (bonus.js) asks
      the teacher, and only a confirmed answer sends it again with "confirmBonus": true. A
      declined one comes back as the refusal, so the form keeps the points to correct. */
  async function savingBonus(method, path, body) {
    var r = await api(method, path, body);
    if (window.TallyBonus && window.TallyBonus.needsAnswer(r) && await window.TallyBonus.ask(r, "")) {
      r = await api(method, path, Object.assign({}, body, { confirmBonus: true }));
    }
    return r;
  }

  /** A datetime-local value (the browser's zone) as ISO 8601 with a zone, or null. */
  function isoFromLocal(value) {
    if (!value) return null;
    var d = new Date(value);
    return isNaN(d.getTime()) ? "" : d.toISOString();
  }

  function typeName(code, label) {
    if (code === "CUSTOM") return label ? label : "Custom";
    return TYPE_NAMES[code] || code;
  }

  function capitalise(s) { s = String(s || ""); return s.charAt(0).toUpperCase() + s.slice(1); }

  // -- per-field errors -------------------------------------------------------------------

  function clearErrors(scope) {
    scope.querySelectorAll(".field-error").forEach(function (e) { e.textContent = ""; e.hidden = true; });
    scope.querySelectorAll("[aria-invalid]").forEach(function (e) { e.removeAttribute("aria-invalid"); });
  }

  /** Show a message next to an input (its error element is "<input id>-error"). */
  function setFieldError(input, message) {
    var box = $(input.id + "-error");
    if (box) { box.textContent = capitalise(message); box.hidden = false; }
    input.setAttribute("aria-invalid", "true");
  }

  /** The last part of an API field path ("items.3.points" → "points"); model-level errors by their words. */
  function fieldKey(detail) {
    var key = String(detail.field || "").split(".").pop();
    if ((key === "body" || key === "" || /^\d+$/.test(key)) && /typeLabel/.test(detail.message || "")) key = "typeLabel";
    return key;
  }

  /** Put the API's details next to their fields; returns the messages that have no field here. */
  function showDetails(details, inputsByKey) {
    var rest = [];
    var first = null;
    (Array.isArray(details) ? details : []).forEach(function (d) {
      var input = inputsByKey[fieldKey(d)];
      if (input && !input.closest("[hidden]")) {
        setFieldError(input, d.message);
        first = first || input;
      } else {
        rest.push(d.message);
      }
    });
    if (first) first.focus();
    return rest;
  }

  function fillTypeSelect(select) {
    TYPE_CODES.forEach(function (code) {
      select.appendChild(el("option", { value: code, text: code === "CUSTOM" ? "Custom (with a label)" : TYPE_NAMES[code] }));
    });
  }

  /** Show the label field only for CUSTOM. */
  function wireLabel(select, field) {
    var sync = function () { field.hidden = select.value !== "CUSTOM"; };
    select.addEventListener("change", sync);
    sync();
  }

  // =======================================================================================
  // Teacher page
  // =======================================================================================

  function teacherPage(root) {
    var courseId = Number(root.dataset.courseId);
    var offeringId = Number(root.dataset.offeringId);
    var me = Number(root.dataset.personId);
    var state = { students: [], names: new Map(), drillId: null, bulkRows: [] };
    var status = $("ledger-status");

    function nameOf(personId) {
      if (personId === null || personId === undefined) return "";
      var name = state.names.get(personId);
      var shown = name || "person #" + personId;
      return personId === me ? shown + " (you)" : shown;
    }

    // -- data ------------------------------------------------------------------------------

    async function loadSummary() {
      var r = await api("GET", "/api/grades/groups/" + courseId + "/offerings/" + offeringId + "/summary");
      if (!r.ok) {
        setStatus(status, "The points could not be loaded: " + r.data.message, "bad");
        return false;
      }
      state.students = r.data.students || [];
      state.students.forEach(function (s) { if (s.name) state.names.set(s.studentId, s.name); });
      renderGrid();
      renderStudentSelect();
      renderBulkRows();
      return true;
    }

    async function loadNames() {
      // Staff names too, for "who" in an entry's history.
      var r = await api("GET", "/api/groups/" + courseId + "/roster?status=all");
      if (r.ok && r.data && Array.isArray(r.data.members)) {
        r.data.members.forEach(function (m) { if (m.name) state.names.set(m.personId, m.name); });
      }
    }

    async function refresh() {
      await loadSummary();
      if (state.drillId !== null) await loadDrill();
    }

    // -- grid ------------------------------------------------------------------------------

    function renderGrid() {
      var table = $("grid");
      var students = state.students;
      var onRoster = students.filter(function (s) { return s.inRoster; });
      $("student-count").textContent = String(onRoster.length);
      $("grid-empty").hidden = students.length > 0;
      table.hidden = students.length === 0;

      // Columns: the fixed types someone has points in, then each custom label in use, then Total.
      var fixed = TYPE_CODES.filter(function (code) {
        return code !== "CUSTOM" && students.some(function (s) { return s.entryCountByType[code] > 0; });
      });
      var labelSet = new Set();
      students.forEach(function (s) { Object.keys(s.breakdownByLabel || {}).forEach(function (l) { labelSet.add(l); }); });
      var labels = Array.from(labelSet).sort(function (a, b) { return a.localeCompare(b); });

      var thead = table.tHead;
      clear(thead);
      var head = el("tr", null, el("th", { scope: "col", text: "Student" }));
      fixed.forEach(function (code) { head.appendChild(el("th", { scope: "col", class: "num", text: TYPE_NAMES[code] })); });
      labels.forEach(function (label) {
        head.appendChild(el("th", { scope: "col", class: "num" }, label, el("span", { class: "sub", text: " custom" })));
      });
      head.appendChild(el("th", { scope: "col", class: "num", text: "Total" }));
      thead.appendChild(head);

      var tbody = table.tBodies[0];
      clear(tbody);
      students.forEach(function (s) {
        var who = el("th", { scope: "row" },
          el("button", { type: "button", class: "link", "data-student": s.studentId,
                         onclick: function () { openDrill(s.studentId); } }, s.name || "(no name)"));
        if (!s.inRoster) who.appendChild(el("span", { class: "tag left", text: "left the course" }));
        var row = el("tr", { class: s.inRoster ? null : "former" }, who);
        fixed.forEach(function (code) { row.appendChild(cell(s.breakdownByType[code])); });
        labels.forEach(function (label) { row.appendChild(cell((s.breakdownByLabel || {})[label] || "0.00")); });
        var total = cell(s.total);
        total.classList.add("total");
        row.appendChild(total);
        tbody.appendChild(row);
      });
    }

    function cell(points) {
      return el("td", { class: points === "0.00" ? "num zero" : "num", text: points });
    }

    function renderStudentSelect() {
      var select = $("add-student");
      var chosen = select.value;
      while (select.options.length > 1) select.remove(1);
      state.students.filter(function (s) { return s.inRoster; }).forEach(function (s) {
        select.appendChild(el("option", { value: s.studentId, text: s.name || s.email || "person #" + s.studentId }));
      });
      select.value = chosen;
      if (select.value !== chosen) select.value = "";
    }

    // -- add one entry ---------------------------------------------------------------------

    var addForm = $("add-form");
    var add = {
      student: $("add-student"), type: $("add-type"), label: $("add-label"), points: $("add-points"),
      description: $("add-description"), graded: $("add-graded"), submit: $("add-submit"), status: $("add-status"),
    };
    fillTypeSelect(add.type);
    wireLabel(add.type, $("add-label-field"));

    addForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      clearErrors(addForm);
      var problems = [];
      var body = { offeringId: offeringId, typeCode: add.type.value, points: normPoints(add.points.value) };
      if (!add.student.value) problems.push([add.student, "choose a student"]);
      else body.studentId = Number(add.student.value);
      if (body.typeCode === "CUSTOM") {
        body.typeLabel = add.label.value.trim();
        if (!body.typeLabel) problems.push([add.label, "a custom entry needs a label"]);
      }
      if (!body.points) problems.push([add.points, "enter the points"]);
      if (add.description.value.trim()) body.description = add.description.value.trim();
      var graded = isoFromLocal(add.graded.value);
      if (graded === "") problems.push([add.graded, "not a valid date and time"]);
      else if (graded) body.gradedAt = graded;
      if (problems.length) {
        problems.forEach(function (p) { setFieldError(p[0], p[1]); });
        problems[0][0].focus();
        setStatus(add.status, "Nothing was saved: check the marked fields.", "bad");
        return;
      }
      add.submit.disabled = true;
      setStatus(add.status, "Saving…", "busy");
      var r = await savingBonus("POST", "/api/grades/entries", body);
      add.submit.disabled = false;
      if (r.ok) {
        var e = r.data;
        setStatus(add.status, "Saved " + e.points + " points (" + typeName(e.typeCode, e.typeLabel) + ") for " + nameOf(e.studentId) + ".", "ok");
        add.points.value = "";
        add.description.value = "";
        add.points.focus();
        await refresh();
      } else {
        var rest = showDetails(r.data.details, {
          studentId: add.student, typeCode: add.type, typeLabel: add.label, points: add.points,
          description: add.description, gradedAt: add.graded,
        });
        setStatus(add.status, "Nothing was saved. " + [r.data.message].concat(rest).join(" "), "bad");
      }
    });

    // -- bulk entry ------------------------------------------------------------------------

    var bulkForm = $("bulk-form");
    var bulk = {
      type: $("bulk-type"), label: $("bulk-label"), description: $("bulk-description"), graded: $("bulk-graded"),
      paste: $("bulk-paste"), fill: $("bulk-fill"), submit: $("bulk-submit"), status: $("bulk-status"),
      tbody: $("bulk-table").tBodies[0],
    };
    fillTypeSelect(bulk.type);
    wireLabel(bulk.type, $("bulk-label-field"));

    /** One row per roster student; typed values and focus survive a rebuild (e.g. after a sync). */
    function renderBulkRows() {
      var roster = state.students.filter(function (s) { return s.inRoster; });
      var sameIds = roster.length === state.bulkRows.length &&
        roster.every(function (s, i) { return state.bulkRows[i].id === s.studentId; });
      if (sameIds) return;
      var kept = new Map(state.bulkRows.map(function (r) { return [r.id, r.input.value]; }));
      var focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.bulkStudent : null;
      clear(bulk.tbody);
      state.bulkRows = roster.map(function (s, index) {
        var id = "bulk-points-" + s.studentId;
        var input = el("input", {
          id: id, type: "text", inputmode: "decimal", autocomplete: "off", class: "points",
          "data-bulk-student": s.studentId, "aria-describedby": id + "-error",
        });
        input.value = kept.get(s.studentId) || "";
        input.addEventListener("keydown", function (ev) { bulkKey(ev, index); });
        input.addEventListener("paste", function (ev) { bulkPaste(ev, index); });
        bulk.tbody.appendChild(el("tr", null,
          el("th", { scope: "row" }, el("label", { for: id, text: s.name || s.email || "person #" + s.studentId })),
          el("td", null, input, el("p", { class: "field-error", id: id + "-error", hidden: true }))));
        return { id: s.studentId, name: s.name, input: input };
      });
      $("bulk-empty").hidden = roster.length > 0;
      if (focused) {
        var again = state.bulkRows.find(function (r) { return String(r.id) === focused; });
        if (again) again.input.focus();
      }
    }

    function bulkKey(ev, index) {
      var rows = state.bulkRows;
      if (ev.key === "Enter" || ev.key === "ArrowDown") {
        ev.preventDefault();
        if (index + 1 < rows.length) { rows[index + 1].input.focus(); rows[index + 1].input.select(); }
        else if (ev.key === "Enter") bulk.submit.focus();
      } else if (ev.key === "ArrowUp") {
        ev.preventDefault();
        if (index > 0) { rows[index - 1].input.focus(); rows[index - 1].input.select(); }
      }
    }

    /** Lines of a pasted column; the line break a spreadsheet adds after the last cell is dropped. */
    function columnLines(text) {
      var lines = String(text || "").replace(/\r\n?/g, "\n").split("\n");
      if (lines.length > 1 && lines[lines.length - 1].trim() === "") lines.pop();
      return lines;
    }

    /** Fill the inputs from row `start` down; returns how many lines did not fit. */
    function fillFrom(start, lines) {
      var rows = state.bulkRows;
      lines.forEach(function (line, i) {
        if (start + i < rows.length) rows[start + i].input.value = line.trim();
      });
      return Math.max(0, start + lines.length - rows.length);
    }

    function bulkPaste(ev, index) {
      // Pasting a copied spreadsheet column into one input fills the column from there down.
      var text = ev.clipboardData ? ev.clipboardData.getData("text") : "";
      if (!/[\r\n]/.test(text)) return;
      ev.preventDefault();
      reportFill(fillFrom(index, columnLines(text)));
    }

    function reportFill(extra) {
      if (extra > 0) setStatus(bulk.status, extra + " pasted line(s) had no student left and were ignored.", "bad");
      else setStatus(bulk.status, "Points filled in roster order. Check them, then Save all.");
    }

    bulk.fill.addEventListener("click", function () {
      if (!bulk.paste.value.trim()) {
        setStatus(bulk.status, "Paste a column of numbers into the box first.", "bad");
        bulk.paste.focus();
        return;
      }
      clearErrors(bulkForm);
      reportFill(fillFrom(0, columnLines(bulk.paste.value)));
    });

    bulkForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      clearErrors(bulkForm);
      var items = [];
      var rowOfItem = [];
      state.bulkRows.forEach(function (row) {
        var points = normPoints(row.input.value);
        if (points === "") return;  // an empty input means "no entry for this student"
        items.push({ studentId: row.id, points: points });
        rowOfItem.push(row);
      });
      var body = { offeringId: offeringId, typeCode: bulk.type.value, items: items };
      var problems = [];
      if (body.typeCode === "CUSTOM") {
        body.typeLabel = bulk.label.value.trim();
        if (!body.typeLabel) problems.push([bulk.label, "a custom entry needs a label"]);
      }
      if (bulk.description.value.trim()) body.description = bulk.description.value.trim();
      var graded = isoFromLocal(bulk.graded.value);
      if (graded === "") problems.push([bulk.graded, "not a valid date and time"]);
      else if (graded) body.gradedAt = graded;
      if (problems.length) {
        problems.forEach(function (p) { setFieldError(p[0], p[1]); });
        problems[0][0].focus();
        setStatus(bulk.status, "Nothing was saved: check the marked fields.", "bad");
        return;
      }
      if (!items.length) {
        setStatus(bulk.status, "Enter points for at least one student.", "bad");
        if (state.bulkRows.length) state.bulkRows[0].input.focus();
        return;
      }
      bulk.submit.disabled = true;
      setStatus(bulk.status, "Saving " + items.length + " entries…", "busy");
      var r = await savingBonus("POST", "/api/grades/entries/bulk", body);
      bulk.submit.disabled = false;
      if (r.ok) {
        setStatus(bulk.status, "Saved " + r.data.created + " entries (" + typeName(body.typeCode, body.typeLabel) + ").", "ok");
        state.bulkRows.forEach(function (row) { row.input.value = ""; });
        bulk.paste.value = "";
        await refresh();
        return;
      }
      // All or nothing: the API rolled the whole request back. Mark every bad row.
      var details = Array.isArray(r.data.details) ? r.data.details : [];
      var formLevel = [];
      var firstBad = null;
      var badRows = 0;
      details.forEach(function (d) {
        var row = typeof d.index === "number" ? rowOfItem[d.index] : null;
        if (row) {
          if (!row.input.hasAttribute("aria-invalid")) badRows++;
          var box = $(row.input.id + "-error");
          var msg = capitalise(d.message);
          box.textContent = box.hidden || !box.textContent ? msg : box.textContent + " " + msg;
          box.hidden = false;
          row.input.setAttribute("aria-invalid", "true");
          firstBad = firstBad || row.input;
        } else {
          formLevel.push(d);
        }
      });
      var rest = showDetails(formLevel, {
        typeCode: bulk.type, typeLabel: bulk.label, description: bulk.description, gradedAt: bulk.graded,
      });
      if (firstBad) firstBad.focus();
      var text = "Nothing was saved — entries are saved all together or not at all. " +
        (badRows ? badRows + " of " + items.length + " rows need fixing (marked below); fix them and Save all again. " : "") +
        (badRows ? "" : r.data.message + " ") + rest.join(" ");
      setStatus(bulk.status, text.trim(), "bad");
    });

    // -- drill-down: one student's entries -------------------------------------------------

    var drill = {
      section: $("drill"), heading: $("drill-heading"), summary: $("drill-summary"), status: $("drill-status"),
      tbody: $("drill-table").tBodies[0], table: $("drill-table"), empty: $("drill-empty"),
    };
    $("drill-close").addEventListener("click", function () {
      var id = state.drillId;
      state.drillId = null;
      drill.section.hidden = true;
      var back = document.querySelector('#grid button[data-student="' + id + '"]');
      if (back) back.focus();
    });

    async function openDrill(studentId) {
      state.drillId = studentId;
      drill.heading.textContent = "Entries of " + nameOf(studentId);
      setStatus(drill.status, "");
      drill.section.hidden = false;
      drill.heading.focus();
      await loadDrill();
    }

    async function loadDrill() {
      var studentId = state.drillId;
      var r = await api("GET", "/api/grades/students/" + studentId + "/offerings/" + offeringId + "?includeVoided=true");
      if (studentId !== state.drillId) return;  // another student was opened meanwhile
      if (!r.ok) {
        setStatus(drill.status, "The entries could not be loaded: " + r.data.message, "bad");
        return;
      }
      var d = r.data;
      if (d.name) state.names.set(studentId, d.name);
      drill.heading.textContent = "Entries of " + nameOf(studentId);
      var voided = d.entries.filter(function (e) { return e.status !== "ACTIVE"; }).length;
      drill.summary.textContent = "Total " + d.total + " points from " + d.entryCount + " active " +
        (d.entryCount === 1 ? "entry" : "entries") + (voided ? " (" + voided + " voided, not counted)" : "") + ".";
      var entries = d.entries.slice().sort(newestFirst);
      clear(drill.tbody);
      drill.empty.hidden = entries.length > 0;
      drill.table.hidden = entries.length === 0;
      entries.forEach(function (e) { drill.tbody.appendChild(entryRow(e)); });
    }

    /** The drill's row of an entry (`into`: fill that row again, e.g. with someone else's change). */
    function entryRow(e, into) {
      var active = e.status === "ACTIVE";
      var row = into || el("tr", { "data-entry": e.id });
      clear(row);
      row.className = active ? "" : "voided";
      row.appendChild(el("td", { class: "strike", text: fmtDate(e.gradedAt || e.createdAt) }));
      row.appendChild(el("td", { class: "strike", text: typeName(e.typeCode, e.typeLabel) }));
      row.appendChild(el("td", { class: "strike", text: e.description || "" }));
      row.appendChild(el("td", { class: "num strike", text: e.points }));
      var state_ = active
        ? el("td", null, "Active", e.version > 1 ? el("span", { class: "muted", text: " · corrected (v" + e.version + ")" }) : null)
        : el("td", null, el("strong", { text: "Voided" }), el("br"),
             el("span", { class: "reason", text: "Reason: " + (e.voidReason || "") }), el("br"),
             el("span", { class: "muted small", text: "by " + nameOf(e.voidedBy) + ", " + fmtDate(e.voidedAt) }));
      row.appendChild(state_);
      var actions = el("td", { class: "actions" });
      var label = typeName(e.typeCode, e.typeLabel) + " " + e.points;
      if (active) {
        actions.appendChild(el("button", { type: "button", class: "secondary", "aria-label": "Correct " + label,
                                           onclick: function () { openCorrect(row, e); } }, "Correct"));
        actions.appendChild(el("button", { type: "button", class: "secondary", "aria-label": "Void " + label,
                                           onclick: function () { openVoid(row, e); } }, "Void"));
      }
      actions.appendChild(el("button", { type: "button", class: "secondary", "aria-label": "History of " + label,
                                         onclick: function () { openHistory(row, e); } }, "History"));
      row.appendChild(actions);
      return row;
    }

    /** Another teacher saved the entry meanwhile (409 with the entry as it is now): show their change
        in the row, take its version for the next save, and say what happened. */
    function showTheirChange(row, e, current, status, what) {
      Object.keys(current).forEach(function (k) { e[k] = current[k]; });
      entryRow(e, row);
      var by = e.status === "ACTIVE" ? (e.updatedBy || e.createdBy) : e.voidedBy;
      var at = e.status === "ACTIVE" ? (e.updatedAt || e.createdAt) : e.voidedAt;
      var now = e.status === "ACTIVE"
        ? "it is now " + e.points + " points (" + typeName(e.typeCode, e.typeLabel) + ", version " + e.version + ")"
        : "it was voided (" + (e.voidReason || "no reason") + ")";
      var rest = e.status === "ACTIVE"
        ? " Your " + what + " was not saved. Your values are still in the form: save again to put them over it, or cancel."
        : " Your " + what + " was not saved.";
      setStatus(status, "Someone else changed this entry while you were editing: " + now + ", by " + nameOf(by) +
        (at ? " at " + fmtDate(at) : "") + "." + rest, "bad");
    }

    /** The panel row under an entry (one at a time per entry); returns its cell. */
    function panelUnder(row, kind) {
      var next = row.nextElementSibling;
      if (next && next.classList.contains("panel")) {
        var same = next.dataset.kind === kind;
        next.remove();
        if (same) return null;  // a second click closes it
      }
      var td = el("td", { colspan: 6 });
      row.after(el("tr", { class: "panel", "data-kind": kind }, td));
      return td;
    }

    function openCorrect(row, e) {
      var td = panelUnder(row, "correct");
      if (!td) return;
      var p = "fix-" + e.id + "-";
      var form = el("form", { class: "inline", novalidate: true, "aria-label": "Correct this entry" });
      var points = el("input", { id: p + "points", type: "text", inputmode: "decimal", autocomplete: "off", class: "points",
                                 "aria-describedby": p + "points-error" });
      points.value = e.points;
      var type = el("select", { id: p + "type", "aria-describedby": p + "type-error" });
      fillTypeSelect(type);
      type.value = e.typeCode;
      var label = el("input", { id: p + "label", type: "text", maxlength: 100, autocomplete: "off", "aria-describedby": p + "label-error" });
      label.value = e.typeLabel || "";
      var labelField = field(p + "label", "Label", label);
      var desc = el("input", { id: p + "description", type: "text", maxlength: 2000, autocomplete: "off",
                               "aria-describedby": p + "description-error" });
      desc.value = e.description || "";
      var save = el("button", { type: "submit" }, "Save correction");
      var status = el("p", { class: "status", role: "status", "aria-live": "polite" });
      form.append(
        el("div", { class: "field-row" }, field(p + "points", "Points", points), field(p + "type", "Type", type), labelField),
        field(p + "description", "Description", desc),
        el("div", { class: "buttons" }, save,
           el("button", { type: "button", class: "secondary", onclick: function () { td.parentNode.remove(); row.querySelector("button").focus(); } }, "Cancel")),
        status);
      td.appendChild(form);
      wireLabel(type, labelField);
      points.focus();
      points.select();
      form.addEventListener("submit", async function (ev) {
        ev.preventDefault();
        clearErrors(form);
        // The version read: a correction saved meanwhile by someone else is not overwritten unseen.
        var body = { points: normPoints(points.value), typeCode: type.value, description: desc.value.trim() || null,
                     version: e.version };
        if (!body.points) { setFieldError(points, "enter the points"); points.focus(); return; }
        if (type.value === "CUSTOM") {
          body.typeLabel = label.value.trim();
          if (!body.typeLabel) { setFieldError(label, "a custom entry needs a label"); label.focus(); return; }
        }
        save.disabled = true;
        setStatus(status, "Saving…", "busy");
        var r = await savingBonus("PUT", "/api/grades/entries/" + e.id, body);
        save.disabled = false;
        if (r.ok) {
          setStatus(drill.status, "Corrected: " + typeName(r.data.typeCode, r.data.typeLabel) + " is now " + r.data.points +
            " points (version " + r.data.version + ").", "ok");
          await refresh();
          drill.heading.focus();
        } else if (r.status === 409 && r.data.details && r.data.details.current) {
          showTheirChange(row, e, r.data.details.current, status, "correction");
          if (e.status !== "ACTIVE") save.disabled = true;
          loadSummary();  // the grid shows their change; the drill keeps the form and its values
        } else {
          var rest = showDetails(r.data.details, { points: points, typeCode: type, typeLabel: label, description: desc });
          setStatus(status, "Nothing was changed. " + [r.data.message].concat(rest).join(" "), "bad");
        }
      });
    }

    function openVoid(row, e) {
      var td = panelUnder(row, "void");
      if (!td) return;
      var id = "void-" + e.id + "-reason";
      var form = el("form", { class: "inline", novalidate: true, "aria-label": "Void this entry" });
      var reason = el("input", { id: id, type: "text", maxlength: 2000, autocomplete: "off", "aria-describedby": id + "-error" });
      var confirm = el("button", { type: "submit", class: "danger" }, "Void entry");
      var status = el("p", { class: "status", role: "status", "aria-live": "polite" });
      form.append(
        field(id, "Reason for voiding (required)", reason),
        el("p", { class: "muted small", text: "The entry stays in the history but no longer counts in any total." }),
        el("div", { class: "buttons" }, confirm,
           el("button", { type: "button", class: "secondary", onclick: function () { td.parentNode.remove(); row.querySelector("button").focus(); } }, "Cancel")),
        status);
      td.appendChild(form);
      reason.focus();
      form.addEventListener("submit", async function (ev) {
        ev.preventDefault();
        clearErrors(form);
        if (!reason.value.trim()) { setFieldError(reason, "give a reason for voiding"); reason.focus(); return; }
        confirm.disabled = true;
        setStatus(status, "Voiding…", "busy");
        var r = await api("DELETE", "/api/grades/entries/" + e.id, { reason: reason.value.trim(), version: e.version });
        confirm.disabled = false;
        if (r.ok) {
          setStatus(drill.status, "Voided " + typeName(e.typeCode, e.typeLabel) + " " + e.points + " points. It no longer counts.", "ok");
          await refresh();
          drill.heading.focus();
        } else if (r.status === 409 && r.data.details && r.data.details.current) {
          showTheirChange(row, e, r.data.details.current, status, "void");
          if (e.status !== "ACTIVE") confirm.disabled = true;
          loadSummary();  // the grid shows their change; the drill keeps the form and its values
        } else {
          var rest = showDetails(r.data.details, { reason: reason });
          setStatus(status, "Nothing was changed. " + [r.data.message].concat(rest).join(" "), "bad");
        }
      });
    }

    async function openHistory(row, e) {
      var td = panelUnder(row, "history");
      if (!td) return;
      var status = el("p", { class: "status", role: "status", "aria-live": "polite", text: "Loading the history…" });
      td.appendChild(status);
      var r = await api("GET", "/api/grades/entries/" + e.id + "/history");
      if (!r.ok) { setStatus(status, "The history could not be loaded: " + r.data.message, "bad"); return; }
      var entry = r.data.entry;
      var revisions = r.data.revisions || [];
      // A revision keeps version N as it was, and who replaced it by N+1 and when.
      var byVersion = new Map(revisions.map(function (v) { return [v.version, v]; }));
      var versions = revisions.concat([entry]).map(function (v) {
        var made = v.version === 1 ? { by: entry.createdBy, at: entry.createdAt }
          : (byVersion.get(v.version - 1) ? { by: byVersion.get(v.version - 1).changedBy, at: byVersion.get(v.version - 1).changedAt }
                                          : { by: entry.updatedBy, at: entry.updatedAt });
        return { v: v, by: made.by, at: made.at };
      });
      var table = el("table", { class: "history" },
        el("caption", { text: "History of this entry (" + versions.length + (versions.length === 1 ? " version)" : " versions)") }),
        el("thead", null, el("tr", null,
          el("th", { scope: "col", text: "Version" }), el("th", { scope: "col", class: "num", text: "Points" }),
          el("th", { scope: "col", text: "Type" }), el("th", { scope: "col", text: "Description" }),
          el("th", { scope: "col", text: "Recorded by" }), el("th", { scope: "col", text: "When" }))));
      var body = el("tbody");
      versions.forEach(function (x) {
        body.appendChild(el("tr", null,
          el("th", { scope: "row", text: "v" + x.v.version + (x.v === entry ? " (current)" : "") }),
          el("td", { class: "num", text: x.v.points }),
          el("td", { text: typeName(x.v.typeCode, x.v.typeLabel) }),
          el("td", { text: x.v.description || "" }),
          el("td", { text: nameOf(x.by) }),
          el("td", { text: fmtDate(x.at) })));
      });
      if (entry.status !== "ACTIVE") {
        body.appendChild(el("tr", { class: "voided-note" },
          el("th", { scope: "row", text: "voided" }),
          el("td", { colspan: 3, text: "Reason: " + (entry.voidReason || "") }),
          el("td", { text: nameOf(entry.voidedBy) }),
          el("td", { text: fmtDate(entry.voidedAt) })));
      }
      table.appendChild(body);
      td.removeChild(status);
      td.appendChild(table);
    }

    function field(id, labelText, input) {
      return el("div", { class: "field" }, el("label", { for: id, text: labelText }), input,
                el("p", { class: "field-error", id: id + "-error", hidden: true }));
    }

    // -- roster sync -----------------------------------------------------------------------

    var syncButton = $("sync-roster");

    async function syncRoster(auto) {
      syncButton.disabled = true;
      if (!auto) setStatus(status, "Synchronising the roster with the LMS…", "busy");
      var r = await api("POST", "/api/groups/" + courseId + "/roster/sync");
      if (r.ok) {
        var d = r.data;
        setStatus(status, "Roster synchronised: " + d.total + " members in the LMS; " + d.added + " added, " +
          d.updated + " updated, " + d.left + " left the course.", "ok");
      } else if (auto && r.status === 409 && r.data.code === "roster_not_offered") {
        // This course has no roster service: students arrive as they launch. Nothing to say.
      } else {
        setStatus(status, "Roster sync failed: " + r.data.message, "bad");
      }
      syncButton.disabled = false;
      await loadNames();
      await refresh();
    }

    syncButton.addEventListener("click", function () { syncRoster(false); });

    // -- start -----------------------------------------------------------------------------

    (async function () {
      await loadSummary();
      await syncRoster(true);
    })();
  }

  function newestFirst(a, b) {
    var ta = Date.parse(a.gradedAt || a.createdAt) || 0;
    var tb = Date.parse(b.gradedAt || b.createdAt) || 0;
    return tb - ta || b.id - a.id;
  }

  // =======================================================================================
  // Student page
  // =======================================================================================

  async function studentPage(root) {
    var status = $("my-status");
    var r = await api("GET", "/api/grades/students/" + root.dataset.personId + "/offerings/" + root.dataset.offeringId);
    if (!r.ok) {
      setStatus(status, "Your points could not be loaded: " + r.data.message, "bad");
      return;
    }
    var d = r.data;
    var entries = (d.entries || []).slice().sort(newestFirst);
    if (!entries.length) {
      setStatus(status, "");
      $("my-empty").hidden = false;
      return;
    }
    setStatus(status, "");
    $("my-total").textContent = d.total;
    $("my-total-foot").textContent = d.total;

    // Breakdown: the types the student has entries of; custom entries by their label.
    var tbody = $("my-breakdown").tBodies[0];
    clear(tbody);
    TYPE_CODES.forEach(function (code) {
      if (code === "CUSTOM") return;
      if (!entries.some(function (e) { return e.typeCode === code; })) return;
      tbody.appendChild(el("tr", null, el("th", { scope: "row", text: TYPE_NAMES[code] }),
                           el("td", { class: "num", text: d.breakdownByType[code] })));
    });
    Object.keys(d.breakdownByLabel || {}).sort().forEach(function (label) {
      tbody.appendChild(el("tr", null, el("th", { scope: "row" }, label, el("span", { class: "sub", text: " custom" })),
                           el("td", { class: "num", text: d.breakdownByLabel[label] })));
    });
    $("my-totals").hidden = false;

    var list = $("my-entries").tBodies[0];
    clear(list);
    entries.forEach(function (e) {
      list.appendChild(el("tr", null,
        el("td", { text: fmtDate(e.gradedAt || e.createdAt) }),
        el("td", { text: typeName(e.typeCode, e.typeLabel) }),
        el("td", { text: e.description || "" }),
        el("td", { class: "num", text: e.points })));
    });
    $("my-entries-section").hidden = false;
  }

  var teacherRoot = $("ledger");
  if (teacherRoot) teacherPage(teacherRoot);
  var studentRoot = $("my-grades");
  if (studentRoot) studentPage(studentRoot);
})();
