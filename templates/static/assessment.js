/* Tally's assessment pages: the list and the "new assessment" form on the teacher's offering
   page (#assessments), the assessment page's points grid, grades, overrides and grade history
   (#assessment; its scheme workspace is schemes.js), and the student's own grades
   (#my-assessments).

   Every call goes through api.js (loaded first), which sends the page's session token as a
   Bearer token. Strings from the API reach the DOM through textContent or createElement,
   never innerHTML. */
(function () {
  "use strict";

  var TYPE_NAMES = {
    SEMINAR: "Seminar", EXAM: "Exam", COURSEWORK: "Coursework", HOMEWORK: "Homework", OTHER: "Other", CUSTOM: "Custom",
  };
  var STATUS_NAMES = { pending: "pending", graded: "graded", absent: "absent", exempt: "exempt" };

  // -- helpers (api.js's, and these, shared with schemes.js through window.Tally) -------------

  var T = window.Tally;
  var $ = T.$, el = T.el, clear = T.clear, api = T.api, fmtDate = T.fmtDate, setStatus = T.setStatus;

  function svg(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (attrs[key] !== null && attrs[key] !== undefined) node.setAttribute(key, String(attrs[key]));
    });
    return node;
  }

  /** What a teacher types ("7,5", " 7.5 ") as the API's points string ("7.5"); the API judges it. */
  function normPoints(raw) { return T.decimal.normalise(raw); }  // api.js: the API's one grammar

  /** "12.50" → "12.5", "30.00" → "30": how a threshold or a point value reads. */
  function shortNumber(text) {
    if (text === null || text === undefined || text === "") return "";
    var s = String(text);
    if (s.indexOf(".") < 0) return s;
    return s.replace(/0+$/, "").replace(/\.$/, "");
  }

  /** One API problem as a sentence: "Band 7 (3.0): min 41 equals the min of band 6 (2.7) …".
      `band` is the index in the list (from 0); the prefix counts from 1, as the server's words do. */
  function describeProblem(p) {
    if (!p) return "";
    var where = "";
    if (p.band !== null && p.band !== undefined) where = "Band " + (p.band + 1) + (p.grade ? " (" + p.grade + ")" : "") + ": ";
    var field = p.field && p.field !== "body" ? p.field + " " : "";
    var message = String(p.message || "");  // the server already counts bands from 1 in its words
    return where + field + message;
  }

  /** The API's error as one readable line, with its details. */
  function errorText(data) {
    var parts = [data.message];
    if (Array.isArray(data.details) && data.details.length && !/problem/.test(data.message || "")) {
      data.details.forEach(function (d) { parts.push(describeProblem(d)); });
    }
    return parts.join(" ");
  }

  function debounce(fn, ms) {
    var timer = null;
    var wrapped = function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { timer = null; fn.apply(null, args); }, ms);
    };
    wrapped.flush = function () {
      if (timer !== null) { clearTimeout(timer); timer = null; fn(); }
    };
    return wrapped;
  }

  Object.assign(T, {
    svg: svg, normPoints: normPoints, shortNumber: shortNumber, describeProblem: describeProblem, errorText: errorText,
    debounce: debounce,
  });

  // =======================================================================================
  // Offering page: the list of assessments and the form for a new one
  // =======================================================================================

  function assessmentList(root) {
    var offeringId = Number(root.dataset.offeringId);
    var status = $("assessment-list-status");
    var table = $("assessment-list");

    function link(a) {
      return "/assessments/" + a.id;  // opened by a POST carrying the token (session.js), never in the address
    }

    /** "no scheme", "draft v2", "applied v1 …", from the versions (newest first). */
    function schemeState(versions) {
      if (!versions || !versions.length) return "no scheme yet";
      var active = versions.find(function (v) { return v.active; }) || versions[0];
      var applied = versions.find(function (v) { return v.status === "applied"; });
      if (active.status === "applied") return "version " + active.version + " applied " + fmtDate(active.appliedAt);
      var text = "version " + active.version + " draft";
      if (applied) text += " (version " + applied.version + " applied)";
      return text;
    }

    async function load() {
      var r = await api("GET", "/api/offerings/" + offeringId + "/assessments");
      if (!r.ok) { setStatus(status, "The assessments could not be loaded: " + r.data.message, "bad"); return; }
      var list = r.data.assessments || [];
      var versions = await Promise.all(list.map(function (a) {
        return api("GET", "/api/assessments/" + a.id + "/schemes").then(function (v) { return v.ok ? v.data.schemes : null; });
      }));
      var tbody = table.tBodies[0];
      clear(tbody);
      list.forEach(function (a, i) {
        var source = a.source === "ledger"
          ? "ledger" + (a.ledgerTypeCodes && a.ledgerTypeCodes.length ? " (" + a.ledgerTypeCodes.map(function (c) { return TYPE_NAMES[c] || c; }).join(", ") + ")" : " (every type)")
          : (a.tasks.length ? a.tasks.length + (a.tasks.length === 1 ? " task" : " tasks") : "total per student");
        tbody.appendChild(el("tr", { "data-assessment": a.id },
          el("th", { scope: "row" }, el("a", { href: link(a), "data-post": true, text: a.title })),
          el("td", { class: "num", text: a.maxPoints }),
          el("td", { text: source }),
          el("td", { class: "scheme-cell", text: versions[i] === null ? "" : schemeState(versions[i]) })));
      });
      table.hidden = list.length === 0;
      $("assessment-empty").hidden = list.length > 0;
    }

    // -- the form ---------------------------------------------------------------------------

    var form = $("assessment-form");
    var source = $("new-source");
    var tasksBox = $("new-tasks");
    var taskRows = $("new-task-rows");
    var typesBox = $("new-ledger-types");
    var formStatus = $("new-status");
    var taskCount = 0;

    /** Labels follow the rows' positions ("Maximum of task 2"), also after a task was removed. */
    function relabel() {
      Array.from(taskRows.children).forEach(function (row, i) {
        row.querySelector(".task-title").setAttribute("aria-label", "Title of task " + (i + 1));
        row.querySelector(".task-max").setAttribute("aria-label", "Maximum of task " + (i + 1));
        row.querySelector("button").setAttribute("aria-label", "Remove task " + (i + 1));
      });
    }

    function addTask(title, max) {
      taskCount += 1;  // only for unique ids
      var titleInput = el("input", { id: "new-task-title-" + taskCount, type: "text", maxlength: 200, autocomplete: "off",
                                     class: "task-title" });
      titleInput.value = title || "Task " + (taskRows.children.length + 1);
      var maxInput = el("input", { id: "new-task-max-" + taskCount, type: "text", inputmode: "decimal", autocomplete: "off",
                                   class: "points task-max" });
      maxInput.value = max || "";
      var row = el("div", { class: "task-row" }, titleInput, maxInput,
        el("button", { type: "button", class: "secondary", onclick: function () { row.remove(); relabel(); } }, "Remove"));
      taskRows.appendChild(row);
      relabel();
      return maxInput;
    }

    function syncSource() {
      var ledger = source.value === "ledger";
      tasksBox.hidden = ledger;
      typesBox.hidden = !ledger;
    }

    source.addEventListener("change", syncSource);
    syncSource();
    $("new-add-task").addEventListener("click", function () { addTask("", "").previousSibling.focus(); });

    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var body = {
        title: $("new-title").value.trim(), kind: $("new-kind").value, maxPoints: normPoints($("new-max").value),
        source: source.value,
      };
      if (body.source === "ledger") {
        var codes = Array.from(typesBox.querySelectorAll("input:checked")).map(function (c) { return c.value; });
        if (codes.length) body.ledgerTypeCodes = codes;
      } else {
        body.tasks = Array.from(taskRows.children).map(function (row) {
          return { title: row.querySelector(".task-title").value.trim(), maxPoints: normPoints(row.querySelector(".task-max").value) };
        });
      }
      var missing = [];
      if (!body.title) missing.push("a title");
      if (!body.maxPoints) missing.push("the maximum");
      if (missing.length) { setStatus(formStatus, "Nothing was created: enter " + missing.join(" and ") + ".", "bad"); return; }
      var button = $("new-submit");
      button.disabled = true;
      setStatus(formStatus, "Creating…", "busy");
      var r = await api("POST", "/api/offerings/" + offeringId + "/assessments", body);
      button.disabled = false;
      if (!r.ok) {
        var details = (Array.isArray(r.data.details) ? r.data.details : []).map(function (d) {
          var m = /^tasks\.(\d+)\.(\w+)$/.exec(d.field || "");
          var names = { title: "title", maxPoints: "maximum", ledgerTypeCodes: "ledger types", kind: "kind" };
          var where = m ? "Task " + (Number(m[1]) + 1) + " " + (names[m[2]] || m[2])
            : (names[d.field] ? names[d.field].charAt(0).toUpperCase() + names[d.field].slice(1) : d.field || "");
          return where + ": " + d.message + ".";
        });
        setStatus(formStatus, "Nothing was created. " + [r.data.message].concat(details).join(" "), "bad");
        return;
      }
      setStatus(formStatus, "Created “" + r.data.title + "”.", "ok");
      form.reset();
      clear(taskRows);
      syncSource();
      await load();
      var a = table.querySelector('tr[data-assessment="' + r.data.id + '"] a');
      if (a) a.focus();
    });

    load();
  }

  // =======================================================================================
  // Assessment page: points grid, grades, overrides, history
  // =======================================================================================

  function assessmentPage(root) {
    var assessmentId = Number(root.dataset.assessmentId);
    var courseId = Number(root.dataset.courseId);
    var me = Number(root.dataset.personId);
    var source = root.dataset.source;
    var pageStatus = $("a-status");
    var gridStatus = $("grid-status");
    var grid = $("points-grid");
    var state = {
      assessment: null, tasks: [], rows: [], byStudent: new Map(), names: new Map(), roster: [],
      chains: new Map(), workspace: null, writes: 0,
    };

    function nameOf(personId) {
      if (personId === null || personId === undefined) return "";
      var shown = state.names.get(personId) || "person #" + personId;
      return personId === me ? shown + " (you)" : shown;
    }

    /** Columns of point inputs: the tasks, or one "Points" column for an assessment without tasks. */
    function pointColumns() {
      if (source === "ledger") return [];
      if (state.tasks.length) {
        return state.tasks.map(function (t) { return { key: String(t.id), title: t.title, max: t.maxPoints }; });
      }
      return [{ key: "total", title: "Points", max: state.assessment.maxPoints }];
    }

    // -- data -------------------------------------------------------------------------------

    async function loadRoster() {
      var r = await api("GET", "/api/groups/" + courseId + "/roster?status=all");
      if (!r.ok) return;
      state.roster = r.data.members || [];
      state.roster.forEach(function (m) { if (m.name) state.names.set(m.personId, m.name); });
    }

    async function loadAssessment() {
      var r = await api("GET", "/api/assessments/" + assessmentId);
      if (!r.ok) { setStatus(pageStatus, "The assessment could not be loaded: " + r.data.message, "bad"); return false; }
      state.assessment = r.data;
      state.tasks = r.data.tasks || [];
      (r.data.participations || []).forEach(function (p) { if (p.name) state.names.set(p.studentId, p.name); });
      if (source === "ledger" && $("ledger-types")) {
        var codes = r.data.ledgerTypeCodes;
        $("ledger-types").textContent = codes && codes.length
          ? " of type " + codes.map(function (c) { return TYPE_NAMES[c] || c; }).join(", ") : ", of every type";
      }
      return true;
    }

    /** Participations, plus roster students who have none yet (the first entry creates it). */
    function buildRows() {
      var parts = new Map((state.assessment.participations || []).map(function (p) { return [p.studentId, p]; }));
      var rows = [];
      state.roster.forEach(function (m) {
        if (m.roles.indexOf("STUDENT") < 0) return;
        var p = parts.get(m.personId);
        if (!p && m.status !== "active") return;
        rows.push({ studentId: m.personId, name: m.name || "(no name)", left: m.status !== "active", p: p || null });
        parts.delete(m.personId);
      });
      parts.forEach(function (p) {
        rows.push({ studentId: p.studentId, name: p.name || "(no name)", left: true, p: p });
      });
      state.rows = rows;
      state.byStudent = new Map(rows.map(function (r) { return [r.studentId, r]; }));
    }

    /** Load again (after an apply): rows keep their inputs when the grid has the same shape, and a row
        written to while the answer was on its way keeps what its own save returned. */
    async function reload() {
      var since = state.writes;
      var before = state.rows;
      if (!(await loadAssessment())) return false;
      buildRows();
      var same = before.length === state.rows.length && before.every(function (row, i) {
        return row.tr && row.studentId === state.rows[i].studentId;
      });
      if (!same) { renderGrid(); return true; }
      state.rows.forEach(function (fresh, i) {
        var row = before[i];
        if (row.pending || row.lastWrite > since) return;
        row.p = fresh.p;
        row.tr.querySelectorAll("input.cell-input").forEach(function (input) {
          var key = input.dataset.key;
          input.dataset.saved = savedValue(row, key);
          if (document.activeElement !== input && !input.parentNode.classList.contains("error")) input.value = input.dataset.saved;
        });
        fillRow(row);
      });
      state.rows = before;
      state.byStudent = new Map(before.map(function (r) { return [r.studentId, r]; }));
      return true;
    }

    // -- grid -------------------------------------------------------------------------------

    function renderGrid() {
      var cols = pointColumns();
      var thead = grid.tHead;
      clear(thead);
      var head = el("tr", null, el("th", { scope: "col", text: "Student" }));
      cols.forEach(function (c) {
        head.appendChild(el("th", { scope: "col", class: "num" }, c.title, el("span", { class: "sub", text: " / " + shortNumber(c.max) })));
      });
      if (cols.length !== 1 || cols[0].key !== "total") head.appendChild(el("th", { scope: "col", class: "num", text: "Total" }));
      head.appendChild(el("th", { scope: "col", text: "Status" }));
      head.appendChild(el("th", { scope: "col", text: "Grade" }));
      head.appendChild(el("th", { scope: "col", text: "LMS" }));  // held / released / delivered (grid_release.js)
      head.appendChild(el("th", { scope: "col" }, el("span", { class: "sr-only", text: "Actions" })));
      thead.appendChild(head);

      var tbody = grid.tBodies[0];
      clear(tbody);
      state.rows.forEach(function (row, r) {
        var tr = el("tr", { "data-student": row.studentId, class: row.left ? "former" : null });
        var who = el("th", { scope: "row", text: row.name });
        if (row.left) who.appendChild(el("span", { class: "tag left", text: "left the course" }));
        tr.appendChild(who);
        cols.forEach(function (c, ci) { tr.appendChild(pointCell(row, c, r, ci)); });
        if (cols.length !== 1 || cols[0].key !== "total") tr.appendChild(el("td", { class: "num total", "data-total": "" }));
        tr.appendChild(el("td", { class: "status-cell" }, statusSelect(row)));
        tr.appendChild(el("td", { class: "grade-cell" }));
        tr.appendChild(el("td", { class: "lms-cell" }));
        tr.appendChild(el("td", { class: "actions" }));
        tbody.appendChild(tr);
        row.tr = tr;
        fillRow(row);
      });
      grid.hidden = state.rows.length === 0;
      $("grid-empty").hidden = state.rows.length > 0;
    }

    function savedValue(row, key) {
      if (!row.p) return "";
      if (key === "total") return row.p.points === null ? "" : shortNumber(row.p.points);
      var v = (row.p.tasks || {})[key];
      return v === undefined || v === null ? "" : shortNumber(v);
    }

    function pointCell(row, col, r, ci) {
      var id = "pts-" + row.studentId + "-" + col.key;
      var input = el("input", {
        id: id, type: "text", inputmode: "decimal", autocomplete: "off", class: "points cell-input",
        "data-row": r, "data-col": ci, "data-key": col.key, "aria-label": col.title + ", " + row.name,
      });
      input.value = savedValue(row, col.key);
      input.dataset.saved = input.value;
      input.addEventListener("focus", function () { input.select(); });
      input.addEventListener("keydown", function (ev) { cellKey(ev, input); });
      input.addEventListener("change", function () { saveCell(row, col, input); });
      input.addEventListener("paste", function (ev) { pasteBlock(ev, input); });
      return el("td", { class: "num cell" }, input, el("span", { class: "cell-mark", "aria-hidden": "true" }));
    }

    function cellAt(r, c) {
      return grid.querySelector('input.cell-input[data-row="' + r + '"][data-col="' + c + '"]');
    }

    function moveTo(r, c) {
      var target = cellAt(r, c);
      if (target) { target.focus(); return true; }
      return false;
    }

    /** Spreadsheet keys: Enter/↓ down, Shift+Enter/↑ up, ← → across at the edge of the value, Esc undoes. */
    function cellKey(ev, input) {
      var r = Number(input.dataset.row);
      var c = Number(input.dataset.col);
      var len = input.value.length;
      var all = input.selectionStart === 0 && input.selectionEnd === len;
      if (ev.key === "Enter" || ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        moveTo(ev.key === "ArrowUp" || (ev.key === "Enter" && ev.shiftKey) ? r - 1 : r + 1, c);
      } else if (ev.key === "ArrowLeft" && (all || (input.selectionStart === 0 && input.selectionEnd === 0))) {
        if (moveTo(r, c - 1)) ev.preventDefault();
      } else if (ev.key === "ArrowRight" && (all || (input.selectionStart === len && input.selectionEnd === len))) {
        if (moveTo(r, c + 1)) ev.preventDefault();
      } else if (ev.key === "Escape") {
        input.value = input.dataset.saved || "";
        markCell(input, null);
        input.select();
      }
    }

    /** A pasted column (lines) or block (lines of tab-separated cells) fills the grid from this cell on. */
    function pasteBlock(ev, input) {
      var text = (ev.clipboardData || window.clipboardData).getData("text");
      if (!/[\n\t]/.test(text)) return;  // one value: the browser pastes it as usual
      ev.preventDefault();
      var lines = text.replace(/\r\n?/g, "\n").replace(/\n$/, "").split("\n");
      var r0 = Number(input.dataset.row);
      var c0 = Number(input.dataset.col);
      var filled = 0;
      lines.forEach(function (line, i) {
        line.split("\t").forEach(function (value, j) {
          var target = cellAt(r0 + i, c0 + j);
          if (!target) return;
          target.value = value.trim();
          target.dispatchEvent(new Event("change"));
          filled += 1;
        });
      });
      setStatus(gridStatus, "Pasted " + filled + (filled === 1 ? " value" : " values") + "; saving…", "busy");
    }

    function markCell(input, kind, message) {
      var td = input.parentNode;
      td.classList.remove("saving", "saved", "error");
      input.removeAttribute("aria-invalid");
      input.removeAttribute("title");
      var mark = td.querySelector(".cell-mark");
      mark.textContent = "";
      if (!kind) return;
      td.classList.add(kind);
      mark.textContent = kind === "saved" ? "✓" : kind === "error" ? "!" : "…";
      if (kind === "error") {
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("title", message);
      }
    }

    /** Saves of one student run one after the other, so the total shown is the last one stored. */
    function queue(studentId, job) {
      var row = state.byStudent.get(studentId);
      if (row) row.pending = (row.pending || 0) + 1;
      var run = async function () {
        try { await job(); } finally {
          if (row) { row.pending -= 1; row.lastWrite = ++state.writes; }
        }
      };
      var chain = (state.chains.get(studentId) || Promise.resolve()).then(run, run);
      state.chains.set(studentId, chain);
      return chain;
    }

    function saveCell(row, col, input) {
      var value = normPoints(input.value);
      if (value === normPoints(input.dataset.saved || "")) { markCell(input, null); return; }
      markCell(input, "saving");
      return queue(row.studentId, async function () {
        var body = col.key === "total" ? { points: value === "" ? null : value }
          : { tasks: (function () { var t = {}; t[col.key] = value === "" ? null : value; return t; })() };
        var url = "/api/assessments/" + assessmentId + "/points/" + row.studentId;
        var r = await api("PUT", url, body);
        if (window.TallyBonus && window.TallyBonus.needsAnswer(r)) {
          // Above the maximum: the teacher decides in the bonus dialog (bonus.js), the typo is never saved.
          if (await window.TallyBonus.ask(r, col.title + " for " + row.name)) {
            body.confirmBonus = true;
            r = await api("PUT", url, body);
          } else {
            markCell(input, "error", "Not saved: correct the points.");
            setStatus(gridStatus, "Not saved: " + col.title + " for " + row.name + ": correct the points.", "bad");
            input.focus();
            input.select();
            return;
          }
        }
        if (!r.ok) {
          var detail = (Array.isArray(r.data.details) && r.data.details[0]) ? r.data.details[0].message : "";
          var message = detail ? detail.charAt(0).toUpperCase() + detail.slice(1) : r.data.message;
          markCell(input, "error", message);
          setStatus(gridStatus, "Not saved: " + col.title + " for " + row.name + ": " + message, "bad");
          return;
        }
        row.p = Object.assign({}, row.p || {}, r.data);
        input.dataset.saved = savedValue(row, col.key);
        if (document.activeElement !== input) input.value = input.dataset.saved;
        markCell(input, "saved");
        fillRow(row);
        setStatus(gridStatus, "Saved " + col.title + " for " + row.name + ": " + (value === "" ? "cleared" : shortNumber(value)) +
          (row.p.points !== null ? " (total " + shortNumber(row.p.points) + ")" : "") + ".", "ok");
        if (state.workspace) state.workspace.pointsChanged();
      });
    }

    function statusSelect(row) {
      var select = el("select", { class: "status-select", "aria-label": "Status of " + row.name });
      Object.keys(STATUS_NAMES).forEach(function (s) { select.appendChild(el("option", { value: s, text: STATUS_NAMES[s] })); });
      select.addEventListener("change", function () {
        var wanted = select.value;
        queue(row.studentId, async function () {
          var r = await api("PUT", "/api/assessments/" + assessmentId + "/participations/" + row.studentId + "/status", { status: wanted });
          if (!r.ok) {
            select.value = row.p ? row.p.status : "pending";
            setStatus(gridStatus, "Status of " + row.name + " not changed: " + errorText(r.data), "bad");
            return;
          }
          row.p = Object.assign({}, row.p || {}, r.data);
          fillRow(row);
          setStatus(gridStatus, row.name + " is now " + STATUS_NAMES[r.data.status] + ".", "ok");
          if (state.workspace) state.workspace.pointsChanged();
        });
      });
      return select;
    }

    /** The computed cells of a row: total, status, grade with its marker, actions. */
    function fillRow(row) {
      document.dispatchEvent(new CustomEvent("tally:grid-changed"));  // the LMS states follow (grid_release.js)
      var tr = row.tr;
      var p = row.p;
      var total = tr.querySelector("[data-total]");
      if (total) {
        total.textContent = p && p.points !== null && p.points !== undefined ? p.points : "–";
        total.classList.toggle("bonus", !!(p && p.points !== null && Number(p.points) > Number(state.assessment.maxPoints)));
      }
      tr.querySelector(".status-select").value = p ? p.status : "pending";
      var gradeCell = tr.querySelector(".grade-cell");
      clear(gradeCell);
      if (p && p.grade) {
        gradeCell.appendChild(el("strong", { class: "grade", text: p.grade }));
        if (p.override) {
          gradeCell.appendChild(el("span", {
            class: "marker-manual", tabindex: 0, title: "Manual grade: " + (p.overrideReason || ""),
            "aria-label": "manual grade, reason: " + (p.overrideReason || ""), text: "manual",
          }));
        } else if (p.gradeSource === "absent") {
          gradeCell.appendChild(el("span", { class: "muted small", text: " absent" }));
        }
      } else {
        gradeCell.appendChild(el("span", { class: "muted", text: p && p.status === "exempt" ? "exempt" : "–" }));
      }
      var actions = tr.querySelector(".actions");
      clear(actions);
      if (p && p.override) {
        actions.appendChild(el("button", { type: "button", class: "secondary", "aria-label": "Remove the override of " + row.name,
                                           onclick: function () { removeOverride(row); } }, "Remove override"));
      } else {
        actions.appendChild(el("button", { type: "button", class: "secondary", "aria-label": "Override the grade of " + row.name,
                                           onclick: function () { openOverride(row); } }, "Override"));
      }
      actions.appendChild(el("button", { type: "button", class: "secondary", "aria-label": "Grade history of " + row.name,
                                         onclick: function () { openHistory(row); } }, "History"));
    }

    /** The panel row under a student (one at a time per student); returns its cell, or null when it was closed. */
    function panelUnder(row, kind) {
      var next = row.tr.nextElementSibling;
      if (next && next.classList.contains("panel")) {
        var same = next.dataset.kind === kind;
        next.remove();
        if (same) return null;
      }
      var td = el("td", { colspan: row.tr.children.length });
      row.tr.after(el("tr", { class: "panel", "data-kind": kind }, td));
      return td;
    }

    function scaleGrades() {
      return state.workspace ? state.workspace.scaleGrades() : ["1.0", "1.3", "1.7", "2.0", "2.3", "2.7", "3.0", "3.3", "3.7", "4.0", "5.0"];
    }

    function openOverride(row) {
      var td = panelUnder(row, "override");
      if (!td) return;
      var p = "ovr-" + row.studentId + "-";
      var grade = el("select", { id: p + "grade" });
      scaleGrades().forEach(function (g) { grade.appendChild(el("option", { value: g, text: g })); });
      if (row.p && row.p.grade) grade.value = row.p.grade;
      var reason = el("input", { id: p + "reason", type: "text", maxlength: 2000, autocomplete: "off", class: "wide" });
      var save = el("button", { type: "submit" }, "Set manual grade");
      var status = el("p", { class: "status", role: "status", "aria-live": "polite" });
      var form = el("form", { class: "inline", novalidate: true, "aria-label": "Manual grade for " + row.name },
        el("div", { class: "field-row" },
          el("div", { class: "field" }, el("label", { for: p + "grade", text: "Grade" }), grade),
          el("div", { class: "field grow" }, el("label", { for: p + "reason", text: "Reason (required)" }), reason)),
        el("p", { class: "muted small", text: "A manual grade is never overwritten by applying a scheme; remove it to let the scheme grade again." }),
        el("div", { class: "buttons" }, save,
          el("button", { type: "button", class: "secondary", onclick: function () { td.parentNode.remove(); } }, "Cancel")),
        status);
      td.appendChild(form);
      reason.focus();
      form.addEventListener("submit", async function (ev) {
        ev.preventDefault();
        if (!reason.value.trim()) { setStatus(status, "Give a reason for the manual grade.", "bad"); reason.focus(); return; }
        save.disabled = true;
        var r = await api("PUT", "/api/assessments/" + assessmentId + "/participations/" + row.studentId + "/override",
                          { grade: grade.value, reason: reason.value.trim() });
        save.disabled = false;
        if (!r.ok) { setStatus(status, "Not saved: " + errorText(r.data), "bad"); return; }
        row.p = Object.assign({}, row.p || {}, r.data);
        td.parentNode.remove();
        fillRow(row);
        setStatus(gridStatus, row.name + " now has the manual grade " + r.data.grade + ".", "ok");
        row.tr.querySelector(".actions button").focus();
        if (state.workspace) state.workspace.pointsChanged();
      });
    }

    async function removeOverride(row) {
      var r = await api("DELETE", "/api/assessments/" + assessmentId + "/participations/" + row.studentId + "/override");
      if (!r.ok) { setStatus(gridStatus, "The override of " + row.name + " was not removed: " + errorText(r.data), "bad"); return; }
      row.p = Object.assign({}, row.p || {}, r.data);
      fillRow(row);
      setStatus(gridStatus, "Override of " + row.name + " removed; grade now " + (r.data.grade || "none") + ".", "ok");
      row.tr.querySelector(".actions button").focus();
      if (state.workspace) state.workspace.pointsChanged();
    }

    var SOURCE_TEXT = {
      scheme: "scheme", override: "manual grade", override_removed: "manual grade removed", absent: "absent",
      exempt: "exempt", cleared: "cleared",
    };

    async function openHistory(row) {
      var td = panelUnder(row, "history");
      if (!td) return;
      var status = el("p", { class: "status busy", role: "status", text: "Loading the grade history…" });
      td.appendChild(status);
      var r = await api("GET", "/api/assessments/" + assessmentId + "/participations/" + row.studentId + "/history");
      if (!r.ok) { setStatus(status, "The history could not be loaded: " + r.data.message, "bad"); return; }
      var events = r.data.events || [];
      td.removeChild(status);
      if (!events.length) { td.appendChild(el("p", { class: "muted", text: row.name + " has had no grade yet." })); return; }
      var body = el("tbody");
      events.forEach(function (e) {
        var what = SOURCE_TEXT[e.source] || e.source;
        if (e.source === "scheme" || e.source === "absent") what += e.schemeVersion ? " version " + e.schemeVersion : "";
        body.appendChild(el("tr", null,
          el("td", { text: fmtDate(e.at) }),
          el("td", null, el("strong", { text: e.grade || "–" })),
          el("td", null, what, e.reason ? el("span", { class: "reason", text: " — " + e.reason }) : null),
          el("td", { class: "num", text: e.points || "–" }),
          el("td", { text: nameOf(e.actorId) })));
      });
      td.appendChild(el("table", { class: "history" },
        el("caption", { text: "Grade history of " + row.name + " (oldest first)" }),
        el("thead", null, el("tr", null, el("th", { scope: "col", text: "When" }), el("th", { scope: "col", text: "Grade" }),
          el("th", { scope: "col", text: "Produced by" }), el("th", { scope: "col", class: "num", text: "Points then" }),
          el("th", { scope: "col", text: "Who" }))),
        body));
    }

    // -- start ------------------------------------------------------------------------------

    (async function () {
      await loadRoster();
      if (!(await reload())) return;
      setStatus(pageStatus, "");
      if (window.TallySchemes) {
        state.workspace = window.TallySchemes.start({
          assessmentId: assessmentId, maxPoints: state.assessment.maxPoints, activeSchemeId: state.assessment.activeSchemeId,
          nameOf: nameOf,
          onApplied: async function () { await reload(); },
        });
      }
    })();
  }

  // =======================================================================================
  // Student page: my grades in the offering's assessments
  // =======================================================================================

  async function myAssessments(root) {
    var r = await api("GET", "/api/me/grades");
    if (!r.ok) {
      root.hidden = false;
      setStatus($("my-assessments-status"), "Your grades could not be loaded: " + r.data.message, "bad");
      return;
    }
    var grades = r.data.grades || [];
    if (!grades.length) return;
    var tbody = $("my-assessment-table").tBodies[0];
    clear(tbody);
    grades.forEach(function (g) {
      var p = g.participation;
      var gradeCell = el("td");
      if (p && p.grade) {
        gradeCell.appendChild(el("strong", { class: "grade", text: p.grade }));
        if (p.override) gradeCell.appendChild(el("span", { class: "marker-manual", title: "Your teacher set this grade by hand.",
                                                           text: "manual decision" }));
      } else {
        gradeCell.appendChild(el("span", { class: "muted", text: p && p.status === "exempt" ? "exempt" : "not graded yet" }));
      }
      if (p && p.status === "absent") gradeCell.appendChild(el("span", { class: "muted small", text: " (absent)" }));
      tbody.appendChild(el("tr", { "data-assessment": g.assessmentId },
        el("th", { scope: "row", text: g.title }),
        el("td", { class: "num", text: (p && p.points !== null ? p.points : "–") + " / " + g.maxPoints }),
        gradeCell));
    });
    root.hidden = false;
  }

  function start() {
    var list = $("assessments");
    if (list) assessmentList(list);
    var page = $("assessment");
    if (page) assessmentPage(page);
    var mine = $("my-assessments");
    if (mine) myAssessments(mine);
  }

  // schemes.js loads after this file; start once both are in.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
