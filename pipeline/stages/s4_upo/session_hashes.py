"""The invoice hashes of one of our sessions, held compactly.

The upo stage keeps them for its recent sessions to tell whether a 440's original is
this very invoice. As a frozenset of base64 strings 10,000 hashes took ~1.3 MB for the
worker's life; as one sorted run of 32-byte digests they take 320 KB, and membership is
a binary search.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

DIGEST_BYTES = 32


def _digest(sha256: object) -> bytes | None:
    """The SHA-256 a base64 text names, or None when it names none."""
    if not isinstance(sha256, str):
        return None
    try:
        raw = base64.b64decode(sha256, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == DIGEST_BYTES else None


class SessionHashes:
    __slots__ = ("_blob", "_count")

    def __init__(self, hashes: Iterable[str]) -> None:
        digests = sorted({d for d in map(_digest, hashes) if d is not None})
        self._blob = b"".join(digests)
        self._count = len(digests)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, sha256: object) -> bool:
        digest = _digest(sha256)
        if digest is None:
            return False
        lo, hi = 0, self._count
        while lo < hi:
            mid = (lo + hi) // 2
            at = self._blob[mid * DIGEST_BYTES:(mid + 1) * DIGEST_BYTES]
            if at < digest:
                lo = mid + 1
            elif at > digest:
                hi = mid
            else:
                return True
        return False
