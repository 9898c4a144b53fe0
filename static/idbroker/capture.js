// Camera capture with an upload fallback. The photo never leaves the page except in the form's own POST:
// a camera frame is drawn to a canvas, turned into a JPEG blob and placed in the file input.
(function () {
  "use strict";
  var form = document.querySelector("form.capture");
  if (!form) return;
  var input = form.querySelector("input[type=file]");
  var camera = form.querySelector(".camera");
  var video = camera.querySelector("video");
  var preview = form.querySelector(".preview");
  var status = form.querySelector(".camera-status");
  var startButton = form.querySelector("[data-action=camera]");
  var stream = null;

  function canUseCamera() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.DataTransfer);
  }

  function stop() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    camera.hidden = true;
  }

  function start() {
    status.textContent = "Starting the camera…";
    navigator.mediaDevices.getUserMedia({ video: { facingMode: form.dataset.facing, width: { ideal: 1280 } }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        camera.hidden = false;
        preview.hidden = true;
        status.textContent = "Camera ready. Press “Take photo” when you are in position.";
        camera.querySelector("[data-action=snap]").focus();
      })
      .catch(function () {
        status.textContent = "The camera is not available. Please choose a photo file instead.";
        input.focus();
      });
  }

  function snap() {
    var canvas = document.createElement("canvas");
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    if (!canvas.width) { status.textContent = "The camera is not ready yet. Try again in a moment."; return; }
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(function (blob) {
      var file = new File([blob], form.dataset.kind + ".jpg", { type: "image/jpeg" });
      var transfer = new DataTransfer();
      transfer.items.add(file);
      input.files = transfer.files;
      preview.src = URL.createObjectURL(blob);
      preview.hidden = false;
      stop();
      status.textContent = "Photo taken. Submit it, or retake it with the camera.";
      startButton.textContent = "Retake with camera";
      form.querySelector("[data-action=submit]").focus();
    }, "image/jpeg", 0.92);
  }

  if (!canUseCamera()) { startButton.hidden = true; }
  startButton.addEventListener("click", start);
  camera.querySelector("[data-action=snap]").addEventListener("click", snap);
  input.addEventListener("change", function () {
    if (input.files.length && input.files[0].size > 0) {
      preview.src = URL.createObjectURL(input.files[0]);
      preview.hidden = false;
    }
  });
  form.addEventListener("submit", function () {
    stop();
    form.querySelector("[data-action=submit]").disabled = true;
    status.textContent = "Uploading…";
  });
})();
