"""The two archive formats a KSeF batch package may take."""

from __future__ import annotations

import enum


class PackageFormat(enum.Enum):
    """Value is our own short name; `compression_type` is KSeF's `compressionType`."""

    ZIP = "zip"
    TAR_GZ = "tar.gz"

    @property
    def compression_type(self) -> str:
        return "Zip" if self is PackageFormat.ZIP else "TarGz"

    @property
    def file_name(self) -> str:
        return f"package.{self.value}"

    @classmethod
    def parse(cls, text: str) -> PackageFormat:
        """Accept our name or KSeF's (`zip`, `tar.gz`, `Zip`, `TarGz`, `targz`)."""
        norm = text.strip().lower().replace(".", "")
        for fmt in cls:
            if norm in (fmt.value.replace(".", ""), fmt.compression_type.lower()):
                return fmt
        raise ValueError(f"unknown package format {text!r}: expected 'zip' or 'tar.gz'")
