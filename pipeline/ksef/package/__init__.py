"""Batch packages for KSeF batch sessions.

An ordered list of invoices becomes one deterministic archive (ZIP or tar.gz) in a spool
directory, split binarily into parts, each part encrypted under a fresh session key that
is wrapped with the KSeF public key at once. Nothing here holds a whole package in memory:
invoices pass through one at a time and parts are encrypted chunk by chunk from disk.
"""

from pipeline.ksef.package.builder import PackageBuilder, PackagedBatch, seal_package
from pipeline.ksef.package.formats import PackageFormat
from pipeline.ksef.package.limits import BatchLimits
from pipeline.ksef.package.manifest import (
    FORM_CODE_FA3,
    InvoiceEntry,
    InvoiceSource,
    PackageManifest,
    PartInfo,
    SourcePosition,
)
from pipeline.ksef.package.planner import Fit, PackPlanner
from pipeline.ksef.package.rebuild import RebuildMismatch, rebuild_package
from pipeline.ksef.package.spool import SpoolKey

__all__ = [
    "FORM_CODE_FA3",
    "BatchLimits",
    "Fit",
    "InvoiceEntry",
    "InvoiceSource",
    "PackPlanner",
    "PackageBuilder",
    "PackageFormat",
    "PackageManifest",
    "PackagedBatch",
    "PartInfo",
    "RebuildMismatch",
    "SourcePosition",
    "SpoolKey",
    "rebuild_package",
    "seal_package",
]
