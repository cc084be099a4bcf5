"""seal stage: `ksef.invoices.validated` -> `ksef.invoices.sealed` (keyed by seller NIP).

From here on no topic carries invoice plaintext: the invoice is AES-256-GCM encrypted
under the keyring's active key. The issuing mode comes from the announcements known to
this worker (`mode_history`, fed by the mode-state stream) and the initial deadline from
the rules core.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust

from pipeline import logs
from pipeline.app import app, produce, topic, worker_settings
from pipeline.clock import iso
from pipeline.keyring_file import load_keyring
from pipeline.ksef.announcements import AnnouncementHistory
from pipeline.modes.follow import mode_follower
from pipeline.modes.snapshot import history_from_mode_state
from pipeline.stages.replay_guard import ReplayGuard
from pipeline.stages.sealing import SealConfig, seal_invoice
from topics.catalog import REJECTED, SEALED, VALIDATED
from topics.codec import decode, encode
from topics.records import ModeState, Rejection, SealedInvoice, ValidatedInvoice

log = logs.get(__name__)

validated_topic = topic(VALIDATED)

config = SealConfig.from_env(load_keyring(Path(worker_settings.data_dir).parent / "keyring.json"))


class ModeView:
    """What this worker knows of KSeF's state; the mode-state stream keeps it current."""

    history: AnnouncementHistory = AnnouncementHistory()
    ksef_reachable: bool = True


def _apply(state: ModeState) -> None:
    ModeView.history = history_from_mode_state(state)
    ModeView.ksef_reachable = state.ksef_reachable


follower = mode_follower()
follower.subscribe(_apply)
READY_WAIT_S = 30.0
guard = ReplayGuard()


def _seal(key: bytes | None, value: bytes) -> SealedInvoice | Rejection:
    try:
        inv = decode(ValidatedInvoice, value)
        return seal_invoice(inv, config, ModeView.history,
                            ksef_reachable=ModeView.ksef_reachable)
    except Exception as exc:  # one bad record never stops the stage
        invoice_id = key.decode("utf-8", "replace") if key else "unknown"
        return Rejection(invoice_id=invoice_id, stage="seal", code=500, reason="unknown",
                         rejected_at=iso(), message=f"seal stage failed: {type(exc).__name__}")


@app.agent(validated_topic, name="seal")
async def seal(stream: faust.StreamT[Any]) -> None:
    try:  # stamp modes from the real state, not from "nothing announced"
        await asyncio.wait_for(follower.wait_ready(), READY_WAIT_S)
    except TimeoutError:
        log.warning("ksef.mode not read yet; sealing with no announcements known")
    # One event at a time: see the validate stage on take_events and cancellation.
    async for event in guard.events(stream):
        result = _seal(event.message.key, event.message.value)
        if isinstance(result, Rejection):
            log.error("seal failed", invoice_id=result.invoice_id, message=result.message)
            await produce(REJECTED, result.invoice_id.encode(), encode(result))
        else:
            await produce(SEALED, result.seller_nip.encode(), encode(result))
