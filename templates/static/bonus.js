/* The bonus dialog (issue 15): points above a maximum, or a ledger entry far outside the usual
   range, are saved only when the teacher confirms them; more than twice a maximum is refused.
   The API says so with 409 bonus_unconfirmed or 422 points_too_high and lists each value in
   `details` (tool/bonus.py); this dialog shows them and answers whether to send the request
   again with "confirmBonus": true. One dialog at a time: answers are asked for in turn.

   window.TallyBonus.needsAnswer(r)  true for an answer the dialog is for
   window.TallyBonus.ask(r, what)    Promise<boolean>: true = save as bonus, false = correct */
(function () {
  "use strict";
  var T = window.Tally;
  var el = T.el;
  var turn = Promise.resolve();
  var dialog = null;

  function build() {
    var title = el("h2", { id: "bonus-title" });
    var intro = el("p", { id: "bonus-intro" });
    var list = el("ul", { id: "bonus-list" });
    var confirm = el("button", { type: "button", id: "bonus-confirm" }, "Save as bonus points");
    var fix = el("button", { type: "button", id: "bonus-fix", class: "secondary" }, "Correct the points");
    var d = el("dialog", { id: "bonus-dialog", class: "bonus-dialog", "aria-labelledby": "bonus-title",
                           "aria-describedby": "bonus-intro" },
      title, intro, list, el("div", { class: "buttons" }, confirm, fix));
    document.body.appendChild(d);
    return { d: d, title: title, intro: intro, list: list, confirm: confirm, fix: fix };
  }

  function needsAnswer(r) {
    return !r.ok && r.data && (r.data.code === "bonus_unconfirmed" || r.data.code === "points_too_high");
  }

  function show(r, what) {
    if (!dialog) dialog = build();
    var refused = r.data.code === "points_too_high";
    var ledger = (r.data.details || []).every(function (d) { return /usual range/.test(d.message || ""); });
    dialog.title.textContent = refused ? "These points look like a typo" : ledger ? "Unusually many points"
      : "Bonus points?";
    dialog.intro.textContent = (what ? what + ": " : "") + (refused
      ? "more than twice the maximum is never saved. Please correct the points."
      : ledger ? "this is far outside the usual range of one entry. Save it anyway, or correct it?"
        : "this is more than the maximum. Save it as bonus points, or correct it?");
    T.clear(dialog.list);
    (r.data.details || []).forEach(function (d) { dialog.list.appendChild(el("li", { text: d.message })); });
    dialog.confirm.hidden = refused;
    dialog.confirm.textContent = ledger ? "Save anyway" : "Save as bonus points";
    return new Promise(function (resolve) {
      var done = function (answer) {
        dialog.confirm.removeEventListener("click", yes);
        dialog.fix.removeEventListener("click", no);
        dialog.d.removeEventListener("cancel", esc);
        if (dialog.d.open) dialog.d.close();
        resolve(answer);
      };
      var yes = function () { done(true); };
      var no = function () { done(false); };
      var esc = function (ev) { ev.preventDefault(); done(false); };  // Esc: correct, never save
      dialog.confirm.addEventListener("click", yes);
      dialog.fix.addEventListener("click", no);
      dialog.d.addEventListener("cancel", esc);
      dialog.d.showModal();
      dialog.fix.focus();  // the safe choice has the focus
    });
  }

  function ask(r, what) {
    var answer = turn.then(function () { return show(r, what); });
    turn = answer.then(function () {}, function () {});
    return answer;
  }

  window.TallyBonus = { needsAnswer: needsAnswer, ask: ask };
})();
