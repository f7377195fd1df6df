/* Tally inside the LMS's frame (issue 15, item 7).

   1. The page tells the LMS its height with the LTI `lti.frameResize` postMessage, on load and
      whenever the content grows or shrinks (Canvas resizes its frame; Moodle 4.5 ignores it and
      sizes the frame to the window, which is why the pages also work in a short frame). Only the
      subject and a height leave the page, so any parent may read them ("*").
   2. Each card section (a <section class="card"> whose first element is its <h2>) gets a
      Hide/Show button, so a teacher in a short frame folds away what they do not need and the
      rest comes into reach. */
(function () {
  "use strict";

  var framed = window.parent && window.parent !== window;
  var lastHeight = -1;

  /** The height of the content (not of the frame: a page shorter than its frame says so too). */
  function pageHeight() {
    var body = document.body;
    if (!body) return 0;
    var style = window.getComputedStyle(body);
    return Math.ceil(body.getBoundingClientRect().height + parseFloat(style.marginTop || "0") +
                     parseFloat(style.marginBottom || "0"));
  }

  function tell() {
    if (!framed) return;
    var height = pageHeight();
    if (height === lastHeight) return;
    lastHeight = height;
    try {
      window.parent.postMessage({ subject: "lti.frameResize", height: height }, "*");
    } catch (e) { /* a parent that is gone: nothing to tell */ }
  }

  var pending = false;
  function soon() {  // at most once per frame, however many changes come in
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; tell(); });
  }

  function collapsible(section, index) {
    var heading = section.firstElementChild;
    if (!heading || heading.tagName !== "H2" || section.classList.contains("collapsible")) return;
    if (!section.id) section.id = "card-" + (index + 1);
    var button = document.createElement("button");
    button.type = "button";
    button.className = "collapse-toggle secondary";
    button.setAttribute("aria-expanded", "true");
    button.setAttribute("aria-controls", section.id);
    var label = document.createElement("span");
    label.textContent = "Hide";
    var what = document.createElement("span");
    what.className = "sr-only";
    what.textContent = " " + heading.textContent.trim();
    button.appendChild(label);
    button.appendChild(what);
    button.addEventListener("click", function () {
      var open = button.getAttribute("aria-expanded") === "true";
      button.setAttribute("aria-expanded", open ? "false" : "true");
      label.textContent = open ? "Show" : "Hide";
      section.classList.toggle("collapsed", open);
      soon();
    });
    section.classList.add("collapsible");
    heading.insertAdjacentElement("afterend", button);
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("main section.card"), collapsible);
    tell();
    if (window.ResizeObserver) {
      new ResizeObserver(soon).observe(document.body);
    }
    window.addEventListener("load", soon);
    window.addEventListener("resize", soon);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();

  window.TallyFrame = { height: pageHeight };
})();
