"""A software passkey (WebAuthn authenticator + the browser's part of the ceremony), for tests without Chromium.

It is the edge of the world for the passkey code: it answers the broker's options JSON the way a platform
authenticator and a browser would (packed-free "none" attestation, ES256 credential, flags as asked), so the
server side runs its real py_webauthn verification. The Chromium tests use the DevTools virtual authenticator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftPasskey:
    def __init__(self, *, origin: str, user_verified: bool = True):
        self.origin = origin
        self.user_verified = user_verified
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(16)
        self.sign_count = 0

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin}).encode()

    def _flags(self, extra: int = 0) -> int:
        return FLAG_UP | (FLAG_UV if self.user_verified else 0) | extra

    def create(self, options: dict) -> str:
        """navigator.credentials.create() + credential.toJSON(), as JSON text."""
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        rp_hash = hashlib.sha256(options["rp"]["id"].encode()).digest()
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + cose
        auth_data = rp_hash + bytes([self._flags(FLAG_AT)]) + struct.pack(">I", self.sign_count) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps(
            {
                "id": b64u(self.credential_id),
                "rawId": b64u(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64u(self._client_data("webauthn.create", options["challenge"])),
                    "attestationObject": b64u(attestation),
                    "transports": ["internal"],
                },
                "clientExtensionResults": {},
            }
        )

    def get(self, options: dict) -> str:
        """navigator.credentials.get() + credential.toJSON(), as JSON text."""
        self.sign_count += 1
        rp_hash = hashlib.sha256(options["rpId"].encode()).digest()
        auth_data = rp_hash + bytes([self._flags()]) + struct.pack(">I", self.sign_count)
        client_data = self._client_data("webauthn.get", options["challenge"])
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps(
            {
                "id": b64u(self.credential_id),
                "rawId": b64u(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64u(client_data),
                    "authenticatorData": b64u(auth_data),
                    "signature": b64u(signature),
                    "userHandle": None,
                },
                "clientExtensionResults": {},
            }
        )


def register(browser, passkey: SoftPasskey):
    """The result page's "Create a passkey" (or the account's "Add another passkey") in a test client."""
    options = browser.post("/account/passkeys/options", content_type="application/json", data="{}")
    if options.status_code != 200:
        return options
    return browser.post("/account/passkeys", data=passkey.create(options.json()), content_type="application/json")


def sign_in(browser, passkey: SoftPasskey):
    options = browser.post("/account/signin/options", content_type="application/json", data="{}")
    return browser.post("/account/signin/finish", data=passkey.get(options.json()), content_type="application/json")
