"""validate+seal and the duplicate check (pack) on the real broker: every input comes out
once, valid ones sealed without plaintext, invalid ones rejected with the right reason,
duplicates caught by the stage owning the seller's numbers, across worker restarts."""

from __future__ import annotations

import base64
import datetime as dt
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.clock import polish_today
from pipeline.demo.samples import bad_invoices, make_invoice, seller_nips
from pipeline.ksef.keyring import Keyring
from pipeline.ksef.numbers import sha256_b64
from tests.kafka_harness import KafkaSandbox, start_worker
from topics.catalog import REJECTED, SEALED, SUBMITTED
from topics.codec import decode, encode
from topics.records import Rejection
from topics.sealed import open_sealed, read_meta


def _corpus(count: int, today: dt.date) -> list[tuple[str, bytes]]:
    sellers = seller_nips(3, seed=11)
    profiles = ["small", "typical", "typical", "large"]
    return [
        (f"ok-{i}", make_invoice(seller_nip=sellers[i % 3], number=f"FV/{i}/2026",
                                 issue_date=today - dt.timedelta(days=i % 3),
                                 profile=profiles[i % 4], seed=i))
        for i in range(count)
    ]


def _keyring_env(tmp_path: Path, key: bytes) -> dict[str, str]:
    """A worker environment with a one-key keyring file."""
    keyring_file = tmp_path / "keyring.json"
    keyring_file.write_bytes(orjson.dumps({"active": "k1", "keys": {
        "k1": base64.b64encode(key).decode()}}))
    keyring_file.chmod(0o600)  # a keyring others may read is refused
    return {"KSEF_KEYRING_FILE": str(keyring_file)}


def _wait_for_changelog(sandbox: KafkaSandbox, name: str, count: int,
                        timeout_s: float = 120) -> None:
    consumer = Consumer({"bootstrap.servers": sandbox.bootstrap, "group.id": "changelog-reader",
                         "enable.auto.commit": False, "log_level": 3})
    deadline = time.monotonic() + timeout_s
    seen = 0
    try:
        while name not in consumer.list_topics(timeout=10).topics:
            assert time.monotonic() < deadline, f"{name} never created"
            time.sleep(0.2)  # topic creation is not an event we can subscribe to
        partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in partitions])
        while seen < count:
            assert time.monotonic() < deadline, f"{name}: {seen} of {count} records"
            seen += len(consumer.consume(100, 0.5))
    finally:
        consumer.close()


def _no_plaintext_run(plain: bytes, record: bytes, run: int = 16) -> bool:
    runs = {plain[i:i + run] for i in range(0, len(plain) - run + 1)}
    return not any(record[j:j + run] in runs for j in range(0, len(record) - run + 1))


