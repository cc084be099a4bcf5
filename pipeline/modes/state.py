"""mode-state agent: `ksef.announcements` -> changelog-backed table -> `ksef.mode` + alerts.

The table `ksef-mode-messages` (key = message id, value = its latest version) is the
whole input of the state: every record on `ksef.announcements`, whatever its source,
is merged into it (older versions and replays change nothing), and the state is
rebuilt from it with `snapshot.build_mode_state`. The topic has one partition, so one
worker owns the table; it publishes `ksef.mode` when the state changes, on a new
message and on a timer (a maintenance window starts at its hour, not when a message
arrives). The other workers learn the state from `ksef.mode` (see `follow`).

Settings: KSEF_MODE_TICK_S (timer, default 5 s).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import faust
from faust.types import TP

from pipeline.clock import now_utc
from pipeline.ksef.announcements import AnnouncementError
from pipeline.modes import alerts
from pipeline.modes.follow import mode_follower
from pipeline.modes.messages import is_observation, newer, to_message
from pipeline.modes.publish import announcements_topic, publish_alert
from pipeline.modes.snapshot import (
    ANNOUNCED_STATES,
    build_mode_state,
    kept_observations,
    same_state,
)
from pipeline.runtime import logs
from pipeline.runtime.app import app, catalog_settings, topic
from pipeline.runtime.settings import ModeStateSettings
from topics import topic_name
from topics.catalog import ANNOUNCEMENTS, MODE
from topics.codec import decode, encode
from topics.records import Announcement, ModeState

log = logs.get(__name__)

TICK_S = ModeStateSettings.from_env().tick_s
STATE_KEY = b"ksef"

mode_topic = topic(MODE)
follower = mode_follower()
# On disk, not in memory: Faust reads a memory table's whole changelog back at every
# rebalance, even on the worker that keeps the partition, and that re-read was seen to
# stall (no changelog record ever delivered): table recovery then holds every stream of
# the worker, so an announced end never reached `ksef.mode`. RocksDB remembers the
# offset it has, so a worker that keeps the partition has nothing to read back.
MESSAGES_TABLE = "ksef-mode-messages"
messages = app.Table(MESSAGES_TABLE, key_type=bytes, value_type=bytes, partitions=1,
                     store=f"rocksdb:{MESSAGES_TABLE}",
                     help="latest version of every ksef.announcements message")
_owned_tp = TP(topic_name(ANNOUNCEMENTS, catalog_settings), 0)
_published: dict[str, ModeState | None] = {"last": None}


def _records() -> list[Announcement]:
    out = []
    for raw in messages.values():
        try:
            out.append(decode(Announcement, raw))
        except (ValueError, TypeError) as exc:  # only this agent writes the table
            log.error("unreadable entry in ksef-mode-messages", error=str(exc))
    return out


def _owner() -> bool:
    return (not app.rebalancing and not app.in_recovery
            and _owned_tp in app.assignor.assigned_actives())


async def publish_state(now: dt.datetime) -> ModeState:
    """Rebuild the state from the table; publish it when it changed."""
    last = _published["last"] or follower.state
    state = build_mode_state(_records(), now, last)
    if not same_state(state, last):
        await mode_topic.send(key=STATE_KEY, value=encode(state))
        log.info("ksef.mode published", state=state.state, reason=state.reason)
    _published["last"] = state
    return state


def _accept(value: bytes) -> Announcement:
    """Decode and check a record (legal announcements must make sense to the rules core)."""
    record = decode(Announcement, value)
    if not is_observation(record):
        to_message(record)
    return record


def _prune_observations() -> None:
    """Ended observation episodes beyond the few kept in `ksef.mode` leave the table."""
    records = _records()
    keep = {r.id for r in kept_observations(records)}
    for record in records:
        if is_observation(record) and record.id not in keep:
            del messages[record.id.encode()]


@app.agent(announcements_topic, name="mode-state")
async def mode_state(stream: faust.StreamT[Any]) -> None:
    await follower.wait_ready()
    async for event in stream.events():
        now = now_utc()
        key = event.message.key or b""
        if event.value is None:  # an operator deleted a message
            if messages.pop(key, None) is not None:
                await publish_state(now)
            continue
        try:
            incoming = _accept(event.value)
        except (ValueError, TypeError, AnnouncementError) as exc:
            log.error("invalid announcement ignored", key=key.decode("utf-8", "replace"))
            await publish_alert(alerts.invalid_announcement(
                key.decode("utf-8", "replace"), str(exc), now))
            continue
        stored_raw = messages.get(incoming.id.encode())
        kept = newer(incoming, None if stored_raw is None else decode(Announcement, stored_raw))
        if kept is None:
            continue
        messages[kept.id.encode()] = encode(kept)
        if is_observation(kept) and kept.end is not None:
            _prune_observations()
        state = await publish_state(now)
        log.info("announcement recorded", id=kept.id, version=kept.version, source=kept.source)
        alert = alerts.for_announcement(kept, now,
                                        announced_in_force=state.state in ANNOUNCED_STATES)
        if alert is not None:
            await publish_alert(alert)


@app.timer(TICK_S, name="mode-state-tick")
async def tick() -> None:
    if _owner() and follower.ready.is_set():
        await publish_state(now_utc())
