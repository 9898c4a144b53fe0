// Passkeys through the browser's own WebAuthn JSON helpers (parse*OptionsFromJSON, credential.toJSON()):
// the server's options go in as they are, the credential goes back as JSON. No crypto here.
(function () {
  "use strict";
  function csrf() { return document.querySelector("input[name=csrfmiddlewaretoken]").value; }
  function post(url, body, extra) {
    var headers = Object.assign({ "X-CSRFToken": csrf(), "Content-Type": "application/json" }, extra || {});
    return fetch(url, { method: "POST", credentials: "same-origin", headers: headers, body: body })
      .then(function (r) { return r.json().then(function (data) { if (!r.ok) { throw new Error(data.detail || "Failed"); } return data; }); });
  }
  function run(button) {
    var status = document.getElementById(button.dataset.status);
    var create = button.dataset.mode === "create";
    if (!window.PublicKeyCredential || !PublicKeyCredential.parseCreationOptionsFromJSON) {
      status.textContent = "This browser does not support passkeys.";
      return;
    }
    button.disabled = true;
    status.textContent = create ? "Follow your device's prompt to create the passkey…" : "Follow your device's prompt…";
    post(button.dataset.options, "{}")
      .then(function (options) {
        return create
          ? navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
          : navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
      })
      .then(function (credential) {
        return post(button.dataset.finish, JSON.stringify(credential.toJSON()), { "X-Passkey-Label": "Passkey" });
      })
      .then(function (data) { window.location.assign(data.next); })
      .catch(function (error) {
        status.textContent = (error && error.message) || "That did not work. Please try again.";
        button.disabled = false;
      });
  }
  document.querySelectorAll("button[data-passkey]").forEach(function (button) {
    button.addEventListener("click", function () { run(button); });
  });
})();
