"""Decides, before an invoice is written, whether the batch can still take it.

The test is against an upper bound of the finished archive, never an estimate: a batch
is flushed BEFORE any KSeF limit (invoice count, part count x part size, package size)
could be passed, whatever the invoices compress to. For ZIP the bound is exact up to the
names (an entry is stored when deflate would not shrink it); for tar.gz it adds deflate's
worst-case expansion of the whole tar stream plus the gzip framing.
"""

from __future__ import annotations

import enum

from pipeline.ksef.package.formats import PackageFormat
from pipeline.ksef.package.limits import BatchLimits
from pipeline.ksef.package.writer import (
    MAX_ENTRY_NAME_BYTES,
    TAR_BLOCK,
    TAR_RECORD,
    ZIP_ENTRY_OVERHEAD,
    ZIP_TRAILER_BYTES,
)

GZIP_FRAMING_BYTES = 10 + 8


class Fit(enum.Enum):
    FITS = "fits"
    FULL = "full"  # flush the current batch, then this invoice fits in the next one
    NEVER = "never"  # too large for any batch: reject the invoice, don't flush forever


class BatchFull(ValueError):
    """Adding the invoice could break a KSeF batch limit; flush first."""


class InvoiceTooLarge(ValueError):
    """The invoice can never be packed, not even alone."""


def deflate_bound(raw: int) -> int:
    """Upper bound of raw-deflate output for `raw` input bytes.

    Incompressible input ends up in stored blocks (5 bytes per block of at least 16 KiB
    at the default memLevel), which zlib bounds by raw/4096 + raw/16384 + 7; we allow
    raw/1024 + 64, comfortably above that for any zlib level and block split.
    """
    return raw + (raw >> 10) + 64


def zip_entry_bound(size: int, name_bytes: int) -> int:
    return ZIP_ENTRY_OVERHEAD + 2 * name_bytes + size


def tar_entry_bytes(size: int) -> int:
    return TAR_BLOCK + size + -size % TAR_BLOCK


def tar_gz_bound(tar_entries_bytes: int) -> int:
    end = 2 * TAR_BLOCK + TAR_RECORD  # end-of-archive blocks plus record padding, at most
    return GZIP_FRAMING_BYTES + deflate_bound(tar_entries_bytes + end)


class PackPlanner:
    """Running account of one batch; call `add` for each invoice actually written."""

    def __init__(self, limits: BatchLimits, fmt: PackageFormat = PackageFormat.ZIP) -> None:
        self.limits = limits
        self.format = fmt
        self.count = 0
        self._raw = 0  # ZIP: sum of entry bounds; tar.gz: exact tar bytes of the entries

    def bound(self) -> int:
        """Upper bound of the archive's size if it were finished now."""
        return self._bound_of(self._raw)

    def verdict(self, size: int, name_bytes: int = MAX_ENTRY_NAME_BYTES) -> Fit:
        """Can an invoice of `size` bytes (entry name of `name_bytes`) join this batch?"""
        if size > self.limits.max_invoice_bytes or not self._fits(self._entry(size, name_bytes)):
            return Fit.NEVER
        if self.count >= self.limits.max_invoices:
            return Fit.FULL
        if not self._fits(self._raw + self._entry(size, name_bytes)):
            return Fit.FULL
        return Fit.FITS

    def fits(self, size: int, name_bytes: int = MAX_ENTRY_NAME_BYTES) -> bool:
        return self.verdict(size, name_bytes) is Fit.FITS

    def add(self, size: int, name_bytes: int = MAX_ENTRY_NAME_BYTES) -> None:
        """Account for one invoice; raises instead of letting a limit be passed."""
        verdict = self.verdict(size, name_bytes)
        if verdict is Fit.NEVER:
            raise InvoiceTooLarge(
                f"an invoice of {size} bytes cannot fit any batch (limits: invoice "
                f"{self.limits.max_invoice_bytes} B, archive {self.limits.max_archive_bytes} B)"
            )
        if verdict is Fit.FULL:
            raise BatchFull(
                f"batch holds {self.count} invoices, archive bound {self.bound()} B: "
                f"one more of {size} B could pass the limit of {self.limits.max_invoices} "
                f"invoices or {self.limits.max_archive_bytes} B"
            )
        self.count += 1
        self._raw += self._entry(size, name_bytes)

    def settle(self, committed_bytes: int) -> None:
        """ZIP only: replace the running bound by the exact size of the entries written.

        ZIP entries are compressed one by one, so once written their size is final; a
        builder that writes as it goes can then fit as many invoices as the real
        compression allows, while the next invoice is still judged by its worst case.
        """
        if self.format is not PackageFormat.ZIP:
            raise ValueError("only a ZIP's size is final entry by entry")
        if committed_bytes > self._raw:
            raise RuntimeError(
                f"ZIP entries take {committed_bytes} bytes, above their bound {self._raw}"
            )
        self._raw = committed_bytes

    def _entry(self, size: int, name_bytes: int) -> int:
        if self.format is PackageFormat.ZIP:
            return zip_entry_bound(size, name_bytes)
        return tar_entry_bytes(size)

    def _bound_of(self, raw: int) -> int:
        if self.format is PackageFormat.ZIP:
            return raw + ZIP_TRAILER_BYTES
        return tar_gz_bound(raw)

    def _fits(self, raw: int) -> bool:
        return self._bound_of(raw) <= self.limits.max_archive_bytes
