"""The worker's KSeF status page (HTML, no scripts): state, announcement history,
pending invoices by deadline and each seller context's credential health."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

from pipeline.stages.credential_watch import HealthRow
from topics.records import ModeState

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}.state{font-size:1.6em;font-weight:bold}
.AVAILABLE{color:#176b2c}.UNKNOWN,.MAINTENANCE{color:#8a5a00}
.FAILURE,.TOTAL_FAILURE,.OBSERVED_OUTAGE{color:#a30000}.num{text-align:right}
"""


def _cell(value: object, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{escape('' if value is None else str(value))}</td>"


def _table(head: Sequence[str], rows: Sequence[str]) -> str:
    if not rows:
        return "<p>none</p>"
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def render(state: ModeState | None, by_deadline: Sequence[tuple[str, str, str, int]],
           partitions: Sequence[int], total_partitions: int, now: dt.datetime,
           credentials: Sequence[HealthRow] = ()) -> str:
    """The page; `by_deadline` rows are (deadline, status, mode, count) of this worker's
    partitions of `ksef.deadlines`; `credentials` one row per seller context."""
    if state is None:
        head = "<p class='state UNKNOWN'>no ksef.mode record yet</p>"
        windows: list[str] = []
    else:
        head = (f"<p class='state {escape(state.state)}'>{escape(state.state)}</p>"
                f"<p>since {escape(state.since)} &middot; {escape(state.reason)}</p>"
                f"<p>KSeF reachable: {'yes' if state.ksef_reachable else 'NO'} &middot; "
                f"Latarnia reachable: {'yes' if state.latarnia_reachable else 'NO'} &middot; "
                f"updated {escape(state.updated_at)}</p>")
        windows = ["<tr>" + _cell(w.category) + _cell(w.event_id) + _cell(w.start)
                   + _cell(w.end or "open") + _cell(w.announced) + _cell(w.source) + "</tr>"
                   for w in reversed(state.windows)]
    pending = ["<tr>" + _cell(due or "-") + _cell(status) + _cell(mode) + _cell(f"{n:,}", "num")
               + "</tr>" for due, status, mode, n in by_deadline]
    total = sum(n for *_, n in by_deadline)
    scope = (f"partitions {', '.join(map(str, sorted(partitions)))} of {total_partitions}"
             if partitions else "no ksef.deadlines partitions on this worker")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta http-equiv='refresh' content='10'><title>KSeF state</title>"
        f"<style>{_STYLE}</style></head><body><h1>KSeF state</h1>{head}"
        "<h2>Announcements and observed outages</h2>"
        + _table(["category", "event", "start", "end", "announced", "source"], windows)
        + f"<h2>Pending invoices by deadline ({total:,}; {escape(scope)})</h2>"
        + _table(["deadline", "status", "mode", "invoices"], pending)
        + "<h2>Credentials of seller contexts</h2>"
        + _table(["context", "method", "subject", "days to expiry", "problem",
                  "last authentication"],
                 ["<tr>" + _cell(r.nip) + _cell(r.method) + _cell(r.subject or "-")
                  + _cell("-" if r.days_to_expiry is None else r.days_to_expiry, "num")
                  + _cell(r.problem or "-", "FAILURE" if r.problem else "")
                  + _cell(r.last_auth) + "</tr>" for r in credentials])
        + f"<p><small>rendered {escape(now.isoformat(timespec='seconds'))}</small></p>"
        "</body></html>")
