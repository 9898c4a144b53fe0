"""The one home for symmetric key material: evidence encryption, sealed records, keyed hashes.

Design (SPEC 3.1, 3.5):
1. Each verification gets a fresh 256-bit data key. It is stored only wrapped (RFC 3394 AES key wrap) under a
   key-encryption key derived from IDBROKER_MASTER_KEY with HKDF (RFC 5869), one derivation per purpose.
2. Evidence files are AES-256-GCM streams: `nonce(12) || ciphertext || tag(16)`, with the evidence id and kind as
   associated data, so a file moved to another row fails to decrypt.
3. Destroying evidence deletes the file *and* the wrapped data key (crypto-shredding): a backup copy of the file is
   unreadable once the key is gone.
Nothing here logs, and no error message carries key or plaintext bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from django.conf import settings

NONCE_BYTES = 12
TAG_BYTES = 16
CHUNK = 64 * 1024


class DecryptionError(Exception):
    """Ciphertext, tag or wrapped key did not verify (tampered, moved, or the key was destroyed)."""


def _decode_secret(value: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raw = b""
    # Accept any high-entropy string, but never a short one: HKDF stretches, it does not create entropy.
    material = raw if len(raw) >= 32 else value.encode()
    if len(material) < 32:
        raise ValueError("secret must be at least 32 bytes (or base64 of at least 32 bytes)")
    return material


@lru_cache(maxsize=32)
def _derive(secret_setting: str, purpose: str) -> bytes:
    ikm = _decode_secret(getattr(settings, secret_setting))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"idbroker/{purpose}".encode()).derive(ikm)


def kek(purpose: str) -> bytes:
    return _derive("IDBROKER_MASTER_KEY", purpose)


# --- Data keys ---------------------------------------------------------------------------------------------------


def new_data_key(purpose: str = "evidence") -> tuple[bytes, bytes]:
    """Return (data_key, wrapped_data_key). Only the wrapped form may be stored."""
    key = secrets.token_bytes(32)
    return key, aes_key_wrap(kek(purpose), key)


def unwrap_data_key(wrapped: bytes | None, purpose: str = "evidence") -> bytes:
    if not wrapped:
        raise DecryptionError("data key destroyed")
    try:
        return aes_key_unwrap(kek(purpose), bytes(wrapped))
    except InvalidUnwrap as exc:
        raise DecryptionError("data key does not unwrap") from exc


# --- Evidence files (streaming AES-256-GCM) ------------------------------------------------------------------------


def encrypt_to_file(key: bytes, path: Path, chunks: Iterable[bytes], aad: bytes) -> int:
    """Encrypt `chunks` into `path` (created exclusively, mode 0600). Returns the plaintext length."""
    nonce = os.urandom(NONCE_BYTES)
    encryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    total = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(nonce)
        for chunk in chunks:
            total += len(chunk)
            out.write(encryptor.update(chunk))
        out.write(encryptor.finalize())
        out.write(encryptor.tag)
    return total


def decrypt_file(key: bytes, path: Path, aad: bytes) -> bytes:
    """Decrypt a whole evidence file. Evidence is capped in size, so holding one image in memory is fine."""
    blob = path.read_bytes()
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("truncated evidence file")
    nonce, body, tag = blob[:NONCE_BYTES], blob[NONCE_BYTES:-TAG_BYTES], blob[-TAG_BYTES:]
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    try:
        return decryptor.update(body) + decryptor.finalize()
    except InvalidTag as exc:
        raise DecryptionError("evidence file does not verify") from exc


def shred_file(path: Path) -> bool:
    """Delete an evidence file. The wrapped key is deleted by the caller in the same transaction."""
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


# --- Sealed records (facts, private signing keys) ----------------------------------------------------------------


def seal(plaintext: bytes, *, purpose: str, aad: bytes) -> tuple[bytes, bytes]:
    """Encrypt a small record under its own data key. Returns (ciphertext, wrapped_key); drop both to shred."""
    key, wrapped = new_data_key(purpose)
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad), wrapped


def unseal(ciphertext: bytes | None, wrapped_key: bytes | None, *, purpose: str, aad: bytes) -> bytes:
    if not ciphertext:
        raise DecryptionError("record destroyed")
    key = unwrap_data_key(wrapped_key, purpose)
    blob = bytes(ciphertext)
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise DecryptionError("record does not verify") from exc


# --- Keyed hashes (API keys, pairwise pseudonyms, link tokens) ------------------------------------------------------


def keyed_hash(purpose: str, *parts: str | bytes) -> str:
    """HMAC-SHA256 over length-prefixed parts (no ambiguity between ("ab","c") and ("a","bc")), hex."""
    mac = hmac.new(_derive("IDBROKER_HASH_KEY", purpose), digestmod=hashlib.sha256)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        mac.update(len(data).to_bytes(4, "big") + data)
    return mac.hexdigest()


def token_hash(token: str) -> str:
    """Hash of a bearer secret (verification link). Unkeyed SHA-256 would do for 256-bit tokens; keyed is free."""
    return keyed_hash("link-token", token)


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
