/* What Tally's page scripts share, as window.Tally: the JSON API call and a few DOM helpers.
   Loaded before ledger.js and assessment.js (which adds the helpers schemes.js uses).

   Every call sends the page's session token as a Bearer token (no cookies: the tool lives in
   an LMS iframe where browsers refuse them). The token is read from <meta name="tally-session">
   at each call, where session.js puts the renewed one before the old one expires. Strings from
   the API reach the DOM through textContent or createElement, never innerHTML. */
(function () {
  "use strict";

  /** The page's session token as it is now ("" on a page without one). */
  function sessionToken() {
    var meta = document.querySelector('meta[name="tally-session"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function $(id) { return document.getElementById(id); }

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  /** Call the JSON API: {ok, status, data}; a failure always has data.message. */
  async function api(method, path, body) {
    var opts = {
      method: method, credentials: "omit", cache: "no-store",
      headers: { Authorization: "Bearer " + sessionToken(), Accept: "application/json" },
    };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    var resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      return { ok: false, status: 0, data: { code: "network", message: "Tally could not be reached. Check the connection and try again.", details: null } };
    }
    var data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok && (!data || typeof data.message !== "string")) {
      data = { code: "http_" + resp.status, message: "Tally answered with status " + resp.status + ".", details: null };
    }
    return { ok: resp.ok, status: resp.status, data: data };
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  /** An ISO datetime as local "YYYY-MM-DD HH:MM". */
  function fmtDate(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function setStatus(node, message, kind) {
    node.textContent = message || "";
    node.classList.remove("ok", "bad", "busy");
    if (kind) node.classList.add(kind);
  }

  /* Tally's one decimal grammar (tool/decimals.py GRAMMAR, checked by tests/unit/test_decimals.py):
     ASCII digits, an optional leading "-", at most two decimals after a ".". */
  var DECIMAL = "^-?[0-9]+(\\.[0-9]{1,2})?$";
  var DECIMAL_RE = new RegExp(DECIMAL);

  /** What a teacher types (" 7,5 ") in the grammar's form ("7.5"): surrounding spaces go, a lone
      decimal comma becomes a point; anything else is left as typed, for the API to refuse. */
  function normDecimal(raw) {
    var s = String(raw === null || raw === undefined ? "" : raw).trim();
    if (/^-?[0-9]*,[0-9]*$/.test(s)) s = s.replace(",", ".");
    return s;
  }

  window.Tally = {
    sessionToken: sessionToken, api: api, $: $, el: el, clear: clear, fmtDate: fmtDate, setStatus: setStatus,
    decimal: { pattern: DECIMAL, normalise: normDecimal, valid: function (s) { return DECIMAL_RE.test(s); } },
  };
})();
