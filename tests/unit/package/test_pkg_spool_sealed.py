"""Issue 16 point 4: no plaintext at rest in the spool, private modes, orphans swept.

Names added by the fix are imported inside the tests, so on the code before it each test
fails on its own (an assertion or a missing name), not the module as a whole.
"""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.ksef.numbers import sha256_b64
from pipeline.ksef.package import InvoiceSource, PackageBuilder, PackageFormat
from pipeline.ksef.package import spool as spool_module

WINDOW = 16
REPO = Path(__file__).resolve().parents[3]


def random_invoices(count: int, size: int, seed: int) -> list[bytes]:
    """Incompressible invoices: deflate stores them, so a plaintext archive holds them
    verbatim (in the ZIP's stored entries and in tar.gz's stored deflate blocks)."""
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(count)]


def windows(invoices: list[bytes]) -> set[bytes]:
    return {inv[i:i + WINDOW] for inv in invoices for i in range(len(inv) - WINDOW + 1)}


def leaks(directory: Path, plain: set[bytes]) -> list[str]:
    """Files under `directory` holding a run of >= 16 bytes of any invoice."""
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for i in range(len(data) - WINDOW + 1):
            if data[i:i + WINDOW] in plain:
                found.append(f"{path.relative_to(directory)}@{i}")
                break
    return found


def leaks_in(data: bytes, plain: set[bytes]) -> bool:
    return any(data[i:i + WINDOW] in plain for i in range(len(data) - WINDOW + 1))


def files_and_dirs(root: Path) -> Iterator[Path]:
    yield root
    yield from root.rglob("*")


@pytest.fixture
def small_write_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """What is written reaches the disk at once (a 1 MB buffer would hide it until then)."""
    monkeypatch.setattr(spool_module, "WRITE_BUFFER_BYTES", 4096)


@pytest.mark.parametrize("fmt", list(PackageFormat))
@pytest.mark.parametrize("keep_package", [False, True])
def test_no_file_in_the_spool_ever_holds_invoice_plaintext(
    tmp_path: Path, ksef_public_key: rsa.RSAPublicKey, small_write_buffer: None,
    fmt: PackageFormat, keep_package: bool,
) -> None:
    invoices = random_invoices(8, 20_000, seed=1)
    plain = windows(invoices)
    spool = tmp_path / "spool"
    builder = PackageBuilder(spool / "5265877635-00000000000000aa", batch_id="b", fmt=fmt,
                             fsync=False)
    for offset, xml in enumerate(invoices):
        builder.add(InvoiceSource("sealed", 0, offset), xml)
        assert leaks(spool, plain) == [], f"plaintext on disk after invoice {offset}"
    batch = builder.finish(ksef_public_key, keep_package=keep_package)
    assert leaks(spool, plain) == [], "plaintext on disk after finish"
    if keep_package:  # the kept package is readable through the batch (in memory) only
        package = batch.read_package()  # type: ignore[attr-defined]
        assert sha256_b64(package) == batch.manifest.package_hash
        assert leaks_in(package, plain)


