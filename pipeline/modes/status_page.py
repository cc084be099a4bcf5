"""The worker's KSeF status page (HTML, no scripts): a headline (state, pending,
overdue, lag, rejections in the last hour, lowest rate-limit headroom), the KSeF mode
and its announcement history, throughput per stage and consumer lag per topic,
rejections by reason, pending invoices by deadline, and per seller context its
credential health and rate-limit headroom.

`render` is pure: it takes plain data (`Activity` for what the worker's metrics say)
and the time, so tests call it with made-up numbers. `activity` reads a `Metrics`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape

from pipeline.clock import polish_today
from pipeline.metrics.families import STAGES, Metrics
from pipeline.stages.s3_submit.credential_watch import HealthRow
from topics.records import ModeState

# Colour thresholds (the number is always shown; colour only draws the eye).
# records behind on one topic: a burst (a 10,000-invoice batch) passes through quickly
LAG_WARN, LAG_BAD = 10_000, 100_000
HEADROOM_WARN, HEADROOM_BAD = 0.25, 0.10  # free share of the tightest request window
REFRESH_S = 10

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222;max-width:80em}
h1{margin:.2em 0 .4em}h2{margin:1.4em 0 .3em;font-size:1.25em}
table{border-collapse:collapse;margin:.4em 0 1em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}
td.big{font-size:1.3em;font-weight:bold;padding:.1em .6em}
.state{font-size:1.4em;font-weight:bold;margin:.2em 0}
.cols{display:flex;flex-wrap:wrap;gap:0 2.5em;align-items:flex-start}.cols>section{max-width:36em}
dl.summary{display:flex;flex-wrap:wrap;gap:.7em;margin:0 0 1em;padding:0}
dl.summary div{border:1px solid #ccc;border-radius:.4em;padding:.4em .8em;min-width:8em;
background:#fafafa}
dl.summary dt{font-size:.9em;color:#555}
dl.summary dd{margin:0;font-size:2em;font-weight:bold;text-align:right;
font-variant-numeric:tabular-nums}
.ok,.AVAILABLE{color:#176b2c}.warn,.UNKNOWN,.MAINTENANCE{color:#8a5a00}
.bad,.FAILURE,.TOTAL_FAILURE,.OBSERVED_OUTAGE{color:#a30000}
tr.bad td,td.bad{background:#fdecec}tr.warn td,td.warn{background:#fff6e0}
"""


