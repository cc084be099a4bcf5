"""The demo's and chaos's readers watch topics from their start in no consumer group.

As group members they depended on the group coordinator: after a broker restart in
`ops/chaos` the ledger reader's group was seen EMPTY while its thread kept polling, and
the run waited for invoices the pipeline had long settled."""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient

from pipeline.demo.workload import Ledger, LedgerReader
from pipeline.runtime.settings import KafkaSettings
from tests.kafka_harness import KafkaSandbox
from topics.catalog import OUTCOMES, REJECTED
from topics.codec import encode
from topics.records import InvoiceOutcome
from topics.rejections import build_rejection


def test_the_ledger_reader_reads_both_topics_from_the_start_in_no_group(
        sandbox: KafkaSandbox) -> None:
    outcomes = [InvoiceOutcome(invoice_id=f"o-{i}", seller_nip="5260250274",
                               ksef_number=f"5260250274-20261205-{i:06X}ABCDEF-AB",
                               invoice_number=f"FV/{i}", sha256="h", session_ref="s",
                               acquisition_date="2026-12-05T12:00:00+00:00",
                               invoicing_mode="online",
                               recorded_at="2026-12-05T12:00:00+00:00")
                for i in range(40)]
    sandbox.produce(OUTCOMES, [(o.invoice_id.encode(), encode(o)) for o in outcomes])
    rejection = build_rejection(invoice_id="r-1", stage="validate", code=430,
                                reason="schema", message="m", rejected_at="2026-12-05")
    sandbox.produce(REJECTED, [(b"r-1", encode(rejection))])
    ledger = Ledger({*(o.invoice_id for o in outcomes), "r-1"})
    kafka = KafkaSettings.from_env()
    reader = LedgerReader(kafka, sandbox.settings, ledger)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not ledger.done() and time.monotonic() < deadline:
            time.sleep(0.2)  # the reader's thread fills the ledger; nothing to await
        assert ledger.settled == 41
        assert ledger.rejection_reasons() == {"schema": 1}
        groups = AdminClient({"bootstrap.servers": sandbox.bootstrap}) \
            .list_consumer_groups().result(30).valid
        assert not [g.group_id for g in groups if g.group_id.startswith("demo-")]
    finally:
        reader.stop()
