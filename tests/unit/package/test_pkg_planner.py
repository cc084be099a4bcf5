from __future__ import annotations

import io
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ksef.package import BatchLimits, Fit, PackageFormat, PackPlanner
from pipeline.ksef.package.planner import BatchFull, InvoiceTooLarge
from pipeline.ksef.package.writer import ENTRY_NAME_BYTES, entry_name, open_writer

FORMATS = list(PackageFormat)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_10001st_invoice_is_refused(fmt: PackageFormat) -> None:
    planner = PackPlanner(BatchLimits(), fmt)
    for _ in range(10_000):
        planner.add(5_000, ENTRY_NAME_BYTES)
    assert planner.count == 10_000
    assert planner.verdict(5_000) is Fit.FULL
    with pytest.raises(BatchFull, match="10000 invoices"):
        planner.add(5_000)
    assert planner.count == 10_000


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "limits",
    [
        BatchLimits(max_parts=3, max_part_bytes=20_000),  # parts x part size binds: 60,000
        BatchLimits(max_part_bytes=100_000, max_package_bytes=45_000),  # package size binds
    ],
)
def test_flushes_before_the_archive_could_pass_the_size_limit(
    fmt: PackageFormat, limits: BatchLimits
) -> None:
    planner = PackPlanner(limits, fmt)
    while planner.fits(7_000):
        planner.add(7_000)
    assert planner.bound() <= limits.max_archive_bytes
    assert planner.count >= 2
    assert planner.verdict(7_000) is Fit.FULL
    with pytest.raises(BatchFull):
        planner.add(7_000)
    # ... but not long before: less than one more invoice's worth of room is left
    assert limits.max_archive_bytes - planner.bound() < 8_000


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_invoice_no_batch_can_hold_is_never_rather_than_full(fmt: PackageFormat) -> None:
    planner = PackPlanner(BatchLimits(max_part_bytes=10_000, max_parts=2), fmt)
    assert planner.verdict(25_000) is Fit.NEVER  # larger than any archive allowed
    assert planner.verdict(3_000_001) is Fit.NEVER  # above KSeF's 3 MB invoice cap
    with pytest.raises(InvoiceTooLarge):
        planner.add(25_000)
    assert PackPlanner(BatchLimits(), fmt).verdict(3_000_000) is Fit.FITS
    capped = PackPlanner(BatchLimits(max_invoice_bytes=1_000_000), fmt)
    assert capped.verdict(1_000_001) is Fit.NEVER


def test_limits_cannot_exceed_ksef_ceilings() -> None:
    with pytest.raises(ValueError, match="max_invoices"):
        BatchLimits(max_invoices=10_001)
    with pytest.raises(ValueError, match="max_part_bytes"):
        BatchLimits(max_part_bytes=100_000_001)
    with pytest.raises(ValueError, match="max_parts"):
        BatchLimits(max_parts=0)
    small = BatchLimits().with_part_bytes(1_000)
    assert small.max_part_bytes == 1_000
    assert small.max_archive_bytes == 50_000
    assert BatchLimits().max_archive_bytes == 5_000_000_000


def _content(rng: random.Random, size: int, kind: str) -> bytes:
    if kind == "noise":
        return rng.randbytes(size)
    if kind == "text":
        return (b"<Wiersz>towar</Wiersz>" * (size // 22 + 1))[:size]
    return bytes(rng.choice(b"<>/abcdefgh0123456789 ") for _ in range(size))


@settings(max_examples=40, deadline=None)
@given(
    fmt=st.sampled_from(FORMATS),
    level=st.integers(0, 9),
    seed=st.integers(0, 2**32),
    invoices=st.lists(
        st.tuples(st.integers(0, 40_000), st.sampled_from(["noise", "text", "mixed"])),
        min_size=1,
        max_size=12,
    ),
)
def test_bound_is_never_below_the_real_archive(
    fmt: PackageFormat, level: int, seed: int, invoices: list[tuple[int, str]]
) -> None:
    rng = random.Random(seed)
    planner = PackPlanner(BatchLimits(), fmt)
    sink = io.BytesIO()
    writer = open_writer(fmt, sink, level=level)
    for ordinal, (size, kind) in enumerate(invoices, start=1):
        name = entry_name(ordinal, "A" * 43 + "=")
        planner.add(size, len(name))
        writer.add(name, _content(rng, size, kind))
    assert writer.finish().size <= planner.bound()


@pytest.mark.parametrize("fmt", FORMATS)
def test_bound_holds_for_largest_incompressible_invoices(fmt: PackageFormat) -> None:
    planner = PackPlanner(BatchLimits(), fmt)
    writer = open_writer(fmt, io.BytesIO(), level=9)
    for ordinal in (1, 2):
        planner.add(3_000_000, 3)
        writer.add(f"{ordinal}.x", os.urandom(3_000_000))
    actual = writer.finish().size
    assert actual <= planner.bound()
    assert planner.bound() - actual < 20_000  # conservative, not wasteful


def test_settling_a_zip_with_its_real_size_makes_room_but_keeps_the_worst_case_next() -> None:
    planner = PackPlanner(BatchLimits(max_parts=2, max_part_bytes=10_000), PackageFormat.ZIP)
    planner.add(11_000, 10)
    assert planner.verdict(11_000, 10) is Fit.FULL  # two raw 11 KB entries exceed 20 KB
    planner.settle(2_000)  # the first one compressed well
    assert planner.verdict(11_000, 10) is Fit.FITS
    with pytest.raises(RuntimeError, match="above their bound"):
        planner.settle(planner.bound())
    with pytest.raises(ValueError, match="only a ZIP"):
        PackPlanner(BatchLimits(), PackageFormat.TAR_GZ).settle(0)
