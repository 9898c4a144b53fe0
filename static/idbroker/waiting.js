// Polls the status endpoint and moves on without a reload. On the waiting page it leaves once a decision is in;
// on the phone hand-off page (data-follow="capture") it leaves once the phone has finished taking the photos.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script.getAttribute("data-status-url");
  var followCapture = script.getAttribute("data-follow") === "capture";
  var delay = 1500;
  function shouldLeave(data) {
    if (!data.next) { return false; }
    if (followCapture) { return !/\/verify\/(document|selfie)$/.test(data.next); }
    return data.state === "done";
  }
  // The hand-off page names the phone that joined (its code), once, so a person can tell a phone they don't know.
  function showPhone(code) {
    var status = document.getElementById("handoff-status");
    if (!status || !status.dataset.joinedText) { return; }
    var text = status.dataset.joinedText.replace("{code}", code);
    if (status.textContent !== text) { status.textContent = text; }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (shouldLeave(data)) { window.location.assign(data.next); return; }
        if (followCapture && data.phone) { showPhone(data.phone.code); }
        setTimeout(poll, delay);
      })
      .catch(function () { delay = Math.min(delay * 2, 10000); setTimeout(poll, delay); });
  }
  setTimeout(poll, delay);
})();
