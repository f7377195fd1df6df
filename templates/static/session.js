/* The page's session token: how it travels, and how it stays fresh.

   Navigation: a link marked `data-post` (<a href="/offerings/1" data-post>) opens its page by
   a form POST that carries the token as `st`, so a token is never in an address, where it
   would end up in browser history and in the access logs of every proxy (Tally refuses
   `?st=` addresses). A download (the CSV, `<a download data-post>`) is POSTed into a hidden
   frame, so the page itself never starts navigating (which would stop its scripts loading).

   Renewal: before the token expires, ask the tool for a new one (POST /api/session/renew),
   put it into <meta name="tally-session"> and every form's `st` field, and tell the page's
   scripts with a "tally:session" event. A page left open for hours therefore never loses a
   save to an expired token; renewals stop at the session's maximum age, after which the next
   call says "open Tally again from your course". */
(function () {
  "use strict";

  var meta = document.querySelector('meta[name="tally-session"]');
  if (!meta) return;

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0) return;
    var link = event.target && event.target.closest ? event.target.closest("a[data-post]") : null;
    if (!link) return;
    event.preventDefault();
    var form = document.createElement("form");
    form.method = "post";
    form.action = link.getAttribute("href");
    form.hidden = true;
    if (link.hasAttribute("download")) {
      // A file (the CSV) arrives in a hidden frame of its own: this page goes on loading and working.
      var target = document.querySelector('iframe[name="tally-download"]');
      if (!target) {
        target = document.createElement("iframe");
        target.name = "tally-download";
        target.title = "Downloads";
        target.hidden = true;
        document.body.appendChild(target);
      }
      form.target = "tally-download";
    } else if (event.ctrlKey || event.metaKey || event.shiftKey) {
      form.target = "_blank";  // Ctrl/Cmd/Shift-click: a new tab, as for any link
    }
    var field = document.createElement("input");
    field.type = "hidden";
    field.name = "st";
    field.value = meta.getAttribute("content") || "";
    form.appendChild(field);
    document.body.appendChild(form);
    form.submit();
  });

  if (!window.fetch) return;

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
