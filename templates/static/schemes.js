/* The grading-scheme workspace of the assessment page (#workspace), in the seed's phases:
   1. the distribution: statistics and a histogram (SVG, with a table alternative);
   2. the curve: two draggable markers (passing, excellence), one marker per boundary, or bands
      typed as JSON, with a live preview (bands, students per grade, pass rate, problems);
   3. save the draft (a new version once one was applied);
   4. apply, after a confirmation that says how many grades change; then the versions (audit).

   The page never computes bands: every move asks the server (/api/curves/two-point or
   /api/curves/boundaries, then /scheme-check). It only snaps a marker to the step while it is
   dragged, so the value sent is one a teacher could have typed. */
(function () {
  "use strict";

  var T = window.Tally;
  var $ = T.$, el = T.el, svg = T.svg, clear = T.clear, api = T.api, setStatus = T.setStatus;

  // The built-in scales' grades, best first (what the selects and labels show; the server judges).
  var SCALES = {
    german: { grades: ["1.0", "1.3", "1.7", "2.0", "2.3", "2.7", "3.0", "3.3", "3.7", "4.0", "5.0"], failing: ["5.0"] },
    letters: { grades: ["A", "B", "C", "D", "F"], failing: ["F"] },
    pass_fail: { grades: ["pass", "fail"], failing: ["fail"] },
  };

  var CHART = { height: 250, left: 40, right: 20, top: 34, bottom: 34 };

  /** A number as the API reads it: at most two decimals, no trailing zeros. */
  function fmt(n) {
    if (n === null || n === undefined || !isFinite(n)) return "";
    return String(Math.round(n * 100) / 100);
  }

  function num(text) {
    var s = T.normPoints(text);
    if (!T.decimal.valid(s)) return null;  // the API's grammar (api.js)
    return Number(s);
  }

  function start(ctx) {
    var assessmentId = ctx.assessmentId;
    var maxPoints = Number(ctx.maxPoints);
    var ws = {
      mode: "two-point", scale: "german", customScale: null, unit: "points", stepText: "1", rounding: "none",
      absentGrade: undefined, passing: null, excellence: null, boundaries: [],
      bands: null, bandsUnit: "points", problems: [], check: null, config: null,
      scheme: null, versions: [], dist: null, dirty: false, seq: 0, markers: [], geometry: null,
    };
    var ui = {
      state: $("scheme-state"), stats: $("stats"), chart: $("chart"), distEmpty: $("dist-empty"),
      histTable: $("hist-table"), scale: $("scheme-scale"), unit: $("scheme-unit"), step: $("scheme-step"),
      rounding: $("scheme-rounding"), settings: $("settings"), twoPoint: $("two-point-inputs"),
      passing: $("tp-passing"), excellence: $("tp-excellence"), manual: $("manual-inputs"),
      manualFields: $("manual-fields"), bandsBox: $("bands-inputs"), json: $("bands-json"),
      summary: $("preview-summary"), problems: $("problems"), bandsTable: $("bands-table"),
      save: $("save-draft"), saveStatus: $("save-status"), applyOpen: $("apply-open"), confirm: $("apply-confirm"),
      question: $("apply-question"), applyNow: $("apply-now"), applyCancel: $("apply-cancel"),
      applyStatus: $("apply-status"), versions: $("versions"), versionsEmpty: $("versions-empty"),
    };

    // -- scale, unit, step ------------------------------------------------------------------

    function scaleInfo() {
      if (ws.customScale) return { grades: ws.customScale.grades, failing: ws.customScale.failing || [] };
      return SCALES[ws.scale] || SCALES.german;
    }

    function passingGrades() {
      var s = scaleInfo();
      return s.grades.filter(function (g) { return s.failing.indexOf(g) < 0; });
    }

    function top() { return ws.unit === "percent" ? 100 : maxPoints; }
    function unitSuffix(unit) { return (unit || ws.unit) === "percent" ? " %" : " points"; }
    function toPoints(v, unit) { return (unit || ws.unit) === "percent" ? v * maxPoints / 100 : v; }
    function fromPoints(p) { return ws.unit === "percent" ? p * 100 / maxPoints : p; }

    function stepValue() {
      var s = num(ws.stepText);
      return s !== null && s > 0 ? s : 0.01;
    }

    function snap(v) {
      var s = stepValue();
      var snapped = Math.round(Math.round(v / s) * s * 100) / 100;
      return Math.min(top(), Math.max(0, snapped));
    }

    function scaleValue() { return ws.customScale ? ws.customScale : ws.scale; }

    /** The config the current curve stands for (lower-bound form), for the check and the draft. */
    function configOf(bands) {
      var config = { unit: ws.unit, bands: bands.map(function (b) { return { min: b.min, grade: b.grade }; }),
                     scale: scaleValue(), rounding: ws.rounding };
      var step = T.normPoints(ws.stepText);
      if (step) config.step = step;
      if (ws.absentGrade !== undefined && (ws.absentGrade === null || scaleInfo().grades.indexOf(ws.absentGrade) >= 0)) {
        config.absentGrade = ws.absentGrade;
      }
      return config;
    }

    // -- the curve: ask the server ----------------------------------------------------------

    function problemsOf(r) {
      if (Array.isArray(r.data.details) && r.data.details.length && r.data.details[0].message) return r.data.details;
      return [{ band: null, field: null, message: r.data.message }];
    }

    async function bandsFromServer() {
      if (ws.mode === "two-point") {
        return api("POST", "/api/curves/two-point", {
          passing: fmt(ws.passing), excellence: fmt(ws.excellence), step: T.normPoints(ws.stepText) || "1",
          maxPoints: ctx.maxPoints, scale: scaleValue(), unit: ws.unit,
        });
      }
      var body = { boundaries: ws.boundaries.map(fmt), maxPoints: ctx.maxPoints, scale: scaleValue(), unit: ws.unit };
      var step = T.normPoints(ws.stepText);
      if (step) body.step = step;
      return api("POST", "/api/curves/boundaries", body);
    }

    /** The {min, grade} bands of a typed config in any accepted form (to draw them; the server validates). */
    function bandsOfJson(config) {
      if (!config || !Array.isArray(config.bands)) return null;
      var unit = config.unit || (config.bands.some(function (b) { return b && "min_pct" in b; }) ? "percent" : "points");
      var bands = config.bands.map(function (b) {
        var min = b ? (b.min !== undefined ? b.min : b.min_points !== undefined ? b.min_points : b.min_pct) : null;
        return { min: String(min), grade: b ? b.grade : "" };
      });
      return { unit: unit, bands: bands };
    }

    async function recompute() {
      var my = ++ws.seq;
      var config = null;
      var problems = [];
      var bands = null;
      var bandsUnit = ws.unit;
      if (ws.mode === "bands") {
        try {
          config = JSON.parse(ui.json.value);
        } catch (e) {
          problems = [{ band: null, field: "JSON", message: "is not valid: " + e.message }];
        }
        if (!problems.length && (config === null || typeof config !== "object" || Array.isArray(config))) {
          problems = [{ band: null, field: "config", message: "must be an object with a bands list" }];
          config = null;
        }
      } else {
        var r = await bandsFromServer();
        if (my !== ws.seq) return;  // a newer move was made meanwhile
        if (r.ok) {
          bands = r.data.bands;
          config = configOf(bands);
        } else {
          problems = problemsOf(r);
        }
      }
      var check = null;
      if (config) {
        var c = await api("POST", "/api/assessments/" + assessmentId + "/scheme-check", { config: config });
        if (my !== ws.seq) return;
        if (!c.ok) problems = problemsOf(c);
        else if (!c.data.valid) problems = c.data.problems;
        else check = c.data;
        if (ws.mode === "bands" && check) {
          var typed = bandsOfJson(config);
          bands = typed.bands;
          bandsUnit = typed.unit;
        }
      }
      ws.bands = bands;
      ws.bandsUnit = bandsUnit;
      ws.problems = problems;
      ws.check = check;
      ws.config = check ? config : null;
      renderPreview();
      renderChart();
      renderState();
    }

    /** At most one round trip per 150 ms while a marker moves, and always one after the last move:
        the preview follows a long drag instead of waiting for it to stop. */
    function throttled(fn, ms) {
      var timer = null;
      var last = 0;
      var run = function () { timer = null; last = Date.now(); fn(); };
      var schedule = function () {
        if (timer === null) timer = setTimeout(run, Math.max(0, last + ms - Date.now()));
      };
      schedule.flush = function () {
        if (timer !== null) { clearTimeout(timer); run(); }
      };
      return schedule;
    }

    var schedule = throttled(recompute, 150);

    function changed() {
      ws.dirty = true;
      renderState();
      schedule();
    }

    // -- phase 1: distribution --------------------------------------------------------------

    async function loadDistribution() {
      var r = await api("GET", "/api/assessments/" + assessmentId + "/distribution");
      if (!r.ok) { setStatus(ui.summary, "The distribution could not be loaded: " + r.data.message, "bad"); return; }
      ws.dist = r.data;
      renderStats();
      renderChart();
    }

    function renderStats() {
      var d = ws.dist;
      clear(ui.stats);
      ui.distEmpty.hidden = d.count > 0;
      var items = [["Students with points", String(d.count)], ["Maximum possible", T.shortNumber(d.maxPossible)]];
      if (d.count > 0) {
        items = items.concat([
          ["Lowest", d.min], ["Highest", d.max], ["Mean", d.mean], ["Median", d.median], ["Standard deviation", d.stdev],
          ["10th percentile", d.percentiles["10"]], ["25th percentile", d.percentiles["25"]],
          ["75th percentile", d.percentiles["75"]], ["90th percentile", d.percentiles["90"]],
        ]);
      }
      items.forEach(function (it, i) {
        ui.stats.appendChild(el("div", { class: "stat", "data-stat": i }, el("dt", { text: it[0] }), el("dd", { text: T.shortNumber(it[1]) })));
      });
      var tbody = ui.histTable.tBodies[0];
      clear(tbody);
      d.histogram.forEach(function (b) {
        tbody.appendChild(el("tr", null, el("td", { text: T.shortNumber(b.from) + " – " + T.shortNumber(b.to) }),
                             el("td", { class: "num", text: String(b.count) })));
      });
    }

    // -- the chart: histogram, band lines, markers ------------------------------------------

    function niceTick(range, width) {
      var wanted = Math.max(2, Math.floor(width / 60));
      var steps = [0.5, 1, 2, 2.5, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000];
      for (var i = 0; i < steps.length; i++) if (range / steps[i] <= wanted) return steps[i];
      return range / wanted;
    }

    /** The histogram and band lines are redrawn on every change; the markers stay (a drag keeps its pointer). */
    function renderChart() {
      var box = ui.chart;
      if (!ui.svgHolder) {
        ui.svgHolder = el("div", { class: "svg-holder" });
        ui.layer = el("div", { class: "marker-layer" });
        box.appendChild(ui.svgHolder);
        box.appendChild(ui.layer);
      }
      var hist = ws.dist ? ws.dist.histogram : [];
      var W = Math.max(320, box.clientWidth || 640);
      var H = CHART.height;
      var lo = Math.min(0, hist.length ? Number(hist[0].from) : 0);
      var hi = Math.max(maxPoints, hist.length ? Number(hist[hist.length - 1].to) : 0);
      var plotW = W - CHART.left - CHART.right;
      var plotH = H - CHART.top - CHART.bottom;
      var x = function (p) { return CHART.left + (p - lo) / (hi - lo) * plotW; };
      var maxCount = Math.max(1, Math.max.apply(null, hist.map(function (b) { return b.count; }).concat([0])));
      var y = function (c) { return CHART.top + (1 - c / maxCount) * plotH; };
      ws.geometry = { x: x, lo: lo, hi: hi, plotW: plotW };

      var count = ws.dist ? ws.dist.count : 0;
      var root = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img",
                              "aria-labelledby": "chart-title", class: "histogram" });
      root.appendChild(svg("title", { id: "chart-title",
        text: "Histogram of the points: " + count + (count === 1 ? " student" : " students") + " between 0 and " +
              T.shortNumber(ctx.maxPoints) + " points" + (ws.dist && count ? ", median " + T.shortNumber(ws.dist.median) : "") +
              ". The same numbers are in the table below." }));

      // The failing range: below the lowest passing band.
      var passMin = lowestPassingMin();
      if (passMin !== null) {
        root.appendChild(svg("rect", { x: x(lo), y: CHART.top, width: Math.max(0, x(passMin) - x(lo)), height: plotH, class: "fail-zone" }));
      }
      // Grid and y ticks (whole students).
      var yStep = Math.max(1, Math.ceil(maxCount / 5));
      for (var c = 0; c <= maxCount; c += yStep) {
        root.appendChild(svg("line", { x1: CHART.left, x2: W - CHART.right, y1: y(c), y2: y(c), class: "gridline" }));
        root.appendChild(svg("text", { x: CHART.left - 6, y: y(c) + 4, "text-anchor": "end", class: "tick", text: String(c) }));
      }
      // Bars.
      hist.forEach(function (b) {
        var x0 = x(Number(b.from)), x1 = x(Number(b.to));
        var bar = svg("rect", { x: x0 + 0.5, y: y(b.count), width: Math.max(1, x1 - x0 - 1), height: y(0) - y(b.count),
                                class: "bar" + (Number(b.from) >= maxPoints ? " bonus" : "") });
        bar.appendChild(svg("title", { text: T.shortNumber(b.from) + "–" + T.shortNumber(b.to) + " points: " + b.count +
                                             (b.count === 1 ? " student" : " students") }));
        root.appendChild(bar);
      });
      // X axis with ticks in points.
      root.appendChild(svg("line", { x1: CHART.left, x2: W - CHART.right, y1: y(0), y2: y(0), class: "axis" }));
      var tick = niceTick(hi - lo, plotW);
      for (var t = Math.ceil(lo / tick) * tick; t <= hi + 1e-9; t += tick) {
        root.appendChild(svg("line", { x1: x(t), x2: x(t), y1: y(0), y2: y(0) + 5, class: "axis" }));
        root.appendChild(svg("text", { x: x(t), y: y(0) + 18, "text-anchor": "middle", class: "tick", text: fmt(t) }));
      }
      root.appendChild(svg("text", { x: W - CHART.right, y: H - 2, "text-anchor": "end", class: "tick", text: "points" }));
      // Band boundaries from the server's bands, labelled with their grade.
      (ws.bands || []).forEach(function (b, i) {
        var p = toPoints(Number(b.min), ws.bandsUnit);
        if (!(p > 0) || p > hi) return;
        root.appendChild(svg("line", { x1: x(p), x2: x(p), y1: CHART.top - 4, y2: y(0), class: "band-line" }));
        root.appendChild(svg("text", { x: x(p) + 3, y: CHART.top - 8 - (i % 2) * 12, class: "band-label", text: b.grade }));
      });
      clear(ui.svgHolder);
      ui.svgHolder.appendChild(root);
      renderMarkers();
    }

    /** Rebuild the markers only when what they stand for changed; otherwise move them. */
    function renderMarkers() {
      var specs = ws.mode === "bands" ? [] : markerSpecs();
      var signature = ws.mode + "|" + specs.map(function (sp) { return sp.key + ":" + sp.grade; }).join(",");
      if (signature !== ws.markerSignature) {
        ws.markerSignature = signature;
        clear(ui.layer);
        ws.markers = [];
        specs.forEach(function (spec, i) { ui.layer.appendChild(makeMarker(spec, i)); });
      } else {
        ws.markers.forEach(placeMarker);
      }
    }

    function lowestPassingMin() {
      if (!ws.bands) return null;
      var passing = passingGradesOfBands();
      var mins = ws.bands.filter(function (b) { return passing.indexOf(b.grade) >= 0; })
        .map(function (b) { return toPoints(Number(b.min), ws.bandsUnit); });
      return mins.length ? Math.min.apply(null, mins) : null;
    }

    function passingGradesOfBands() {
      if (ws.mode !== "bands") return passingGrades();
      var counts = ws.check ? Object.keys(ws.check.counts) : [];
      // A typed config may use its own scale: every grade but the failing tail passes.
      try {
        var config = JSON.parse(ui.json.value);
        if (config.scale && typeof config.scale === "object") {
          return config.scale.grades.filter(function (g) { return (config.scale.failing || []).indexOf(g) < 0; });
        }
        var named = SCALES[config.scale || "german"];
        if (named) return named.grades.filter(function (g) { return named.failing.indexOf(g) < 0; });
      } catch (e) { /* shown as a problem elsewhere */ }
      return counts;
    }

    /** The draggable values of the mode: two anchors, or one boundary per grade but the worst. */
    function markerSpecs() {
      var grades = scaleInfo().grades;
      if (ws.mode === "two-point") {
        var pg = passingGrades();
        return [
          { key: "excellence", label: "Excellence threshold (" + grades[0] + ")", grade: grades[0], value: ws.excellence },
          { key: "passing", label: "Passing threshold (" + pg[pg.length - 1] + ")", grade: pg[pg.length - 1], value: ws.passing },
        ];
      }
      return ws.boundaries.map(function (v, i) {
        return { key: i, label: "Lower bound of " + grades[i], grade: grades[i], value: v };
      });
    }

    function makeMarker(spec, i) {
      var marker = el("div", {
        class: "cmarker" + (spec.key === "passing" ? " passing" : spec.key === "excellence" ? " excellence" : ""),
        role: "slider", tabindex: 0, "aria-label": spec.label, "aria-valuemin": 0, "data-key": String(spec.key),
      }, el("span", { class: "cmarker-line" }), el("span", { class: "cmarker-handle" }));
      marker.style.top = (CHART.top - 4) + "px";
      marker.style.height = (CHART.height - CHART.top - CHART.bottom + 4) + "px";
      marker.querySelector(".cmarker-handle").style.top = (ws.mode === "manual" ? (i % 3) * 20 : i * 22) + 4 + "px";
      var entry = { spec: spec, node: marker };
      ws.markers.push(entry);
      placeMarker(entry);

      marker.addEventListener("pointerdown", function (ev) {
        if (ev.button !== 0) return;
        ev.preventDefault();
        marker.focus();
        marker.setPointerCapture(ev.pointerId);
        marker.classList.add("dragging");
      });
      marker.addEventListener("pointermove", function (ev) {
        if (!marker.hasPointerCapture(ev.pointerId)) return;
        var g = ws.geometry;
        var rect = ui.chart.getBoundingClientRect();
        var points = g.lo + (ev.clientX - rect.left - CHART.left) / g.plotW * (g.hi - g.lo);
        setValue(spec.key, snap(fromPoints(points)));
      });
      var release = function (ev) {
        if (!marker.hasPointerCapture(ev.pointerId)) return;
        marker.releasePointerCapture(ev.pointerId);
        marker.classList.remove("dragging");
        schedule.flush();
      };
      marker.addEventListener("pointerup", release);
      marker.addEventListener("pointercancel", release);
      marker.addEventListener("keydown", function (ev) {
        var v = currentValue(spec.key);
        var s = stepValue();
        var next = null;
        if (ev.key === "ArrowRight" || ev.key === "ArrowUp") next = v + s;
        else if (ev.key === "ArrowLeft" || ev.key === "ArrowDown") next = v - s;
        else if (ev.key === "PageUp") next = v + 10 * s;
        else if (ev.key === "PageDown") next = v - 10 * s;
        else if (ev.key === "Home") next = 0;
        else if (ev.key === "End") next = top();
        if (next === null) return;
        ev.preventDefault();
        setValue(spec.key, snap(next));
      });
      return marker;
    }

    function placeMarker(entry) {
      var v = currentValue(entry.spec.key);
      var node = entry.node;
      var known = v !== null && isFinite(v);
      node.hidden = !known;
      if (!known) return;
      node.style.left = (ws.geometry.x(toPoints(v)) - 9) + "px";
      node.setAttribute("aria-valuemax", fmt(top()));
      node.setAttribute("aria-valuenow", fmt(v));
      node.setAttribute("aria-valuetext", fmt(v) + unitSuffix() + " for " + entry.spec.grade);
      node.querySelector(".cmarker-handle").textContent = entry.spec.grade + " ≥ " + fmt(v) + (ws.unit === "percent" ? "%" : "");
    }

    function currentValue(key) {
      if (key === "passing") return ws.passing;
      if (key === "excellence") return ws.excellence;
      return ws.boundaries[key];
    }

    /** A marker or an input moved: keep the other one in step, then ask the server. */
    function setValue(key, v) {
      if (currentValue(key) === v) return;
      var input = key === "passing" ? ui.passing : key === "excellence" ? ui.excellence : $("boundary-" + key);
      if (key === "passing") ws.passing = v;
      else if (key === "excellence") ws.excellence = v;
      else ws.boundaries[key] = v;
      // The field being typed in keeps what is typed ("24." on the way to "24.5").
      if (input && document.activeElement !== input) input.value = fmt(v);
      ws.markers.forEach(function (m) { if (m.spec.key === key) placeMarker(m); });
      changed();
    }

    // -- phase 2: inputs of the modes --------------------------------------------------------

    function renderManualFields() {
      clear(ui.manualFields);
      var grades = scaleInfo().grades;
      ws.boundaries.forEach(function (v, i) {
        var id = "boundary-" + i;
        var input = el("input", { id: id, type: "text", inputmode: "decimal", autocomplete: "off", class: "points" });
        input.value = fmt(v);
        input.addEventListener("input", function () {
          var n = num(input.value);
          if (n !== null) setValue(i, n);
        });
        ui.manualFields.appendChild(el("div", { class: "field boundary" },
          el("label", { for: id, text: grades[i] + " from" }), input));
      });
      ui.manualFields.appendChild(el("div", { class: "field boundary" },
        el("span", { class: "label-like", text: grades[grades.length - 1] + " from" }), el("span", { class: "fixed", text: "0" })));
    }

    function showMode() {
      ui.twoPoint.hidden = ws.mode !== "two-point";
      ui.manual.hidden = ws.mode !== "manual";
      ui.bandsBox.hidden = ws.mode !== "bands";
      ui.settings.hidden = ws.mode === "bands";
      $("chart-help").hidden = ws.mode === "bands";
      document.querySelectorAll('input[name="mode"]').forEach(function (r) { r.checked = r.value === ws.mode; });
      if (ws.mode === "manual") renderManualFields();
      renderChart();
    }

    /** Passing at 50 % and excellence at 90 %, on a step at which every grade fits: the server
        chooses (POST /api/curves/defaults), keeping the teacher's step when it fits, so the curve
        the workspace starts from can always be saved. */
    async function defaultAnchors() {
      var body = { maxPoints: ctx.maxPoints, scale: scaleValue(), unit: ws.unit };
      var step = T.normPoints(ws.stepText);
      if (step && T.decimal.valid(step)) body.step = step;
      var r = await api("POST", "/api/curves/defaults", body);
      var note = $("tp-note");
      if (r.ok) {
        if (r.data.stepChanged) {
          note.textContent = "Step " + (step || "1") + " cannot give each grade its own threshold between " +
            r.data.passing + " and " + r.data.excellence + unitSuffix() + "; the step is now " + r.data.step + ".";
          note.hidden = false;
        } else {
          note.hidden = true;
        }
        ws.stepText = r.data.step;
        ws.passing = Number(r.data.passing);
        ws.excellence = Number(r.data.excellence);
        syncSettings();
      } else {
        // A custom scale without a failing grade has no two-point curve: start from 50 % and 90 %.
        note.hidden = true;
        ws.passing = snap(top() * 0.5);
        ws.excellence = snap(top() * 0.9);
      }
      ui.passing.value = fmt(ws.passing);
      ui.excellence.value = fmt(ws.excellence);
    }

    /** Manual boundaries from the two anchors (the server's curve), or evenly kept when it refuses. */
    async function boundariesFromTwoPoint() {
      var n = scaleInfo().grades.length - 1;
      if (ws.passing === null || ws.excellence === null) await defaultAnchors();
      var r = await api("POST", "/api/curves/two-point", {
        passing: fmt(ws.passing), excellence: fmt(ws.excellence), step: T.normPoints(ws.stepText) || "1",
        maxPoints: ctx.maxPoints, scale: scaleValue(), unit: ws.unit,
      });
      if (r.ok && r.data.bands.length === n + 1) {
        ws.boundaries = r.data.bands.slice(0, n).map(function (b) { return Number(b.min); });
      } else if (ws.boundaries.length !== n) {
        // The curve cannot place every grade (e.g. pass/fail): start each boundary at the passing anchor.
        ws.boundaries = [];
        for (var i = 0; i < n; i++) ws.boundaries.push(ws.passing);
      }
    }

    async function switchMode(mode) {
      var from = ws.mode;
      if (mode === from) return;
      if (mode === "bands") {
        var source = ws.config || (ws.bands ? configOf(ws.bands) : ws.scheme ? ws.scheme.config : null);
        ui.json.value = source ? JSON.stringify(source, null, 2) : "";
      } else if (from === "bands") {
        adoptJson();
      }
      if (mode === "manual" && (from !== "bands" || ws.boundaries.length !== scaleInfo().grades.length - 1)) {
        if (from === "two-point" && ws.bands && ws.bands.length === scaleInfo().grades.length) {
          ws.boundaries = ws.bands.slice(0, -1).map(function (b) { return Number(b.min); });
        } else {
          await boundariesFromTwoPoint();
        }
      }
      if (mode === "two-point" && from === "manual" && ws.boundaries.length) {
        var pg = passingGrades().length;
        ws.excellence = ws.boundaries[0];
        ws.passing = ws.boundaries[pg - 1];
        ui.passing.value = fmt(ws.passing);
        ui.excellence.value = fmt(ws.excellence);
      }
      ws.mode = mode;
      showMode();
      changed();
    }

    /** Take over a typed config's settings and bands when they fit the other modes. */
    function adoptJson() {
      var config;
      try { config = JSON.parse(ui.json.value); } catch (e) { return; }
      var typed = bandsOfJson(config);
      if (!typed) return;
      var scale = config.scale || "german";
      if (typeof scale === "string" && SCALES[scale]) { ws.scale = scale; ws.customScale = null; }
      else if (scale && typeof scale === "object" && Array.isArray(scale.grades)) { ws.customScale = scale; }
      ws.unit = typed.unit;
      if (config.step !== undefined) ws.stepText = config.step === null ? "" : String(config.step);
      if (config.rounding) ws.rounding = config.rounding;
      if ("absentGrade" in config) ws.absentGrade = config.absentGrade;
      var grades = scaleInfo().grades;
      if (typed.bands.length === grades.length) ws.boundaries = typed.bands.slice(0, -1).map(function (b) { return Number(b.min); });
      syncSettings();
    }

    function syncSettings() {
      ui.scale.value = ws.customScale ? "" : ws.scale;
      ui.unit.value = ws.unit;
      ui.step.value = ws.stepText;
      ui.rounding.value = ws.rounding;
      ui.scale.disabled = !!ws.customScale;
    }

    // -- preview ------------------------------------------------------------------------------

    function renderPreview() {
      var list = ui.problems.querySelector("ul");
      clear(list);
      ws.problems.forEach(function (p) { list.appendChild(el("li", { text: T.describeProblem(p) })); });
      ui.problems.hidden = ws.problems.length === 0;

      var c = ws.check;
      if (c) {
        var graded = Object.keys(c.counts).reduce(function (sum, g) { return sum + c.counts[g]; }, 0);
        ui.summary.textContent = c.passRate === null
          ? "Nobody has points yet: the counts appear as points are entered."
          : "Pass rate " + c.passRate + " % of " + graded + (graded === 1 ? " graded student" : " graded students") + " · " +
            c.changes + (c.changes === 1 ? " grade would change" : " grades would change") + " on apply.";
        ui.summary.className = "preview-summary ok";
      } else {
        ui.summary.textContent = ws.problems.length ? "No preview while the scheme has problems." : "";
        ui.summary.className = "preview-summary bad";
      }
      ui.summary.dataset.passRate = c && c.passRate !== null ? c.passRate : "";

      var tbody = ui.bandsTable.tBodies[0];
      clear(tbody);
      var bands = ws.bands || [];
      var counts = c ? c.counts : {};
      var most = Math.max.apply(null, [1].concat(bands.map(function (b) { return counts[b.grade] || 0; })));
      var passing = passingGradesOfBands();
      var suffix = ws.bandsUnit === "percent" ? " %" : "";
      bands.forEach(function (b, i) {
        var n = c ? (counts[b.grade] || 0) : null;
        var upper = i === 0 ? "" : T.shortNumber(bands[i - 1].min) + suffix;
        tbody.appendChild(el("tr", { class: passing.indexOf(b.grade) < 0 ? "fail" : null, "data-grade": b.grade },
          el("th", { scope: "row", text: b.grade }),
          el("td", { class: "num", text: T.shortNumber(b.min) + suffix }),
          el("td", { class: "num", text: upper }),
          el("td", { class: "num count", text: n === null ? "–" : String(n) }),
          el("td", { class: "share" }, n ? el("span", { class: "share-bar", style: "width:" + Math.round(n / most * 100) + "%" }) : null)));
      });
      ui.bandsTable.hidden = bands.length === 0;
    }

    // -- phase 3: save --------------------------------------------------------------------------

    function renderState() {
      var s = ws.scheme;
      var text;
      if (!s) text = "No scheme saved yet" + (ws.dirty || ws.check ? ": the bands below are a proposal." : ".");
      else if (s.status === "applied") {
        text = "Version " + s.version + " · applied " + T.fmtDate(s.appliedAt) + " by " + ctx.nameOf(s.appliedBy);
      } else text = "Version " + s.version + " · draft, not applied yet";
      if (s && ws.dirty) text += " · unsaved changes";
      ui.state.textContent = text;
      ui.state.classList.toggle("dirty", !!ws.dirty);
      ui.save.disabled = !ws.config || (!ws.dirty && !!s);
      ui.save.textContent = s && s.status === "applied" ? "Save as version " + (maxVersion() + 1) : "Save draft";
      ui.applyOpen.disabled = !s || ws.dirty;
      ui.applyOpen.textContent = s ? "Apply version " + s.version + "…" : "Apply…";
      ui.applyOpen.title = ws.dirty ? "Save the draft first: apply uses a saved version." : "";
    }

    function maxVersion() {
      return ws.versions.reduce(function (m, v) { return Math.max(m, v.version); }, ws.scheme ? ws.scheme.version : 0);
    }

    ui.save.addEventListener("click", async function () {
      if (!ws.config) { setStatus(ui.saveStatus, "Nothing was saved: fix the problems above first.", "bad"); return; }
      ui.save.disabled = true;
      setStatus(ui.saveStatus, "Saving…", "busy");
      var before = ws.scheme;
      var r = before ? await api("PUT", "/api/schemes/" + before.id, { config: ws.config })
                     : await api("POST", "/api/assessments/" + assessmentId + "/schemes", { config: ws.config });
      if (!r.ok) {
        setStatus(ui.saveStatus, "Nothing was saved. " + T.errorText(r.data), "bad");
        renderState();
        return;
      }
      ws.scheme = r.data;
      ws.dirty = false;
      setStatus(ui.saveStatus, before && before.id !== r.data.id
        ? "Version " + before.version + " was applied and stays as it was; saved the change as draft version " + r.data.version + "."
        : "Saved draft version " + r.data.version + ".", "ok");
      ui.confirm.hidden = true;
      renderState();
      await loadVersions();
    });

    // -- phase 4: apply -------------------------------------------------------------------------

    ui.applyOpen.addEventListener("click", async function () {
      if (!ws.scheme || ws.dirty) return;
      setStatus(ui.applyStatus, "Counting what would change…", "busy");
      var r = await api("GET", "/api/schemes/" + ws.scheme.id + "/preview");
      if (!r.ok) { setStatus(ui.applyStatus, "The preview could not be loaded: " + r.data.message, "bad"); return; }
      var rows = r.data.rows || [];
      var changes = rows.filter(function (x) { return x.changes; }).length;
      var kept = rows.filter(function (x) { return x.override; }).length;
      setStatus(ui.applyStatus, "");
      ui.question.textContent = ws.scheme.status === "applied" && changes === 0
        ? "Version " + ws.scheme.version + " is already applied; applying it again changes nothing."
        : "Apply version " + ws.scheme.version + " to " + rows.length + (rows.length === 1 ? " student" : " students") + "? " +
          changes + (changes === 1 ? " grade changes" : " grades change") +
          (kept ? "; " + kept + (kept === 1 ? " manual grade stays" : " manual grades stay") + " as set" : "") + ".";
      ui.confirm.hidden = false;
      ui.applyNow.focus();
    });

    ui.applyCancel.addEventListener("click", function () {
      ui.confirm.hidden = true;
      ui.applyOpen.focus();
    });

    ui.applyNow.addEventListener("click", async function () {
      ui.applyNow.disabled = true;
      setStatus(ui.applyStatus, "Applying…", "busy");
      var r = await api("POST", "/api/schemes/" + ws.scheme.id + "/apply");
      ui.applyNow.disabled = false;
      ui.confirm.hidden = true;
      if (!r.ok) { setStatus(ui.applyStatus, "Nothing was applied. " + T.errorText(r.data), "bad"); return; }
      var d = r.data;
      var s = await api("GET", "/api/schemes/" + ws.scheme.id);
      if (s.ok) ws.scheme = s.data;
      renderState();
      await Promise.all([loadVersions(), ctx.onApplied()]);
      setStatus(ui.applyStatus, d.message + (d.overridden ? " " + d.overridden + (d.overridden === 1 ? " manual grade was" : " manual grades were") + " kept." : ""), "ok");
      recompute();
    });

    // -- audit: versions ------------------------------------------------------------------------

    function bandsSummary(config) {
      var suffix = config.unit === "percent" ? "%" : "";
      return (config.bands || []).map(function (b) { return b.grade + " ≥ " + b.min + suffix; }).join(" · ");
    }

    async function loadVersions() {
      var r = await api("GET", "/api/assessments/" + assessmentId + "/schemes");
      if (!r.ok) return;
      ws.versions = r.data.schemes || [];
      var tbody = ui.versions.tBodies[0];
      clear(tbody);
      ws.versions.forEach(function (v) {
        tbody.appendChild(el("tr", { "data-version": v.version, class: v.active ? "active-version" : null },
          el("th", { scope: "row" }, "v" + v.version, v.active ? el("span", { class: "tag", text: "active" }) : null),
          el("td", { text: v.status }),
          el("td", { class: "small", text: bandsSummary(v.config) }),
          el("td", { text: ctx.nameOf(v.createdBy) + ", " + T.fmtDate(v.createdAt) }),
          el("td", { text: v.appliedAt ? ctx.nameOf(v.appliedBy) + ", " + T.fmtDate(v.appliedAt) : "–" }),
          el("td", null, el("code", { title: v.versionHash, text: v.versionHash.slice(0, 12) }))));
      });
      ui.versions.hidden = ws.versions.length === 0;
      ui.versionsEmpty.hidden = ws.versions.length > 0;
      renderState();
    }

    // -- wiring -----------------------------------------------------------------------------------

    document.querySelectorAll('input[name="mode"]').forEach(function (radio) {
      radio.addEventListener("change", function () { if (radio.checked) switchMode(radio.value); });
    });
    ui.scale.addEventListener("change", async function () {
      ws.scale = ui.scale.value;
      ws.customScale = null;
      if (ws.mode === "manual") { await boundariesFromTwoPoint(); renderManualFields(); }
      renderChart();
      changed();
    });
    ui.unit.addEventListener("change", async function () {
      // Keep the thresholds where they are on the axis: convert them to the new unit (and its step).
      var old = ws.unit;
      ws.unit = ui.unit.value;
      var convert = function (v) { return v === null ? v : snap(fromPoints(toPoints(v, old))); };
      ws.passing = convert(ws.passing);
      ws.excellence = convert(ws.excellence);
      ws.boundaries = ws.boundaries.map(convert);
      ui.passing.value = fmt(ws.passing);
      ui.excellence.value = fmt(ws.excellence);
      if (ws.mode === "manual") renderManualFields();
      renderChart();
      changed();
    });
    ui.step.addEventListener("input", function () { ws.stepText = ui.step.value; changed(); });
    ui.rounding.addEventListener("change", function () { ws.rounding = ui.rounding.value; changed(); });
    [["passing", ui.passing], ["excellence", ui.excellence]].forEach(function (pair) {
      pair[1].addEventListener("input", function () {
        var n = num(pair[1].value);
        if (n !== null) setValue(pair[0], n);
      });
    });
    $("tp-reset").addEventListener("click", async function () { await defaultAnchors(); renderChart(); changed(); });
    $("manual-from-two").addEventListener("click", async function () {
      await boundariesFromTwoPoint();
      renderManualFields();
      renderChart();
      changed();
    });
    ui.json.addEventListener("input", changed);
    window.addEventListener("resize", T.debounce(renderChart, 150));

    var reloadAfterPoints = T.debounce(async function () {
      await loadDistribution();
      recompute();
    }, 400);

    /** Load the active version into the editor: its boundaries when they fit a built-in scale, else as JSON. */
    function loadScheme(scheme) {
      var config = scheme.config;
      ws.unit = config.unit;
      ws.stepText = config.step === null || config.step === undefined ? "" : String(config.step);
      ws.rounding = config.rounding || "none";
      ws.absentGrade = config.absentGrade;
      var named = typeof config.scale === "string" && SCALES[config.scale];
      var grades = named ? SCALES[config.scale].grades : null;
      var fits = named && config.bands.length === grades.length &&
        config.bands.every(function (b, i) { return b.grade === grades[i]; });
      if (fits) {
        ws.scale = config.scale;
        ws.mode = "manual";
        ws.boundaries = config.bands.slice(0, -1).map(function (b) { return Number(b.min); });
        var pg = passingGrades().length;
        ws.excellence = ws.boundaries[0];
        ws.passing = ws.boundaries[pg - 1];
      } else {
        ws.mode = "bands";
        ui.json.value = JSON.stringify(config, null, 2);
        if (named) ws.scale = config.scale; else if (config.scale && config.scale.grades) ws.customScale = config.scale;
        ws.passing = ws.excellence = null;  // the defaults follow (start)
      }
      ui.passing.value = fmt(ws.passing);
      ui.excellence.value = fmt(ws.excellence);
      syncSettings();
    }

    (async function () {
      if (ctx.activeSchemeId) {
        var r = await api("GET", "/api/schemes/" + ctx.activeSchemeId);
        if (r.ok) { ws.scheme = r.data; loadScheme(r.data); }
      }
      if (ws.passing === null) await defaultAnchors();
      syncSettings();
      showMode();
      renderState();
      await Promise.all([loadDistribution(), loadVersions()]);
      await recompute();
    })();

    return {
      pointsChanged: function () { reloadAfterPoints(); },
      scaleGrades: function () { return scaleInfo().grades.slice(); },
    };
  }

  window.TallySchemes = { start: start };
})();
