// Polls the status endpoint and moves on when a decision is in. No reload, no framework.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script.getAttribute("data-status-url");
  var delay = 1500;
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (data.state === "done" && data.next) { window.location.assign(data.next); return; }
        setTimeout(poll, delay);
      })
      .catch(function () { delay = Math.min(delay * 2, 10000); setTimeout(poll, delay); });
  }
  setTimeout(poll, delay);
})();
