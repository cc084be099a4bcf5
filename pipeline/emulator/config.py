"""Settings of one emulator instance (what `ksef-pipeline emulator` flags map to)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.ksef.package.limits import (
    KSEF_MAX_INVOICES,
    KSEF_MAX_PACKAGE_BYTES,
    KSEF_MAX_PART_BYTES,
    KSEF_MAX_PARTS,
)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class EmulatorConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0  # 0 = any free port
    public_host: str | None = None  # host name put into part-upload and download URLs
    limits: str = "production"  # production | test | off
    time_scale: float = 1.0  # >1 makes rate-limit windows pass faster
    validation_workers: int = field(default_factory=default_workers)  # 0 = in-process thread
    max_invoices: int = KSEF_MAX_INVOICES
    max_parts: int = KSEF_MAX_PARTS
    max_part_bytes: int = KSEF_MAX_PART_BYTES
    max_package_bytes: int = KSEF_MAX_PACKAGE_BYTES
    upo_page_size: int = 10_000  # UPO XSD allows at most 10,000 documents per page
    chunk_invoices: int = 200  # invoices per validation task
    online_session_hours: float = 12.0
    upload_minutes_per_part: float = 20.0
    access_token_minutes: float = 15.0
    refresh_token_days: float = 7.0
    certificate_days: float = 730.0  # validity of a KSeF certificate issued on enrollment
    # `/_emulator/*` needs `Authorization: Bearer <one of these>`; with none the admin
    # endpoints are refused (403) unless `insecure_admin` (local experiments only)
    admin_tokens: tuple[str, ...] = field(default=(), repr=False)
    insecure_admin: bool = False

    def __post_init__(self) -> None:
        if self.limits not in ("production", "test", "off"):
            raise ValueError(f"limits must be production, test or off, not {self.limits!r}")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if not 1 <= self.upo_page_size <= 10_000:
            raise ValueError("upo_page_size must be within 1..10000")
