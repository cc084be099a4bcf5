"""A whole pipeline on the real broker and the emulator, for the delivery tests."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.emulator.process import EmulatorProcess, start_emulator
from pipeline.runtime.keyring_file import new_keyring_json
from tests.kafka_harness import REPO, KafkaSandbox, Worker, start_worker
from topics.catalog import OUTCOMES, REJECTED, SESSIONS, SUBMITTED
from topics.codec import decode
from topics.records import InvoiceOutcome, Rejection, SessionStep


@dataclass
class Stack:
    sandbox: KafkaSandbox
    emulator: EmulatorProcess
    tmp: Path
    env: dict[str, str]

    def worker(self, *args: str, **env: str) -> Worker:
        """A worker on the stack's environment, `env` overriding some of it."""
        return start_worker(self.sandbox, self.tmp, *args, **{**self.env, **env})

    def emulator_invoices(self) -> list[tuple[str, str | None, int]]:
        """(invoice hash, KSeF number, status) of every invoice the emulator holds."""
        db = sqlite3.connect(f"file:{self.emulator.data_dir}/emulator.sqlite3?mode=ro", uri=True)
        try:
            return db.execute("SELECT invoice_hash, ksef_number, status_code FROM invoices"
                              ).fetchall()
        finally:
            db.close()


def build_stack(sandbox: KafkaSandbox, tmp: Path, sellers: list[str], **env: str) -> Stack:
    emulator = start_emulator(tmp / "emulator", cwd=REPO, env=sandbox.env())
    tokens = emulator.write_tokens(sellers, tmp / "tokens.json")
    keyring = tmp / "keyring.json"
    keyring.write_bytes(new_keyring_json())
    keyring.chmod(0o600)  # a keyring others may read is refused
    base = {"KSEF_ENV": "emulator", "KSEF_API_URL": emulator.base_url,
            "KSEF_TOKENS_FILE": str(tokens), "KSEF_KEYRING_FILE": str(keyring),
            "KSEF_SPOOL_DIR": str(tmp / "spool"), "KSEF_PACK_LINGER_S": "3"}
    return Stack(sandbox, emulator, tmp, {**base, **env})


def ingest(sandbox: KafkaSandbox, items: list[tuple[str, bytes]]) -> None:
    for start in range(0, len(items), 2000):
        sandbox.produce(SUBMITTED, [(k.encode(), v) for k, v in items[start:start + 2000]])


def settled(sandbox: KafkaSandbox, expected: int, timeout_s: float
            ) -> tuple[list[InvoiceOutcome], list[Rejection]]:
    outcomes = [decode(InvoiceOutcome, m.value())
                for m in sandbox.consume(OUTCOMES, expected, timeout_s=timeout_s)]
    rejected = [decode(Rejection, m.value())
                for m in sandbox.consume(REJECTED, max(0, expected - len(outcomes)),
                                         timeout_s=5 if len(outcomes) >= expected else 30)]
    return outcomes, rejected


def session_steps(sandbox: KafkaSandbox, at_least: int, timeout_s: float = 30) -> list[Any]:
    """Every step journaled so far (once at least `at_least` are there)."""
    sandbox.consume(SESSIONS, at_least, timeout_s=timeout_s)
    return [decode(SessionStep, m.value())
            for m in sandbox.read_to_end(SESSIONS, timeout_s=timeout_s)]