def test_mixed_corpus_every_input_accounted_for(sandbox: KafkaSandbox, tmp_path: Path) -> None:
    today = polish_today()
    good = _corpus(240, today)
    first_half = 200
    bad = [(f"bad-{i}-{reason}", data) for i, (reason, data) in enumerate(bad_invoices(today))]
    duplicate_of = good[5][1]
    bad.append(("bad-dup-of-ok-5", duplicate_of))  # same triple, other id -> duplicate
    env = _keyring_env(tmp_path, b"\x01" * 32)

    # Small batches, so that the stop below comes while the stream is under way.
    env["KSEF_VALIDATE_BATCH"] = "20"
    worker = start_worker(sandbox, tmp_path, "--stages", "validate,pack", **env)
    try:
        sandbox.produce(SUBMITTED, [(k.encode(), v) for k, v in good[:first_half] + bad[:-1]])
        # Restart mid-stream: stop after the first outputs arrive, then send the rest.
        first = sandbox.consume(SEALED, 10, timeout_s=120)
        assert 10 <= len(first) < first_half, (len(first), worker.log()[-3000:])
        assert worker.stop(signal.SIGTERM) == 0, worker.log()[-3000:]
        sandbox.produce(SUBMITTED, [(k.encode(), v) for k, v in good[first_half:]])
        sandbox.produce(SUBMITTED, [(good[7][0].encode(), good[7][1])])  # exact replay
        worker = start_worker(sandbox, tmp_path, "--stages", "validate,pack",
                              data_dir=worker.data_dir, **env)
        # The duplicate comes after its original was sealed (one stopped mid-stream may
        # be sealed only now: whichever of the two is sealed first holds the number).
        sandbox.consume_until(
            SEALED, lambda got: good[5][0] in {read_meta(m.value()).invoice_id for m in got},
            timeout_s=120)
        sandbox.produce(SUBMITTED, [(bad[-1][0].encode(), bad[-1][1])])
        # every invoice and the late duplicate (it is sealed, then refused by pack)
        wanted = {k for k, _ in good} | {bad[-1][0]}

        def all_sealed(got: list[Any]) -> bool:
            # everything asserted below, the exact replay of ok-7 sealed a second time
            # included (any of them may be on the partition read last: the test must not
            # stop reading before it)
            ids = Counter(read_meta(m.value()).invoice_id for m in got)
            return set(ids) >= wanted and ids[good[7][0]] >= 2

        sealed_msgs = sandbox.consume_until(SEALED, all_sealed, timeout_s=180)
        rejected_msgs = sandbox.consume_until(
            REJECTED, lambda got: {m.key() for m in got} >= {k.encode() for k, _ in bad},
            timeout_s=120)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    sealed = [read_meta(m.value()) for m in sealed_msgs]
    rejected = [decode(Rejection, m.value()) for m in rejected_msgs]
    ids = Counter(s.invoice_id for s in sealed)
    # every valid invoice sealed exactly once, plus the one exact replay (same id + bytes);
    # the duplicate is sealed too: the stage owning its seller's numbers refuses it
    assert set(ids) == {k for k, _ in good} | {bad[-1][0]}
    assert [k for k, n in ids.items() if n > 1] == [good[7][0]], "restart duplicated outputs"
    got, want = Counter(r.invoice_id for r in rejected), Counter(k for k, _ in bad)
    assert got == want, (f"extra {got - want}, missing {want - got}", worker.log()[-5000:])
    expected = {k: k.split("-", 2)[2] if not k.startswith("bad-dup") else "duplicate"
                for k, _ in bad}
    assert {r.invoice_id: r.reason for r in rejected} == expected
    dup = next(r for r in rejected if r.reason == "duplicate")
    assert dup.code == 440 and dup.details["original_invoice_id"] == good[5][0]
    assert all(r.message and r.code in (415, 430, 440, 450) for r in rejected)

    keyring = Keyring({"k1": b"\x01" * 32}, "k1")
    by_id = dict(good)
    by_id[bad[-1][0]] = bad[-1][1]
    for msg, rec in zip(sealed_msgs, sealed, strict=True):
        plain = by_id[rec.invoice_id]
        assert msg.key() == rec.seller_nip.encode()
        assert rec.sha256 == sha256_b64(plain)
        assert open_sealed(msg.value(), keyring).invoice() == plain
        assert len(msg.value()) < len(plain)  # compressed, then encrypted
        assert rec.mode in ("online", "offline24")
        assert rec.qr_code_1.startswith("https://qr-test.ksef.mf.gov.pl/invoice/")
        assert _no_plaintext_run(plain, msg.value()), rec.invoice_id


