"""Read-only views on the worker's web port (KSEF_WEB_PORT):
`GET /ksef/status` (HTML page), `GET /ksef/mode` (the `ksef.mode` record as JSON),
`GET /ksef/pending` (pending invoices of this worker by deadline, JSON)."""

from __future__ import annotations

import dataclasses

from faust.web import Request, Response, View

from pipeline.app import app
from pipeline.clock import now_utc
from pipeline.modes.deadlines import book, deadlines_topic, gate
from pipeline.modes.follow import mode_follower
from pipeline.modes.status_page import render

follower = mode_follower()


@app.page("/ksef/status")
class StatusPage(View):
    async def get(self, request: Request) -> Response:
        page = render(follower.state, book.by_deadline(), sorted(gate.loaded),
                      deadlines_topic.partitions or 0, now_utc())
        return self.html(page)


@app.page("/ksef/mode")
class ModeView(View):
    async def get(self, request: Request) -> Response:
        state = follower.state
        return self.json(None if state is None else dataclasses.asdict(state))


@app.page("/ksef/pending")
class PendingView(View):
    async def get(self, request: Request) -> Response:
        rows = [{"deadline": due or None, "status": status, "mode": mode, "invoices": n}
                for due, status, mode, n in book.by_deadline()]
        return self.json({"partitions": sorted(gate.loaded), "pending": len(book),
                          "by_deadline": rows})
