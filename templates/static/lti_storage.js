// Browser-bound OIDC state through the LMS's platform storage (1EdTech "LTI Client Side
// postMessages": lti.put_data / lti.get_data), see tool/web/browser_state.py.
// "put": keep the login's state in the LMS's storage frame, then go on to the LMS.
// "get": read it back and re-post the launch to Tally (same origin) with what was found.
(function () {
  "use strict";
  var box = document.getElementById("lti-storage");
  if (!box) { return; }
  var d = box.dataset;
  var WAIT_MS = 3000;

  function storageFrame() {
    if (!d.target) { return null; }
    try {
      if (d.target === "_parent") { return window.parent !== window ? window.parent : null; }
      return window.parent.frames[d.target] || null;
    } catch (e) {
      return null;
    }
  }

  function ask(message, then) {
    var frame = storageFrame();
    if (!frame || !d.origin) { then(null); return; }
    var id = "tally-" + Math.random().toString(36).slice(2) + Date.now().toString(36);
    var done = false;
    function finish(answer) {
      if (done) { return; }
      done = true;
      window.removeEventListener("message", listen);
      then(answer);
    }
    function listen(event) {
      var data = event.data;
      if (event.origin !== d.origin || !data || data.message_id !== id ||
          data.subject !== message.subject + ".response") { return; }
      finish(data.error ? null : data);
    }
    window.addEventListener("message", listen);
    message.message_id = id;
    frame.postMessage(message, d.origin);
    window.setTimeout(function () { finish(null); }, WAIT_MS);
  }

  if (d.mode === "put") {
    ask({subject: "lti.put_data", key: d.key, value: d.value}, function () {
      window.location.replace(d.next);
    });
  } else {
    var form = document.getElementById("lti-storage-form");
    ask({subject: "lti.get_data", key: d.key}, function (answer) {
      if (answer && typeof answer.value === "string") {
        form.elements[d.field].value = answer.value;
      }
      form.submit();
    });
  }
})();