def test_a_package_left_by_a_crash_holds_no_plaintext(tmp_path: Path) -> None:
    """A worker killed mid-batch (no finish, no abort, buffers lost) leaves a `.tmp` of
    ciphertext only; its key died with the process."""
    spool = tmp_path / "spool"
    script = textwrap.dedent(f"""
        import os, random
        from pathlib import Path
        from pipeline.ksef.package import InvoiceSource, PackageBuilder
        from pipeline.ksef.package import spool
        spool.WRITE_BUFFER_BYTES = 4096
        rng = random.Random(2)
        b = PackageBuilder(Path({str(spool)!r}) / "5265877635-00000000000000bb",
                           batch_id="b", fsync=False)
        for i in range(6):
            b.add(InvoiceSource("sealed", 0, i), rng.randbytes(20_000))
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, timeout=60)
    left = sorted(p.name for p in (spool / "5265877635-00000000000000bb").iterdir())
    assert left == ["package.zip.tmp"]
    assert (spool / "5265877635-00000000000000bb" / "package.zip.tmp").stat().st_size > 60_000
    assert leaks(spool, windows(random_invoices(6, 20_000, seed=2))) == []


def test_spool_files_are_0600_and_directories_0700_under_umask_022(
    tmp_path: Path, ksef_public_key: rsa.RSAPublicKey,
) -> None:
    old = os.umask(0o022)
    try:
        root = tmp_path / "spool"
        batch = root / "5265877635-00000000000000cc"
        builder = PackageBuilder(batch, batch_id="b", fsync=False)
        builder.add(InvoiceSource("sealed", 0, 1), b"<Faktura>1</Faktura>")
        seen = {p: stat.S_IMODE(p.stat().st_mode) for p in files_and_dirs(root)}
        builder.finish(ksef_public_key, keep_package=True)
        seen |= {p: stat.S_IMODE(p.stat().st_mode) for p in files_and_dirs(root)}
        assert {p.name: m for p, m in seen.items()} == {
            p.name: 0o700 if p.is_dir() else 0o600 for p in seen}

        from pipeline.ksef.package.spool import sweep_spool, write_private

        write_private(root / "mf-public-key.json", b"{}")
        seen[root / "mf-public-key.json"] = stat.S_IMODE(
            (root / "mf-public-key.json").stat().st_mode)
        assert {p.name: m for p, m in seen.items() if p.is_dir()} == {
            "spool": 0o700, batch.name: 0o700}
        assert {p.name for p in seen} >= {"package.zip", "package.zip.tmp", "part-01.aes",
                                          "mf-public-key.json"}
        assert {p.name: m for p, m in seen.items() if not p.is_dir()} == {
            p.name: 0o600 for p in seen if not p.is_dir()}
        # a spool of an older version (0755/0644) is tightened at start-up
        legacy = root / "5265877635-00000000000000dd"
        legacy.mkdir(mode=0o755)
        (legacy / "part-01.aes").write_bytes(b"x" * 32)
        os.chmod(legacy / "part-01.aes", 0o644)
        os.chmod(root, 0o755)
        sweep_spool(root, sealed_max_age_s=3600)
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        assert stat.S_IMODE(legacy.stat().st_mode) == 0o700
        assert stat.S_IMODE((legacy / "part-01.aes").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_orphans_are_swept_and_open_or_sealed_batches_kept(
    tmp_path: Path, ksef_public_key: rsa.RSAPublicKey,
) -> None:
    from pipeline.ksef.package.spool import sweep_spool

    root = tmp_path / "spool"
    root.mkdir()
    nip = "5265877635"

    def batch(name: str, *files: str, age_s: float = 0) -> Path:
        path = root / name
        path.mkdir()
        for file in files:
            (path / file).write_bytes(os.urandom(64))
            when = time.time() - age_s
            os.utime(path / file, (when, when))
        return path

    crashed_open = batch(f"{nip}-{'1' * 16}", "package.zip.tmp")
    crashed_sealing = batch(f"{nip}-{'2' * 16}", "package.zip", "part-01.aes",
                            "part-02.aes.tmp")
    crashed_unpublished = batch(f"{nip}-{'3' * 16}", "package.tar.gz", "part-01.aes")
    empty = batch(f"{nip}-{'4' * 16}")
    sealed = batch(f"{nip}-{'5' * 16}", "part-01.aes", "part-02.aes")
    stale = batch(f"{nip}-{'6' * 16}", "part-01.aes", age_s=8 * 86400)
    rebuild_crashed = batch(f"{nip}-{'5' * 16}-rebuilt", "package.zip.tmp")
    foreign = batch("not-a-batch", "package.zip.tmp")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "package.zip.tmp").write_bytes(b"x")
    (root / f"{nip}-{'7' * 16}").symlink_to(outside)
    (root / "mf-public-key.json").write_bytes(b"{}")

    open_dir = root / f"{nip}-{'8' * 16}"
    with PackageBuilder(open_dir, batch_id="b", fsync=False) as open_batch:
        open_batch.add(InvoiceSource("sealed", 0, 1), b"<Faktura/>")
        report = sweep_spool(root, sealed_max_age_s=7 * 86400)
        assert open_dir.is_dir() and report.busy == [open_dir]
        open_batch.finish(ksef_public_key, keep_package=False)
    for gone in (crashed_open, crashed_sealing, crashed_unpublished, empty, stale,
                 rebuild_crashed):
        assert not gone.exists(), gone.name
    assert sorted(report.removed) == sorted([crashed_open, crashed_sealing,
                                             crashed_unpublished, empty, stale,
                                             rebuild_crashed])
    assert report.kept == [sealed]
    assert sorted(p.name for p in sealed.iterdir()) == ["part-01.aes", "part-02.aes"]
    assert (foreign / "package.zip.tmp").exists()  # not a name the pack stage makes
    assert (outside / "package.zip.tmp").exists()  # a symlink is never followed
    assert (root / "mf-public-key.json").exists()
    assert sorted(p.name for p in open_dir.iterdir()) == ["part-01.aes"]
    # the sealed batch is now swept like any other: it is not locked any more
    assert sweep_spool(root, sealed_max_age_s=7 * 86400).kept == [sealed, open_dir]


def test_a_batch_swept_while_its_builder_starts_is_made_again(tmp_path: Path) -> None:
    from pipeline.ksef.package.spool import BatchLock, sweep_spool

    root = tmp_path / "spool"
    path = root / "5265877635-00000000000000ee"
    root.mkdir()
    path.mkdir()
    sweep_spool(root, sealed_max_age_s=60)  # empty and unlocked: an orphan
    assert not path.exists()
    with BatchLock(path):  # made again and held
        assert path.is_dir()
        assert sweep_spool(root, sealed_max_age_s=60).busy == [path]


@pytest.mark.parametrize("batch_id", ["/etc", "../../x", "..", ".", "", "a/b", "-rf",
                                      "x\x00", "5265877635-" + "a" * 200])
def test_a_record_never_names_what_the_submit_stage_deletes(
    tmp_path: Path, batch_id: str,
) -> None:
    from pipeline.runtime.spool_paths import batch_spool, drop_batch_spool
    from topics.records import PackedBatch

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_bytes(b"x")
    root = tmp_path / "work" / "spool"
    root.mkdir(parents=True)
    (root / "5265877635-0123456789abcdef").mkdir()
    for spool_dir in ("/etc", "../../x", str(victim)):
        rec = _record(batch_id, spool_dir)
        with pytest.raises(ValueError, match="not a safe spool directory name"):
            batch_spool(root, rec)
        with pytest.raises(ValueError, match="not a safe spool directory name"):
            drop_batch_spool(root, rec)
    assert (victim / "keep").exists() and (root / "5265877635-0123456789abcdef").is_dir()
    # a good id with a hostile spool_dir: only the root's own directory is removed
    rec = _record("5265877635-0123456789abcdef", str(victim))
    assert batch_spool(root, rec) == root / "5265877635-0123456789abcdef"
    assert drop_batch_spool(root, rec) == [root / "5265877635-0123456789abcdef"]
    assert (victim / "keep").exists() and list(root.iterdir()) == []
    assert isinstance(rec, PackedBatch)


def _record(batch_id: str, spool_dir: str) -> object:
    from topics.records import PackedBatch

    return PackedBatch(batch_id=batch_id, seller_nip="5265877635", archive_format="zip",
                       package_sha256="x", package_size=1, parts=[], wrapped_key_b64="",
                       iv_b64="", deflate_level=3, zlib_version="1", invoices=[],
                       packed_at="2026-12-04T22:00:00+00:00", spool_dir=spool_dir,
                       offline_mode=False)


def test_spool_key_reads_back_from_any_offset(tmp_path: Path) -> None:
    from pipeline.ksef.package.spool import AtomicFile, SpoolKey

    data = os.urandom(100_003)
    key = SpoolKey.generate()
    with AtomicFile(tmp_path / "f", fsync=False, key=key) as out:
        for start in range(0, len(data), 777):
            out.stream.write(data[start:start + 777])
    on_disk = (tmp_path / "f").read_bytes()
    assert len(on_disk) == len(data) and on_disk != data
    for offset, length in [(0, None), (1, 5), (15, 17), (16, 16), (4095, 40_000),
                           (99_990, None)]:
        got = b"".join(key.read(tmp_path / "f", offset, length))
        assert got == data[offset:None if length is None else offset + length]
    assert b"".join(SpoolKey.generate().read(tmp_path / "f")) != data
    assert "redacted" in repr(key)


def test_a_spool_that_cannot_be_swept_does_not_stop_packing(tmp_path: Path) -> None:
    from pipeline.stages.s2_pack.packing import PackSettings, prepare_spool

    (tmp_path / "spool").write_bytes(b"not a directory")
    report = prepare_spool(PackSettings(spool_dir=tmp_path / "spool"))
    assert report.error is not None and report.removed == []
    assert prepare_spool(PackSettings(spool_dir=tmp_path / "fresh")).error is None
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700