def test_sigkill_mid_stream_loses_nothing_and_a_redelivery_is_never_a_duplicate(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """A crash (no shutdown code runs) redelivers what was not committed: every invoice
    still comes out, a redelivered one is sealed again identically (downstream treats
    it as a replay) and never refused as a duplicate of itself."""
    today = polish_today()
    good = _corpus(500, today)
    bad = [(f"bad-{i}-{reason}", data) for i, (reason, data) in enumerate(bad_invoices(today))]
    first_batch = good[:400] + bad
    env = _keyring_env(tmp_path, b"\x02" * 32)

    worker = start_worker(sandbox, tmp_path, "--stages", "validate,pack", **env)
    try:
        sandbox.produce(SUBMITTED, [(k.encode(), v) for k, v in first_batch])
        sandbox.consume(SEALED, 20, timeout_s=120)
        assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
        committed = sum(sandbox.committed(SUBMITTED, p) or 0 for p in range(sandbox.partitions))
        assert committed < len(first_batch), "killed too late: nothing left to redeliver"
        sandbox.produce(SUBMITTED, [(k.encode(), v) for k, v in good[400:]])
        # the same data dir: the duplicate table's RocksDB files survive the crash
        worker = start_worker(sandbox, tmp_path, "--stages", "validate,pack",
                              data_dir=worker.data_dir, **env)
        wanted = {k for k, _ in good}
        sealed_msgs = sandbox.consume_until(
            SEALED, lambda got: {read_meta(m.value()).invoice_id
                                 for m in got} >= wanted, timeout_s=180)
        rejected_msgs = sandbox.consume_until(
            REJECTED, lambda got: {m.key() for m in got} >= {k.encode() for k, _ in bad},
            timeout_s=120)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    by_id = dict(good)
    hashes: dict[str, set[str]] = {}
    for rec in (read_meta(m.value()) for m in sealed_msgs):
        hashes.setdefault(rec.invoice_id, set()).add(rec.sha256)
    assert set(hashes) == wanted
    assert all(h == {sha256_b64(by_id[k])} for k, h in hashes.items())
    rejected = [decode(Rejection, m.value()) for m in rejected_msgs]
    assert not [r for r in rejected if r.invoice_id in wanted], "a good invoice was refused"
    reasons: dict[str, set[str]] = {}
    for r in rejected:
        reasons.setdefault(r.invoice_id, set()).add(r.reason)
    assert reasons == {k: {k.split("-", 2)[2]} for k, _ in bad}
    print(f"sealed records {len(sealed_msgs)} for {len(wanted)} invoices, rejections "
          f"{len(rejected)} for {len(bad)}; committed at the kill {committed}")
def test_a_number_refused_after_validation_is_free_for_a_corrected_invoice(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """KSeF refusing an invoice (here as the upo stage reports it) gives its number
    back; a release naming other bytes than the holder's frees nothing."""
    today = polish_today()
    (seller,) = seller_nips(1, seed=21)

    def invoice(number: str, seed: int) -> bytes:
        return make_invoice(seller_nip=seller, number=number, issue_date=today, seed=seed)

    refused, corrected = invoice("FV/R/1", 1), invoice("FV/R/1", 2)
    holder, other = invoice("FV/R/2", 3), invoice("FV/R/2", 4)
    worker = start_worker(sandbox, tmp_path, "--stages", "validate,pack")
    try:
        sandbox.produce(SUBMITTED, [(b"inv-1", refused), (b"inv-2", holder)])
        assert len(sandbox.consume(SEALED, 2, timeout_s=120)) == 2, worker.log()[-3000:]
        # both numbers are taken (the table's changelog has them) before KSeF refuses one
        _wait_for_changelog(sandbox, f"{sandbox.app_group}-pack-validate-ksef-dedupe-changelog",
                            2)

        def ksef_refusal(invoice_id: str, number: str, sha256: str) -> tuple[bytes, bytes]:
            rej = Rejection(invoice_id=invoice_id, stage="upo", code=450, reason="semantic",
                            message="KSeF: semantic verification failed",
                            rejected_at="2026-12-01T10:00:00+01:00", seller_nip=seller,
                            invoice_number=number, sha256=sha256)
            return invoice_id.encode(), encode(rej)

        sandbox.produce(REJECTED, [ksef_refusal("inv-1", "FV/R/1", sha256_b64(refused)),
                                   ksef_refusal("inv-2", "FV/R/2", sha256_b64(other))])
        worker.wait_for_log(r'(?s)"dedupe release applied".*"dedupe release applied"',
                            "both releases applied")
        sandbox.produce(SUBMITTED, [(b"inv-1-fixed", corrected), (b"inv-2-other", other)])
        sealed = sandbox.consume_until(
            SEALED, lambda got: {"inv-1", "inv-1-fixed", "inv-2", "inv-2-other"} <= {
                read_meta(m.value()).invoice_id for m in got}, timeout_s=120)
        rejected = sandbox.consume_until(
            REJECTED, lambda got: b"inv-2-other" in {m.key() for m in got}, timeout_s=120)
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]

    # every one is sealed; the stage owning the seller's numbers refuses inv-2-other
    assert sorted(read_meta(m.value()).invoice_id for m in sealed) == [
        "inv-1", "inv-1-fixed", "inv-2", "inv-2-other"]
    dup = next(decode(Rejection, m.value()) for m in rejected if m.key() == b"inv-2-other")
    assert dup.reason == "duplicate" and dup.details["original_invoice_id"] == "inv-2"
    released = [line for line in worker.log().splitlines() if "dedupe release applied" in line]
    assert sorted(orjson.loads(line)["released"] for line in released) == [False, True]


def test_a_duplicate_delivered_again_at_once_is_refused_once(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """Copies of one sealed duplicate right behind it (as a rebalance redelivers records
    held uncommitted) get no second refusal, though the first has not been read back
    from the rejected topic yet."""
    today = polish_today()
    (seller,) = seller_nips(1, seed=31)
    first = make_invoice(seller_nip=seller, number="FV/D/1", issue_date=today, seed=1)
    dup = make_invoice(seller_nip=seller, number="FV/D/1", issue_date=today, seed=2)
    env = _keyring_env(tmp_path, b"\x03" * 32)
    sealer = start_worker(sandbox, tmp_path, "--stages", "validate", **env)
    try:
        # one after the other: sealed in this order, the first holds the number
        sandbox.produce(SUBMITTED, [(b"inv-first", first)])
        sandbox.consume(SEALED, 1, timeout_s=120)
        sandbox.produce(SUBMITTED, [(b"inv-dup", dup)])
        sealed = sandbox.consume_until(
            SEALED, lambda got: {read_meta(m.value()).invoice_id for m in got}
            >= {"inv-first", "inv-dup"}, timeout_s=120)
    finally:
        assert sealer.stop() == 0, sealer.log()[-3000:]
    copy = next(m for m in sealed if read_meta(m.value()).invoice_id == "inv-dup")
    sandbox.deliver_again(copy, 2)  # the same sealed record twice more, right behind it

    packer = start_worker(sandbox, tmp_path, "--stages", "pack", **env)
    try:
        handled = r'(delivered again; its refusal stands|"event": "rejected")'
        packer.wait_for_log(rf"(?s){handled}.*{handled}.*{handled}",
                            "the duplicate and both copies handled")
    finally:
        assert packer.stop() == 0, packer.log()[-3000:]
    refusals = [decode(Rejection, m.value()) for m in sandbox.read_to_end(REJECTED)
                if m.key() == b"inv-dup"]
    assert [(r.reason, r.details["original_invoice_id"]) for r in refusals] == [
        ("duplicate", "inv-first")], refusals


def _await_assignment(*workers: Any, timeout_s: float = 120) -> None:
    """Until every worker has partitions (its log is the only sign of that)."""
    deadline = time.monotonic() + timeout_s
    for worker in workers:
        while "Executing _on_partitions_assigned" not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.1)


def test_a_worker_joining_mid_stream_repeats_nothing_the_first_one_finished(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """A rebalance is not a crash: a second worker joining while the first is busy takes
    partitions over from their committed offsets, and what the first finished before
    giving them away is committed then (Faust alone forgot it: the newcomer rejected
    invoices a second time). Every input comes out once, rejections included."""
    today = polish_today()
    defects = [data for reason, data in bad_invoices(today)
               if reason not in ("too-large", "attachments-not-allowed")]
    env = _keyring_env(tmp_path, b"\x03" * 32)
    first = start_worker(sandbox, tmp_path, "--stages", "validate", **env)
    second = None
    sent: list[bytes] = []
    joined = threading.Event()

    def feed() -> None:  # a steady stream until the second worker holds partitions
        i = 0
        while not joined.is_set() or i < len(sent) + 200:
            chunk = [(f"join-bad-{j}".encode(), defects[j % len(defects)])
                     for j in range(i, i + 50)]
            sandbox.produce(SUBMITTED, chunk)
            sent.extend(k for k, _ in chunk)
            i += 50
            if joined.is_set():
                break
            time.sleep(0.05)  # pacing the load itself, not waiting for anything

    feeder = threading.Thread(target=feed)
    try:
        feeder.start()
        assert len(sandbox.consume(REJECTED, 100, timeout_s=120)) >= 100, first.log()[-3000:]
        second = start_worker(sandbox, tmp_path, "--stages", "validate", **env)
        _await_assignment(second)
        joined.set()
        feeder.join(timeout=60)
        wanted = set(sent)
        sandbox.consume_until(REJECTED, lambda msgs: {m.key() for m in msgs} >= wanted,
                              timeout_s=240)
    finally:
        joined.set()
        for worker in (first, second):
            if worker is not None:
                assert worker.stop() == 0, worker.log()[-3000:]
    # Both stopped: the topic holds all they ever wrote; read it whole (to its end offsets:
    # a few idle seconds may not be enough for a reader on a loaded machine).
    got = sandbox.read_to_end(REJECTED)
    assert {m.key() for m in got} >= wanted
    repeated = {k: n for k, n in Counter(m.key() for m in got).items() if n > 1}
    print(f"{len(wanted)} rejected, {len(repeated)} of them twice")
    assert not repeated, f"{len(repeated)} rejected twice: {sorted(repeated)[:5]}"


def test_a_worker_leaving_mid_stream_repeats_nothing_it_finished(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """A rolling restart: one of two busy workers stopped with SIGTERM hands its
    partitions over without the other one doing any of its finished work again."""
    today = polish_today()
    defects = [data for reason, data in bad_invoices(today)
               if reason not in ("too-large", "attachments-not-allowed")]
    env = _keyring_env(tmp_path, b"\x04" * 32)
    staying = start_worker(sandbox, tmp_path, "--stages", "validate", **env)
    leaving = start_worker(sandbox, tmp_path, "--stages", "validate", **env)
    sent: list[bytes] = []
    left = threading.Event()

    def feed() -> None:  # a steady stream until the leaving worker is gone, and after
        i, after = 0, 0
        while after < 4:
            chunk = [(f"leave-bad-{j}".encode(), defects[j % len(defects)])
                     for j in range(i, i + 50)]
            sandbox.produce(SUBMITTED, chunk)
            sent.extend(k for k, _ in chunk)
            i += 50
            after += left.is_set()
            time.sleep(0.05)  # pacing the load itself, not waiting for anything

    feeder = threading.Thread(target=feed)
    try:
        _await_assignment(staying, leaving)
        feeder.start()
        assert len(sandbox.consume(REJECTED, 200, timeout_s=120)) >= 200
        assert leaving.stop(signal.SIGTERM) == 0, leaving.log()[-3000:]
        left.set()
        feeder.join(timeout=60)
        wanted = set(sent)
        sandbox.consume_until(REJECTED, lambda msgs: {m.key() for m in msgs} >= wanted,
                              timeout_s=240)
    finally:
        left.set()
        assert staying.stop() == 0, staying.log()[-3000:]
        if leaving.proc.poll() is None:
            leaving.stop()
    got = sandbox.read_to_end(REJECTED)  # both stopped: every record, to the end offsets
    assert {m.key() for m in got} >= wanted
    repeated = {k: n for k, n in Counter(m.key() for m in got).items() if n > 1}
    print(f"{len(wanted)} rejected, {len(repeated)} of them twice")
    assert not repeated, f"{len(repeated)} rejected twice: {sorted(repeated)[:5]}"


def test_an_upgraded_worker_starts_where_the_old_agent_stopped(
        sandbox: KafkaSandbox, tmp_path: Path) -> None:
    """Upgrade to the record loop: its consumer group, new, starts from the commits the
    app's group (the old Faust agent) has on `ksef.invoices.submitted`, so what that
    agent had consumed is not sealed again."""
    good = _corpus(24, polish_today())
    sandbox.produce(SUBMITTED, [(k.encode(), v) for k, v in good])
    placed = sandbox.read_to_end(SUBMITTED)
    assert len(placed) == len(good)
    by_partition: dict[int, list[Any]] = {}
    for msg in placed:
        by_partition.setdefault(msg.partition(), []).append(msg)
    # The old agent had handled the first half of every partition.
    old_group = f"{sandbox.app_group}-validate"  # the app id of a `--stages validate` worker
    consumed, commits = set(), []
    for partition, msgs in by_partition.items():
        msgs.sort(key=lambda m: m.offset())
        half = msgs[:len(msgs) // 2]
        consumed |= {m.key().decode() for m in half}
        commits.append(TopicPartition(sandbox.name(SUBMITTED), partition,
                                      msgs[len(half)].offset() if half else msgs[0].offset()))
    committer = Consumer({"bootstrap.servers": sandbox.bootstrap, "group.id": old_group,
                          "enable.auto.commit": False})
    committer.commit(offsets=commits, asynchronous=False)
    committer.close()
    assert consumed and len(consumed) < len(good)

    rest = {k for k, _ in good} - consumed
    worker = start_worker(sandbox, tmp_path, "--stages", "validate",
                          **_keyring_env(tmp_path, b"\x03" * 32))
    try:
        sandbox.consume_until(
            SEALED, lambda got: {read_meta(m.value()).invoice_id for m in got} >= rest,
            timeout_s=120)
        assert "started from the app group's commits" in worker.log()
    finally:
        assert worker.stop() == 0, worker.log()[-3000:]
    # Within a partition the loop seals in order: an earlier record would be there already.
    sealed = Counter(read_meta(m.value()).invoice_id for m in sandbox.read_to_end(SEALED))
    assert set(sealed) == rest and max(sealed.values()) == 1, sealed
