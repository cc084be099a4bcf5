"""KSeF API readings: requests and 429s per context and endpoint group (from the
transport's health events), and the request-limit headroom left per context."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping

from pipeline.ksef.limits import base_category
from pipeline.ksef_api.health import HealthEvent, HealthObserver, Outcome
from pipeline.metrics.families import Metrics, status_class


def endpoint_group(endpoint: str) -> str:
    """"POST other:POST /tokens" -> "POST other": the method and the limit category,
    never a path (paths can carry reference numbers)."""
    method, _, category = endpoint.partition(" ")
    return f"{method} {base_category(category)}" if category else method


def request_observer(metrics: Metrics, then: HealthObserver | None = None) -> HealthObserver:
    """A transport observer counting every answer (and passing it on to `then`)."""

    def observe(event: HealthEvent) -> None:
        group = endpoint_group(event.endpoint)
        metrics.requests.labels(event.context, group,
                                status_class(event.status, event.outcome.value)).inc()
        if event.outcome is Outcome.RATE_LIMITED:
            metrics.rate_limited.labels(event.context, group).inc()
        if then is not None:
            then(event)

    return observe


def watch_headroom(metrics: Metrics,
                   headroom: Callable[[], Mapping[tuple[Hashable, str], float]]) -> None:
    """Publish the limiter's headroom per (context, endpoint group) at every scrape; the
    lowest share among a group's counters (a catch-all group has one per endpoint)."""

    def refresh(m: Metrics) -> None:
        lowest: dict[tuple[str, str], float] = {}
        for (key, category), free in headroom().items():
            labels = (str(key), base_category(category))
            lowest[labels] = min(free, lowest.get(labels, 1.0))
        m.set_all(m.headroom, lowest)

    metrics.on_scrape("ksef-headroom", refresh)
