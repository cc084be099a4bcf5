"""What the submit stage's two lanes share, in one object built once per worker.

The batch lane (`submit`) and the correction lane (`correction_lane`) talk to KSeF
through the same clients, write the same session journal (`ksef.sessions`), hold and
release the same seller contexts, and read invoices with the same keyring. Those live
in a `SubmitContext`; each lane takes it from `stage_context()` instead of reaching
into the other lane's module. What only one lane uses (the batch queue, the
corrections topic) stays in that lane.

`build_context()` builds one from the settings (it registers the sessions and control
followers as app tasks, like the modules it calls); `stage_context()` is this worker's,
built on the first call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import faust

from pipeline.clock import iso, now_utc
from pipeline.ksef_api.link import KsefClients
from pipeline.metrics import Metrics
from pipeline.metrics.ksef import watch_headroom
from pipeline.modes.follow import ModeFollower, mode_follower
from pipeline.modes.observed import HealthReporter
from pipeline.modes.publish import publish_alert, publish_announcement
from pipeline.runtime import logs
from pipeline.runtime.app import metrics, stage_ksef_clients, topic
from pipeline.runtime.key_hold import missing_key_alert
from pipeline.runtime.keyring_file import KeyringSource, keyring_source
from pipeline.runtime.session_follow import SessionsFollower, sessions_follower
from pipeline.runtime.settings import ObservedOutageSettings, SubmitStageSettings
from pipeline.stages.s3_submit.credential_hold import Holds
from pipeline.stages.s3_submit.credential_watch import ExpiryWatch
from pipeline.stages.s3_submit.held_releases import ReleaseBook, release_book
from topics.catalog import REJECTED, SESSIONS
from topics.codec import encode
from topics.records import Alert, SessionStep
from topics.session_journal import Journal

log = logs.get(__name__)


@dataclass(frozen=True)
class SubmitContext:
    """The submit stage's shared objects (one per worker, see `stage_context`)."""

    settings: SubmitStageSettings
    metrics: Metrics
    follower: ModeFollower  # `ksef.mode`: announced outages hold new sessions
    health: HealthReporter  # self-observed KSeF outages, fed by the clients
    clients: KsefClients  # one KSeF client per seller context
    keyrings: KeyringSource  # re-read on change: a rotation needs no restart
    journal: Journal  # every batch's and correction's steps, read back from ksef.sessions
    sessions: SessionsFollower
    holds: Holds  # contexts that cannot authenticate
    releases: ReleaseBook  # operators' releases of held invoices
    expiry: ExpiryWatch
    sessions_topic: faust.TopicT
    rejected_topic: faust.TopicT
    missing_keys: set[str] = field(default_factory=set)  # key ids alerted as missing (once)

    async def journal_step(self, batch_id: str, seller_nip: str, step: str,
                           session_ref: str | None, kind: str, details: dict[str, Any]
                           ) -> None:
        entry = SessionStep(batch_id=batch_id, seller_nip=seller_nip, step=step, at=iso(),
                            session_ref=session_ref, kind=kind, details=details)
        self.journal.apply(entry)
        delivered = await self.sessions_topic.send(key=batch_id.encode(), value=encode(entry))
        await delivered  # write-ahead: durable before the side effect it records happens

    async def journal_loaded(self) -> None:
        """Every step in `ksef.sessions` up to now is in the journal: also those a worker
        journaled just before it died and this one took its batches over."""
        await self.sessions.caught_up()

    async def alert(self, alert: Alert | None) -> None:
        if alert is not None:
            log.warning("credential alert", kind=alert.kind, seller_nip=alert.seller_nip,
                        reason=alert.details.get("reason"))
            await publish_alert(alert)

    async def key_missing(self, key_id: str, seller_nip: str,
                          invoice_id: str | None = None) -> None:
        """A record to rebuild or correct is sealed under a key the keyring lacks: it
        waits (retried, the keyring file re-read) with one alert per key id, never
        rejected."""
        if key_id in self.missing_keys:
            return
        self.missing_keys.add(key_id)
        log.error("invoice sealed under a key the keyring lacks: waits, not rejected",
                  key_id=key_id, seller_nip=seller_nip, invoice_id=invoice_id)
        await publish_alert(missing_key_alert(key_id, "submit", now_utc(),
                                              invoice_id=invoice_id, seller_nip=seller_nip,
                                              keyring_ids=self.keyrings.get().key_ids))


def build_context(settings: SubmitStageSettings | None = None) -> SubmitContext:
    """A context from the environment's settings; its clients' requests count in the
    worker's metrics and health, its journal follows `ksef.sessions`."""
    settings = settings if settings is not None else SubmitStageSettings.from_env()
    sessions_topic = topic(SESSIONS)
    rejected_topic = topic(REJECTED)
    follower = mode_follower()
    health = HealthReporter(publish_announcement, lambda: follower.state,
                            threshold=dt.timedelta(
                                seconds=ObservedOutageSettings.from_env().outage_after_s))
    clients = stage_ksef_clients(health.observe)
    watch_headroom(metrics, clients.headroom)
    keyrings = keyring_source()
    journal = Journal()
    sessions = sessions_follower()
    sessions.subscribe(journal.apply)
    holds = Holds(dt.timedelta(seconds=settings.credential_recheck_s))
    return SubmitContext(
        settings=settings, metrics=metrics, follower=follower, health=health,
        clients=clients, keyrings=keyrings, journal=journal, sessions=sessions, holds=holds,
        releases=release_book(), expiry=ExpiryWatch(), sessions_topic=sessions_topic,
        rejected_topic=rejected_topic)


@cache
def stage_context() -> SubmitContext:
    """This worker's context (built on the first call, by whichever lane loads first)."""
    return build_context()
