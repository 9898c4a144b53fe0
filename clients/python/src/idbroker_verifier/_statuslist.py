"""Reading an IETF OAuth Token Status List (draft-ietf-oauth-status-list, section 4).

1. `lst` is base64url (no padding) of the ZLIB/DEFLATE-compressed (RFC 1950/1951) byte array.
2. With `bits` = 1, 2, 4 or 8, entry i lives in byte (i * bits) // 8, starting at bit (i * bits) % 8, least
   significant bit first.
3. 0 is VALID; 1 INVALID (idbroker: revoked); 2 SUSPENDED; other values are application-specific.
"""

from __future__ import annotations

import base64
import binascii
import zlib

ALLOWED_BITS = (1, 2, 4, 8)
# idbroker's lists hold 2**20 entries at one bit (128 KiB); this allows 64 times that before giving up, so a
# small compressed body cannot inflate into gigabytes.
MAX_DECOMPRESSED_BYTES = 8 * 1024 * 1024


class StatusListError(ValueError):
    pass


def decompress(lst: str, *, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    if not isinstance(lst, str) or not lst:
        raise StatusListError("lst is missing")
    try:
        raw = base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4))
    except (binascii.Error, ValueError):
        raise StatusListError("lst is not base64url") from None
    inflater = zlib.decompressobj()
    try:
        packed = inflater.decompress(raw, max_bytes)
    except zlib.error:
        raise StatusListError("lst is not zlib data") from None
    if inflater.unconsumed_tail:
        raise StatusListError(f"lst inflates past {max_bytes} bytes")
    if not inflater.eof:
        raise StatusListError("lst is truncated")
    return packed


def status_at(packed: bytes, idx: int, bits: int) -> int:
    if bits not in ALLOWED_BITS:
        raise StatusListError(f"unsupported bits {bits!r}")
    position = idx * bits
    byte = position // 8
    if idx < 0 or byte >= len(packed):
        raise StatusListError(f"index {idx} is outside the list")
    return (packed[byte] >> (position % 8)) & ((1 << bits) - 1)
