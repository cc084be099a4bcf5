"""Read-only views on the worker's web port (KSEF_WEB_PORT):
`GET /ksef/status` (HTML page), `GET /ksef/mode` (the `ksef.mode` record as JSON),
`GET /ksef/pending` (pending invoices of this worker by deadline, JSON),
`GET /ksef/credentials` (each context's credential health, JSON)."""

from __future__ import annotations

import dataclasses
import sys

from faust.web import Request, Response, View

from pipeline.clock import now_utc
from pipeline.modes.deadline_tracker import deadline_tracker
from pipeline.modes.follow import mode_follower
from pipeline.modes.status_page import activity, render
from pipeline.runtime.app import app, metrics
from pipeline.stages import STAGES
from pipeline.stages.s3_submit.credential_watch import HealthRow, health_rows

follower = mode_follower()


def credential_health() -> list[HealthRow]:
    """From this worker's submit stage when it runs here (with the last authentication
    of each context), else from the credential files alone."""
    submit = sys.modules.get("pipeline.stages.s3_submit.submit")
    if submit is not None:
        ctx = submit.ctx  # the stage's context (`s3_submit.context`), both lanes' holds
        holds = ctx.holds
        return health_rows(ctx.clients.credentials.contexts(), holds.last,
                           {nip: h.reason for nip, h in holds.held().items()}, now_utc())
    from pipeline.credentials import CredentialStore
    from pipeline.ksef_api.link import KsefSettings

    settings = KsefSettings.from_env()
    store = CredentialStore(settings.credentials_file, settings.tokens_file)
    return health_rows(store.contexts(), {}, {}, now_utc())


def running_stages() -> list[str]:
    """The pipeline stages this worker runs (their modules are loaded), as the metrics
    name them: listed on the page even while idle."""
    names = [name for name, module in STAGES.items()
             if name != "mode" and module in sys.modules]
    return [*names, "submit-interactive"] if "submit" in names else names


@app.page("/ksef/status")
class StatusPage(View):
    async def get(self, request: Request) -> Response:
        tracker = deadline_tracker()
        page = render(follower.state, tracker.book.by_deadline(), sorted(tracker.loaded),
                      tracker.partitions, now_utc(), credential_health(),
                      activity(metrics, running_stages()))
        return self.html(page)


@app.page("/ksef/credentials")
class CredentialsView(View):
    async def get(self, request: Request) -> Response:
        return self.json([dataclasses.asdict(r) for r in credential_health()])


@app.page("/ksef/mode")
class ModeView(View):
    async def get(self, request: Request) -> Response:
        state = follower.state
        return self.json(None if state is None else dataclasses.asdict(state))


@app.page("/ksef/pending")
class PendingView(View):
    async def get(self, request: Request) -> Response:
        tracker = deadline_tracker()
        rows = [{"deadline": due or None, "status": status, "mode": mode, "invoices": n}
                for due, status, mode, n in tracker.book.by_deadline()]
        return self.json({"partitions": sorted(tracker.loaded), "pending": len(tracker.book),
                          "by_deadline": rows})
