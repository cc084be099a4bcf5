"""What the pack stage keeps while the worker runs, in one object built once per worker.

The stage's settings and the services it talks to (the keyring, the KSeF clients for the
MF key, the mode follower, the invoice ledger) and its working state (the open batches,
the invoices held for a missing key, what it knows of its partitions) live in a
`PackContext`, so the stage's functions read one object instead of a dozen module
globals. The duplicate table stays a declaration in `pack.py`: Faust must know its
tables before the worker starts, like its topics and agents.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.ksef_api.link import KsefClients
from pipeline.modes.follow import ModeFollower, mode_follower
from pipeline.runtime.app import stage_ksef_clients, worker_settings
from pipeline.runtime.invoice_ledger import InvoiceLedger, invoice_ledger
from pipeline.runtime.key_hold import KeyHolds
from pipeline.runtime.keyring_file import KeyringSource, keyring_source
from pipeline.runtime.settings import PackStageSettings
from pipeline.runtime.spool_paths import spool_root
from pipeline.stages.s2_pack.packing import OpenBatch, PackSettings

Group = tuple[str, bool]  # (seller NIP, offline mode): one open batch each


@dataclass
class PackContext:
    """The pack stage's shared objects and working state (one per worker)."""

    settings: PackSettings
    keyrings: KeyringSource  # re-read on change: a rotation needs no restart
    clients: KsefClients  # for the MF public key only
    follower: ModeFollower  # `ksef.mode`: an announced outage holds quiet batches
    ledger: InvoiceLedger  # what became of each invoice id (replays, redeliveries)
    # Invoices sealed under a key the keyring lacks: held unacknowledged, not rejected,
    # and packed once the keyring file brings the key (checked on every tick).
    key_holds: KeyHolds = field(default_factory=KeyHolds)
    open_batches: dict[Group, OpenBatch] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stream: Any = None  # the agent's manual-ack stream, once it runs
    ticker: asyncio.Future[None] | None = None
    # Partitions whose first record since the assignment waited for the ledger: a worker
    # taking over from a killed one must know the batches that one published before it
    # decides whether a redelivered invoice is already on its way.
    synced: set[Any] = field(default_factory=set)
    # The offset of the last record consumed per partition (held, skipped or rejected):
    # a quiet batch is sealed on linger only when nothing more waits in Kafka behind it.
    last_seen: dict[Any, int] = field(default_factory=dict)
    # (topic, partition) revoked at a rebalance and not assigned back since. An event of
    # one of them can still be in the agent's hands then (waiting for the ledger or the
    # lock): packed here it would be packed twice, since its new owner reads it again
    # (seen in ops/chaos: one invoice in two KSeF sessions, 3 s apart, right after a
    # worker joined).
    given_away: set[tuple[str, int]] = field(default_factory=set)

    @property
    def mf_key_file(self) -> Path:
        """The MF public key as last fetched: packing goes on through an outage."""
        return self.settings.spool_dir / "mf-public-key.json"


def build_context() -> PackContext:
    """A context from the environment's settings (the ledger and the mode follower are
    the worker's, registered as app tasks on their first use)."""
    return PackContext(
        settings=PackSettings.build(PackStageSettings.from_env(), spool_root(worker_settings)),
        keyrings=keyring_source(), clients=stage_ksef_clients(), follower=mode_follower(),
        ledger=invoice_ledger())


@cache
def stage_context() -> PackContext:
    """This worker's context (built on the first call)."""
    return build_context()
