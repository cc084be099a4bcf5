"""KSeF transport cryptography: AES-256-CBC/PKCS#7 under a session key wrapped with RSA-OAEP.

KSeF gives a fresh 256-bit key and 128-bit IV per session; the key travels wrapped with
the MF public key (RSAES-OAEP, SHA-256, MGF1-SHA-256). Streaming helpers encrypt files
chunk by chunk so a 100 MB batch part never sits whole in memory.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

AES_KEY_BYTES = 32
AES_IV_BYTES = 16
BLOCK_BYTES = 16
# 256 KiB: three batches sealed side by side each held a few chunks at once (read,
# decrypted, encrypted): with 1 MiB chunks that was several MB at a 10,000-invoice peak.
CHUNK_BYTES = 1 << 18


@dataclass(frozen=True)
class SessionKey:
    """Symmetric material of one KSeF session (never logged, never put on a topic unwrapped)."""

    key: bytes
    iv: bytes

    @classmethod
    def generate(cls) -> SessionKey:
        return cls(os.urandom(AES_KEY_BYTES), os.urandom(AES_IV_BYTES))

    def __repr__(self) -> str:  # keep key material out of logs and tracebacks
        return "SessionKey(<redacted>)"


def _oaep() -> OAEP:
    return OAEP(mgf=MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def public_key_from_certificate(cert_b64_der: str) -> rsa.RSAPublicKey:
    """MF publishes its keys as base64 DER X.509 certificates."""
    cert = x509.load_der_x509_certificate(base64.b64decode(cert_b64_der))
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("KSeF encryption certificate does not hold an RSA key")
    return key


def load_private_key_pem(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("expected an RSA private key")
    return key


def wrap_key(public_key: rsa.RSAPublicKey, key: bytes) -> bytes:
    return public_key.encrypt(key, _oaep())


def unwrap_key(private_key: rsa.RSAPrivateKey, wrapped: bytes) -> bytes:
    return private_key.decrypt(wrapped, _oaep())


def encrypt_cbc(session: SessionKey, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(session.key), modes.CBC(session.iv)).encryptor()
    return enc.update(padded) + enc.finalize()


def decrypt_cbc(session: SessionKey, ciphertext: bytes) -> bytes:
    """Raises ValueError on a wrong key / corrupt data (bad padding or block length)."""
    if len(ciphertext) % BLOCK_BYTES:
        raise ValueError("ciphertext length is not a multiple of the AES block")
    dec = Cipher(algorithms.AES(session.key), modes.CBC(session.iv)).decryptor()
    padded = dec.update(ciphertext) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _pkcs7_tail(tail: bytes) -> bytes:
    pad = BLOCK_BYTES - len(tail) % BLOCK_BYTES
    return tail + bytes([pad]) * pad


def encrypt_cbc_chunks(session: SessionKey, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Encrypt a stream; only the final block is padded (the fast path measured ~1 GB/s)."""
    enc = Cipher(algorithms.AES(session.key), modes.CBC(session.iv)).encryptor()
    pending = b""
    for chunk in chunks:
        pending += chunk
        cut = len(pending) - len(pending) % BLOCK_BYTES
        if cut:
            yield enc.update(pending[:cut])
            pending = pending[cut:]
    yield enc.update(_pkcs7_tail(pending)) + enc.finalize()


def decrypt_cbc_chunks(session: SessionKey, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decrypt a stream, holding back the last block to strip PKCS#7 padding."""
    dec = Cipher(algorithms.AES(session.key), modes.CBC(session.iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    for chunk in chunks:
        out = unpadder.update(dec.update(chunk))
        if out:
            yield out
    tail = unpadder.update(dec.finalize()) + unpadder.finalize()
    if tail:
        yield tail


def read_chunks(stream: BinaryIO, limit: int | None = None) -> Iterator[bytes]:
    """Yield up to `limit` bytes (all when None) from a binary stream in CHUNK_BYTES pieces."""
    remaining = limit
    while remaining is None or remaining > 0:
        size = CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining)
        chunk = stream.read(size)
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


@dataclass(frozen=True)
class Digest:
    """SHA-256 (base64, KSeF's form) and byte length of some content."""

    sha256_b64: str
    size: int

    @classmethod
    def of_hash(cls, sha256: hashlib._Hash, size: int) -> Digest:
        """From a finished SHA-256 object and the byte count fed to it."""
        return cls(base64.b64encode(sha256.digest()).decode("ascii"), size)


class HashingWriter:
    """Wraps a binary writer, hashing and counting everything written through it."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        self._sink.write(data)
        return len(data)

    def digest(self) -> Digest:
        return Digest.of_hash(self._hash, self.size)