@dataclasses.dataclass(frozen=True)
class Activity:
    """What the worker's metrics say now, as plain data for `render`."""

    # stage -> invoices passed on per second, averaged over the last minute
    throughput: Mapping[str, float] = dataclasses.field(default_factory=dict)
    # topic -> records not consumed yet, summed over this worker's partitions
    lag: Mapping[str, int] = dataclasses.field(default_factory=dict)
    # (stage, reason) -> rejections in the last hour
    rejections: Mapping[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    # (context, endpoint group) -> share of the tightest request-limit window still free
    headroom: Mapping[tuple[str, str], float] = dataclasses.field(default_factory=dict)


def activity(metrics: Metrics, stages: Sequence[str] = ()) -> Activity:
    """Read `metrics` after its scrape-time refresh; `stages` (the stages this worker
    runs) are listed at 0/s when they passed nothing on in the last minute."""
    metrics.refresh()
    rates = {stage: 0.0 for stage in stages}
    rates.update({str(k): v for k, v in metrics.recent_out.per_second().items()})
    lag: Counter[str] = Counter()
    for (topic, _partition), value in metrics.read(metrics.consumer_lag).items():
        lag[topic] += int(value)
    rejections = {(str(k[0]), str(k[1])): n  # type: ignore[index]
                  for k, n in metrics.recent_rejections.totals().items()}
    headroom = {(context, endpoint): value
                for (context, endpoint), value in metrics.read(metrics.headroom).items()}
    return Activity(rates, dict(lag), rejections, headroom)


def _cell(value: object, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{escape('' if value is None else str(value))}</td>"


def _row(cells: str, cls: str = "") -> str:
    return f"<tr class='{cls}'>{cells}</tr>" if cls else f"<tr>{cells}</tr>"


def _table(head: Sequence[str], rows: Sequence[str], numeric: Sequence[int] = ()) -> str:
    if not rows:
        return "<p>none</p>"
    header = "".join(f"<th scope='col'{' class=num' if i in numeric else ''}>{escape(h)}</th>"
                     for i, h in enumerate(head))
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _tile(label: str, value: str, cls: str = "") -> str:
    attr = f" class='{cls}'" if cls else ""
    return f"<div><dt>{escape(label)}</dt><dd{attr}>{escape(value)}</dd></div>"


def _lag_class(n: int) -> str:
    return "bad" if n >= LAG_BAD else "warn" if n >= LAG_WARN else ""


def _headroom_class(share: float) -> str:
    return "bad" if share < HEADROOM_BAD else "warn" if share < HEADROOM_WARN else "ok"


def _rate(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _percent(share: float) -> str:
    return f"{max(0.0, min(1.0, share)):.0%}"


def render(state: ModeState | None, by_deadline: Sequence[tuple[str, str, str, int]],
           partitions: Sequence[int], total_partitions: int, now: dt.datetime,
           credentials: Sequence[HealthRow] = (), live: Activity | None = None) -> str:
    """The page; `by_deadline` rows are (deadline, status, mode, count) of this worker's
    partitions of `ksef.deadlines`; `credentials` one row per seller context; `live`
    the worker's throughput, lag, rejections and rate-limit headroom."""
    live = live or Activity()
    today = polish_today(now).isoformat()

    # ---- KSeF mode ----
    if state is None:
        current = "UNKNOWN"
        mode = "<p class='state UNKNOWN'>no ksef.mode record yet</p>"
        windows: list[str] = []
    else:
        current = state.state
        mode = (f"<p class='state {escape(state.state)}'>{escape(state.state)}</p>"
                f"<p>since {escape(state.since)} &middot; {escape(state.reason)}</p>"
                f"<p>KSeF reachable: {'yes' if state.ksef_reachable else 'NO'} &middot; "
                f"Latarnia reachable: {'yes' if state.latarnia_reachable else 'NO'} &middot; "
                f"updated {escape(state.updated_at)}</p>")
        windows = [_row(_cell(w.category) + _cell(w.event_id) + _cell(w.start)
                        + _cell(w.end or "open") + _cell(w.announced) + _cell(w.source))
                   for w in reversed(state.windows)]

    # ---- pending ----
    def overdue(due: str, status: str) -> bool:
        return status == "due" and bool(due) and due < today

    pending = [_row(_cell(due or "-") + _cell("overdue" if overdue(due, status) else status)
                    + _cell(mode_) + _cell(f"{n:,}", "num"),
                    "bad" if overdue(due, status) else "")
               for due, status, mode_, n in by_deadline]
    total = sum(n for *_, n in by_deadline)
    late = sum(n for due, status, _, n in by_deadline if overdue(due, status))
    scope = (f"ksef.deadlines partitions {', '.join(map(str, sorted(partitions)))} of "
             f"{total_partitions} on this worker"
             if partitions else "no ksef.deadlines partitions on this worker")

    # ---- throughput and lag ----
    order = {s: i for i, s in enumerate(STAGES)}
    stages = sorted(live.throughput, key=lambda s: (order.get(s, len(order)), s))
    throughput = [_row(_cell(s) + _cell(_rate(live.throughput[s]), "num big")) for s in stages]
    lag_total = sum(live.lag.values())
    lags = [_row(_cell(topic) + _cell(f"{n:,}", "num big"), _lag_class(n))
            for topic, n in sorted(live.lag.items())]

    # ---- rejections ----
    rejected_total = sum(live.rejections.values())
    rejections = [_row(_cell(stage) + _cell(reason) + _cell(f"{n:,}", "num big"))
                  for (stage, reason), n in sorted(live.rejections.items(),
                                                   key=lambda kv: (-kv[1], kv[0]))]

    # ---- seller contexts: headroom ----
    per_context: dict[str, dict[str, float]] = {}
    for (context, endpoint), share in live.headroom.items():
        per_context.setdefault(context, {})[endpoint] = share
    headroom_rows = []
    lowest_overall: float | None = None
    for context in sorted(per_context, key=lambda c: (min(per_context[c].values()), c)):
        groups = per_context[context]
        endpoint, lowest = min(groups.items(), key=lambda kv: (kv[1], kv[0]))
        lowest_overall = lowest if lowest_overall is None else min(lowest_overall, lowest)
        others = ", ".join(f"{e} {_percent(v)}" for e, v in sorted(groups.items()))
        cls = _headroom_class(lowest)
        headroom_rows.append(_row(_cell(context) + _cell(_percent(lowest), f"num big {cls}")
                                  + _cell(endpoint) + _cell(others),
                                  "" if cls == "ok" else cls))

    # ---- headline ----
    tiles = [
        _tile("KSeF state", current, current),
        _tile("pending", f"{total:,}"),
        _tile("overdue", f"{late:,}", "bad" if late else "ok"),
        _tile("lag (records)", f"{lag_total:,}", _lag_class(lag_total) or "ok"),
        _tile("rejected, last hour", f"{rejected_total:,}", "warn" if rejected_total else "ok"),
    ]
    if lowest_overall is not None:
        tiles.append(_tile("lowest headroom", _percent(lowest_overall),
                           _headroom_class(lowest_overall)))

    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{REFRESH_S}'><title>KSeF status: "
        f"{escape(current)}</title><style>{_STYLE}</style></head><body>"
        "<h1>KSeF status</h1>"
        f"<dl class='summary' aria-label='summary'>{''.join(tiles)}</dl>"
        f"<h2>KSeF mode</h2>{mode}"
        "<h2>Announcements and observed outages</h2>"
        + _table(["category", "event", "start", "end", "announced", "source"], windows)
        + "<div class='cols'><section><h2>Throughput (invoices/s, last minute)</h2>"
        + _table(["stage", "invoices/s"], throughput, [1])
        + f"<h2>Rejections in the last hour ({rejected_total:,})</h2>"
        + _table(["stage", "reason", "invoices"], rejections, [2])
        + f"</section><section><h2>Consumer lag ({lag_total:,} records behind)</h2>"
        + _table(["topic", "records behind"], lags, [1])
        + "</section></div>"
        + "<div class='cols'><section>"
        f"<h2>Pending invoices by deadline ({total:,})</h2><p>{escape(scope)}</p>"
        + _table(["deadline", "status", "mode", "invoices"], pending, [3])
        + "</section><section><h2>Rate-limit headroom of seller contexts</h2>"
        "<p>Share of the tightest KSeF request-limit window still free, per endpoint "
        "group.</p>"
        + _table(["context", "lowest", "tightest endpoint group", "all endpoint groups"],
                 headroom_rows, [1])
        + "</section></div>"
        + "<h2>Credentials of seller contexts</h2>"
        + _table(["context", "method", "subject", "days to expiry", "problem",
                  "last authentication"],
                 [_row(_cell(r.nip) + _cell(r.method) + _cell(r.subject or "-")
                       + _cell("-" if r.days_to_expiry is None else r.days_to_expiry, "num")
                       + _cell(r.problem or "-", "bad" if r.problem else "")
                       + _cell(r.last_auth)) for r in credentials], [3])
        + f"<p><small>rendered {escape(now.isoformat(timespec='seconds'))}; refreshes every "
        f"{REFRESH_S} s</small></p></body></html>")
