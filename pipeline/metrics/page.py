"""`GET /metrics` on the worker's web port: the Prometheus text format.

Read-only like the status page; the port binds to 127.0.0.1 unless KSEF_WEB_HOST says
otherwise (a Prometheus elsewhere scrapes through a proxy or a chosen interface)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from faust.web import Request, Response, View
from prometheus_client import disable_created_metrics

from pipeline.metrics.families import CONTENT_TYPE, Metrics


def serve_metrics(app: Any, metrics: Metrics) -> None:
    """Register the `/metrics` view on `app` (once per worker process)."""
    # No `_created` series beside every counter and histogram: they double the series
    # count and no rule or panel reads them (a process-wide switch of the client).
    disable_created_metrics()  # type: ignore[no-untyped-call]

    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            # aiohttp's own Response: Faust's `bytes()` refuses a charset in the type,
            # and Prometheus's text format names one.
            return web.Response(body=metrics.exposition(),  # type: ignore[return-value]
                                headers={"Content-Type": CONTENT_TYPE})

    app.page("/metrics")(MetricsView)
