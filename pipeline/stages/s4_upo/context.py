"""What the upo stage keeps while the worker runs, in one object built once per worker.

The KSeF clients, the invoice ledger, the follower of `ksef.sessions`, the sessions
being followed and the bounded memos that spare KSeF requests live in an `UpoContext`,
so the stage's functions read one object instead of a dozen module globals.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pipeline.ksef_api.link import KsefClients
from pipeline.runtime.app import stage_ksef_clients
from pipeline.runtime.deliveries import Deliveries
from pipeline.runtime.invoice_ledger import InvoiceLedger, invoice_ledger
from pipeline.runtime.recent import Recent
from pipeline.runtime.session_follow import SessionsFollower, sessions_follower
from pipeline.runtime.settings import SettleStageSettings
from pipeline.stages.s4_upo.session_hashes import SessionHashes

RECENT_SESSIONS = 16  # up to 160,000 hashes (~5 MB) at 10,000-invoice sessions
RECENT_REFERENCES = 100_000


@dataclass
class UpoContext:
    """The upo stage's shared objects and working state (one per worker)."""

    clients: KsefClients
    ledger: InvoiceLedger  # whether an outcome is already on its topic
    sessions: SessionsFollower  # every step of `ksef.sessions`, read back
    slots: asyncio.Semaphore  # sessions settled side by side
    done_batches: set[str] = field(default_factory=set)
    following: set[asyncio.Future[None]] = field(default_factory=set)
    followed: Deliveries = field(default_factory=Deliveries)  # `closed` steps, by batch id
    # One session settled at a time (its UPO pages, its invoices and their outcomes in
    # memory), while the others wait for KSeF side by side: a 10,000-invoice UPO is
    # ~25 MB of XML, and sessions settling at once (their outcome loops interleave since
    # producing gives the event loop a turn) made the worker's peak memory grow with the
    # batch size times the sellers. Settling is event-loop work: one at a time is as fast.
    one_settling: asyncio.Lock = field(default_factory=asyncio.Lock)
    stream: Any = None  # the agent's manual-ack stream, once it runs
    # session reference -> hashes of our invoices in it (from `closed` steps): tells
    # whether a 440's original is this very invoice without asking KSeF. The recent
    # sessions only (the journal keeps 400 days: every hash of them would not fit); an
    # older original is downloaded and compared instead.
    our_sessions: Recent[str, SessionHashes] = field(
        default_factory=lambda: Recent(RECENT_SESSIONS))
    # session reference -> our batch it was opened for (from `opened` steps): a batch
    # sent again after its `closed` step was lost meets its own first session in KSeF's
    # 440s.
    session_batches: Recent[str, str] = field(
        default_factory=lambda: Recent(RECENT_REFERENCES))
    # "original KSeF number/hash" -> whether they match, kept so that a session settled
    # again after a rate limit does not download the same originals again
    compared: Recent[str, bool] = field(default_factory=lambda: Recent(RECENT_REFERENCES))


def build_context(settings: SettleStageSettings | None = None) -> UpoContext:
    """A context from the environment's settings (the ledger and the sessions follower
    are the worker's, registered as app tasks on their first use)."""
    settings = settings if settings is not None else SettleStageSettings.from_env()
    return UpoContext(clients=stage_ksef_clients(), ledger=invoice_ledger(),
                      sessions=sessions_follower(),
                      slots=asyncio.Semaphore(settings.concurrency))


@cache
def stage_context() -> UpoContext:
    """This worker's context (built on the first call)."""
    return build_context()
