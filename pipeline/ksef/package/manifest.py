"""What a packed batch is, as published on `ksef.batches.packed`.

The manifest holds no key material that we could use: only the session key wrapped with
the KSeF public key, the IV, the hashes and sizes KSeF checks, and the invoices named by
their Kafka coordinates so any worker can rebuild the package byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pipeline.ksef.package.formats import PackageFormat

_T = TypeVar("_T")

FORM_CODE_FA3: Mapping[str, str] = {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"}


class SourcePosition(Protocol):
    """Anything naming where a sealed invoice lives in the log (the stages pass their Kafka
    reference): the package keeps its three coordinates, never the object."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class InvoiceSource:
    """Where the sealed invoice of a manifest entry lives in the log (topic, partition,
    offset): the domain's own neutral reference, the same coordinates as a record's
    `KafkaRef` but not that type, so the domain never imports `topics`."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class InvoiceEntry:
    """One invoice of the package, in package order."""

    topic: str
    partition: int
    offset: int
    invoice_hash: str  # SHA-256 base64 of the plaintext XML, KSeF's correlation key
    invoice_size: int
    entry_name: str

    @property
    def source(self) -> InvoiceSource:
        return InvoiceSource(self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class PartInfo:
    """One encrypted part: `offset`/`plain_size` locate it in the package."""

    ordinal: int  # 1-based, KSeF's ordinalNumber
    offset: int
    plain_size: int
    file_size: int  # encrypted size, as declared to KSeF
    file_hash: str  # SHA-256 base64 of the encrypted part

    @property
    def file_name(self) -> str:
        return part_file_name(self.ordinal)


def part_file_name(ordinal: int) -> str:
    return f"part-{ordinal:02d}.aes"


@dataclass(frozen=True, slots=True)
class PackageManifest:
    batch_id: str
    format: PackageFormat
    package_size: int
    package_hash: str
    parts: tuple[PartInfo, ...]
    encrypted_key: str  # base64 of the RSA-OAEP-wrapped AES key
    iv: str  # base64 of the 16-byte IV shared by all parts
    entries: tuple[InvoiceEntry, ...]
    deflate_level: int
    zlib_version: str  # a rebuild is byte-identical only with the same deflate

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError(f"batch {self.batch_id}: a package needs at least one invoice")
        expected = 0
        for index, part in enumerate(self.parts, start=1):
            if part.ordinal != index or part.offset != expected:
                raise ValueError(f"batch {self.batch_id}: part {index} is out of sequence")
            expected += part.plain_size
        if not self.parts or expected != self.package_size:
            raise ValueError(
                f"batch {self.batch_id}: parts cover {expected} bytes, "
                f"package has {self.package_size}"
            )

    @property
    def invoice_count(self) -> int:
        return len(self.entries)

    def open_batch_request(self, *, offline_mode: bool = False) -> dict[str, Any]:
        """Body of `POST /sessions/batch` (OpenBatchSessionRequest)."""
        return {
            "formCode": dict(FORM_CODE_FA3),
            "batchFile": {
                "fileSize": self.package_size,
                "fileHash": self.package_hash,
                "compressionType": self.format.compression_type,
                "fileParts": [
                    {"ordinalNumber": p.ordinal, "fileSize": p.file_size, "fileHash": p.file_hash}
                    for p in self.parts
                ],
            },
            "encryption": {
                "encryptedSymmetricKey": self.encrypted_key,
                "initializationVector": self.iv,
            },
            "offlineMode": offline_mode,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, named like the `ksef.batches.packed` record."""
        data = self.header_dict()
        data["invoices"] = [
            {
                "sha256": e.invoice_hash,
                "size": e.invoice_size,
                "entry": e.entry_name,
                "ref": {"topic": e.topic, "partition": e.partition, "offset": e.offset},
            }
            for e in self.entries
        ]
        return data

    def header_dict(self) -> dict[str, Any]:
        """`to_dict` without the invoices, for a caller that lists them its own way (a
        10,000-invoice list is 20,000 dicts)."""
        return {
            "batch_id": self.batch_id,
            "archive_format": self.format.value,
            "package_sha256": self.package_hash,
            "package_size": self.package_size,
            "parts": [
                {
                    "ordinal": p.ordinal,
                    "size": p.file_size,
                    "sha256": p.file_hash,
                    "offset": p.offset,
                    "plain_size": p.plain_size,
                }
                for p in self.parts
            ],
            "wrapped_key_b64": self.encrypted_key,
            "iv_b64": self.iv,
            "deflate_level": self.deflate_level,
            "zlib_version": self.zlib_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PackageManifest:
        """Inverse of `to_dict`; other keys (such as the record's own) are ignored."""
        parts = tuple(
            PartInfo(
                ordinal=_get(p, "ordinal", int, "part"),
                offset=_get(p, "offset", int, "part"),
                plain_size=_get(p, "plain_size", int, "part"),
                file_size=_get(p, "size", int, "part"),
                file_hash=_get(p, "sha256", str, "part"),
            )
            for p in _get(data, "parts", list, "manifest")
        )
        entries = []
        for invoice in _get(data, "invoices", list, "manifest"):
            ref = _get(invoice, "ref", dict, "invoice")
            entries.append(
                InvoiceEntry(
                    topic=_get(ref, "topic", str, "invoice ref"),
                    partition=_get(ref, "partition", int, "invoice ref"),
                    offset=_get(ref, "offset", int, "invoice ref"),
                    invoice_hash=_get(invoice, "sha256", str, "invoice"),
                    invoice_size=_get(invoice, "size", int, "invoice"),
                    entry_name=_get(invoice, "entry", str, "invoice"),
                )
            )
        return cls(
            batch_id=_get(data, "batch_id", str, "manifest"),
            format=PackageFormat.parse(_get(data, "archive_format", str, "manifest")),
            package_size=_get(data, "package_size", int, "manifest"),
            package_hash=_get(data, "package_sha256", str, "manifest"),
            parts=parts,
            encrypted_key=_get(data, "wrapped_key_b64", str, "manifest"),
            iv=_get(data, "iv_b64", str, "manifest"),
            entries=tuple(entries),
            deflate_level=_get(data, "deflate_level", int, "manifest"),
            zlib_version=_get(data, "zlib_version", str, "manifest"),
        )


def _get(data: Any, key: str, kind: type[_T], where: str) -> _T:
    """data[key] checked to be a `kind` (bool is not accepted as int)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be an object, got {type(data).__name__}")
    if key not in data:
        raise ValueError(f"{where} lacks field {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{where} field {key!r} must be {kind.__name__}, got {value!r}")
    return value
