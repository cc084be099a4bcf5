"""KSeF's batch-session ceilings (decimal units, as MF states them).

Tests shrink the part size so a small package still spans several parts; raising any
value above KSeF's own ceiling is refused, since KSeF would reject such a session.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

KSEF_MAX_INVOICES = 10_000
KSEF_MAX_PARTS = 50
KSEF_MAX_PART_BYTES = 100_000_000
KSEF_MAX_PACKAGE_BYTES = 5_000_000_000
KSEF_MAX_INVOICE_BYTES = 3_000_000  # with attachments; 1,000,000 without


@dataclass(frozen=True)
class BatchLimits:
    max_invoices: int = KSEF_MAX_INVOICES
    max_parts: int = KSEF_MAX_PARTS
    max_part_bytes: int = KSEF_MAX_PART_BYTES
    max_package_bytes: int = KSEF_MAX_PACKAGE_BYTES
    max_invoice_bytes: int = KSEF_MAX_INVOICE_BYTES

    def __post_init__(self) -> None:
        ceilings = {
            "max_invoices": KSEF_MAX_INVOICES,
            "max_parts": KSEF_MAX_PARTS,
            "max_part_bytes": KSEF_MAX_PART_BYTES,
            "max_package_bytes": KSEF_MAX_PACKAGE_BYTES,
            "max_invoice_bytes": KSEF_MAX_INVOICE_BYTES,
        }
        for name, ceiling in ceilings.items():
            value = getattr(self, name)
            if not 1 <= value <= ceiling:
                raise ValueError(f"{name}={value} is outside 1..{ceiling} (KSeF's ceiling)")

    @property
    def max_archive_bytes(self) -> int:
        """The largest archive that still fits both the part count and the package cap."""
        return min(self.max_package_bytes, self.max_parts * self.max_part_bytes)

    def with_part_bytes(self, part_bytes: int) -> BatchLimits:
        """Test override: smaller parts, so a small package is split into many."""
        return dataclasses.replace(self, max_part_bytes=part_bytes)
