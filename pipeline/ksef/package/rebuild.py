"""Re-create a package from Kafka when the spool copy is gone.

The manifest lists every invoice by its Kafka coordinates, name and hash, in package
order; with the same writer and deflate the archive comes out byte for byte the same.
Every invoice and finally the package hash are checked, so a rebuild either reproduces
exactly what KSeF was (or will be) told, or fails loudly.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

from pipeline.ksef.crypto import Digest
from pipeline.ksef.numbers import sha256_b64
from pipeline.ksef.package.manifest import InvoiceSource, PackageManifest
from pipeline.ksef.package.spool import AtomicFile, SpoolKey
from pipeline.ksef.package.writer import open_writer

# The invoice's exact bytes and, when its record carries one, their DEFLATE stream.
FetchInvoice = Callable[[InvoiceSource], tuple[bytes, bytes | None]]


class RebuildMismatch(ValueError):
    """The rebuilt package (or one of its invoices) differs from the manifest."""


def rebuild_package(
    manifest: PackageManifest, fetch: FetchInvoice, path: Path, *, spool_key: SpoolKey,
    fsync: bool = True,
) -> Digest:
    """Write the package described by `manifest` to `path`, encrypted under `spool_key`
    (hash and size are the plaintext archive's); `fetch` returns the plaintext XML (and
    its deflated stream, as the sealed record holds it).

    On any mismatch nothing is left at `path` and RebuildMismatch says what differed.
    """
    with AtomicFile(path, fsync=fsync, key=spool_key) as out:
        writer = open_writer(manifest.format, out.stream, level=manifest.deflate_level)
        for entry in manifest.entries:
            xml, deflated = fetch(entry.source)
            if len(xml) != entry.invoice_size or sha256_b64(xml) != entry.invoice_hash:
                raise RebuildMismatch(
                    f"batch {manifest.batch_id}: invoice {entry.entry_name} fetched from "
                    f"{entry.topic}/{entry.partition}@{entry.offset} is not the one packed "
                    f"({len(xml)} bytes, expected {entry.invoice_size} with hash "
                    f"{entry.invoice_hash})"
                )
            writer.add(entry.entry_name, xml, deflated)
        digest = writer.finish()
        if digest != Digest(manifest.package_hash, manifest.package_size):
            zlib_note = (
                ""
                if manifest.zlib_version == zlib.ZLIB_RUNTIME_VERSION
                else f"; packed with zlib {manifest.zlib_version}, "
                f"this worker has {zlib.ZLIB_RUNTIME_VERSION}"
            )
            raise RebuildMismatch(
                f"batch {manifest.batch_id}: rebuilt package is {digest.size} bytes with hash "
                f"{digest.sha256_b64}, expected {manifest.package_size} bytes with hash "
                f"{manifest.package_hash}{zlib_note}"
            )
    return digest
