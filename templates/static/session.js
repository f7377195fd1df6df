/* Keeps the page's session token fresh: before it expires, ask the tool for a new one
   (POST /api/session/renew), put it into <meta name="tally-session"> and every ?st= link,
   and tell the page's scripts with a "tally:session" event. A page left open for hours
   therefore never loses a save to an expired token; renewals stop at the session's
   maximum age, after which the next call says "open Tally again from your course". */
(function () {
  "use strict";

  var meta = document.querySelector('meta[name="tally-session"]');
  if (!meta || !window.fetch) return;

  function claims(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    } catch (e) {
      return null;
    }
  }

  function schedule() {
    var c = claims(meta.getAttribute("content") || "");
    if (!c || !c.exp || !c.iat) return;
    var now = Date.now() / 1000;
    // Halfway through the token's life, and at least a minute before it ends.
    var wait = Math.min((c.exp - c.iat) / 2, c.exp - now - 60);
    window.setTimeout(renew, Math.max(5, wait) * 1000);
  }

  function swap(old, fresh) {
    meta.setAttribute("content", fresh);
    var from = "st=" + encodeURIComponent(old), to = "st=" + encodeURIComponent(fresh);
    document.querySelectorAll('a[href*="st="]').forEach(function (a) {
      a.setAttribute("href", a.getAttribute("href").split(from).join(to));
    });
    document.querySelectorAll('input[name="st"]').forEach(function (input) {
      if (input.value === old) input.value = fresh;
    });
    document.dispatchEvent(new CustomEvent("tally:session", { detail: { token: fresh } }));
  }

  function renew() {
    var old = meta.getAttribute("content") || "";
    fetch("/api/session/renew", {
      method: "POST", credentials: "omit",
      headers: { Authorization: "Bearer " + old, Accept: "application/json" },
    }).then(function (r) {
      if (r.status === 401) return null;  // too old or expired: the next call explains it
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (body) {
      if (!body || !body.token) return;
      swap(old, body.token);
      schedule();
    }).catch(function () {
      window.setTimeout(renew, 30000);  // the tool was unreachable: try again soon
    });
  }

  schedule();
})();
