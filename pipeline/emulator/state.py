"""Everything one running emulator holds, shared by the HTTP handlers and the processor."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.emulator.blobs import SessionBlobs
from pipeline.emulator.ca import EmulatorCA
from pipeline.emulator.cert_store import CertStore
from pipeline.emulator.checks import ValidationPool
from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.faults import Faults
from pipeline.emulator.keys import KeyRing
from pipeline.emulator.latarnia import Latarnia
from pipeline.emulator.store import Store
from pipeline.emulator.timefmt import utcnow
from pipeline.emulator.tokens import TokenMinter
from pipeline.ksef.crypto import SessionKey, unwrap_key
from pipeline.ksef.limits import limits_for
from pipeline.ksef.ratelimit import SlidingWindowLimiter

if TYPE_CHECKING:
    from pipeline.emulator.processing import Processor


@dataclass
class Emulator:
    config: EmulatorConfig
    store: Store
    keys: KeyRing
    minter: TokenMinter
    faults: Faults
    limiter: SlidingWindowLimiter
    latarnia: Latarnia
    pool: ValidationPool
    ca: EmulatorCA
    certs: CertStore
    blobs: SessionBlobs = field(init=False)
    processor: Processor | None = None
    port: int = 0
    clock_offset: dt.timedelta = dt.timedelta(0)  # shifts the certificate clock (tests)
    _session_keys: dict[str, SessionKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.blobs = SessionBlobs(self.config.data_dir / "invoices")

    @classmethod
    def open(cls, config: EmulatorConfig) -> Emulator:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(config.data_dir / "emulator.sqlite3")
        keys = KeyRing.load(config.data_dir)
        return cls(
            config=config,
            store=store,
            keys=keys,
            minter=TokenMinter(keys.secret),
            faults=Faults(),
            limiter=SlidingWindowLimiter(limits_for(config.limits),
                                         time_scale=config.time_scale),
            latarnia=Latarnia(store),
            pool=ValidationPool(config.validation_workers),
            ca=EmulatorCA.generate(utcnow()),
            certs=CertStore(store),
        )

    def certificate_now(self) -> dt.datetime:
        """The instant certificates are judged and issued at (`/_emulator/clock` moves it)."""
        return utcnow() + self.clock_offset

    @property
    def base_url(self) -> str:
        """Where clients reach this emulator (with `--public-host` if given)."""
        return f"http://{self.config.public_host or self.config.host}:{self.port}"

    def session_dir(self, reference: str) -> Path:
        path = self.config.data_dir / "sessions" / reference
        path.mkdir(parents=True, exist_ok=True)
        return path

    def drop_session_files(self, reference: str) -> None:
        shutil.rmtree(self.config.data_dir / "sessions" / reference, ignore_errors=True)

    def upo_dir(self, reference: str) -> Path:
        path = self.config.data_dir / "upo" / reference
        path.mkdir(parents=True, exist_ok=True)
        return path

    def invoice_content(self, invoice: dict[str, Any]) -> bytes | None:
        """The stored XML of an accepted invoice."""
        if invoice["blob_offset"] is not None:
            return self.blobs.read(invoice["session"], invoice["blob_offset"],
                                   invoice["blob_size"])
        return self.store.invoice_blob(invoice["ksef_number"])

    def session_key(self, session: dict[str, Any]) -> SessionKey:
        """Unwrap (once) the AES key of a session; ValueError when it cannot be unwrapped."""
        reference = session["reference"]
        cached = self._session_keys.get(reference)
        if cached is not None:
            return cached
        try:
            key = unwrap_key(self.keys.symmetric.private_key, bytes(session["wrapped_key"]))
        except Exception as exc:  # cryptography raises ValueError for OAEP failures
            raise ValueError(f"the symmetric key could not be unwrapped: {exc}") from exc
        if len(key) != 32:
            raise ValueError(f"the unwrapped key has {len(key)} bytes, AES-256 needs 32")
        session_key = SessionKey(key, bytes(session["iv"]))
        self._session_keys[reference] = session_key
        return session_key

    def sign(self, *parts: str) -> str:
        """Signature for pre-signed URLs (part uploads, UPO downloads)."""
        mac = hmac.new(self.keys.secret, "|".join(parts).encode("utf-8"), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    def signature_ok(self, signature: str, *parts: str) -> bool:
        return hmac.compare_digest(signature, self.sign(*parts))

    def close(self) -> None:
        self.pool.shutdown()
        self.store.close()
