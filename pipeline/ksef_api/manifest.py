"""From a packed batch (`pipeline.ksef.package`) to what the client needs to submit it."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from pipeline.ksef.package.manifest import PackageManifest
from pipeline.ksef_api.bodies import BatchSpec, PartSpec


def _unb64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"manifest {what} is not base64") from exc


def batch_spec(
    manifest: PackageManifest, *, offline_mode: bool = False, public_key_id: str | None = None
) -> BatchSpec:
    """The `POST /sessions/batch` content of a manifest (declared sizes and hashes)."""
    return BatchSpec(
        file_size=manifest.package_size,
        file_hash=manifest.package_hash,
        parts=tuple(PartSpec(p.ordinal, p.file_size, p.file_hash) for p in manifest.parts),
        encrypted_key=_unb64(manifest.encrypted_key, "wrapped key"),
        iv=_unb64(manifest.iv, "IV"),
        compression_type=manifest.format.compression_type,
        offline_mode=offline_mode,
        public_key_id=public_key_id,
    )


def part_files(manifest: PackageManifest, directory: Path) -> dict[int, Path]:
    """Where each encrypted part of the manifest lies in its spool `directory`."""
    return {p.ordinal: directory / p.file_name for p in manifest.parts}


def part_sizes(manifest: PackageManifest) -> dict[int, int]:
    """Declared encrypted size per ordinal, checked against the files before upload."""
    return {p.ordinal: p.file_size for p in manifest.parts}
