"""Who may change state through the worker's web port, and what an operator announcement
may change without saying so (no Faust: the views in `announcements` call it).

Every endpoint that changes state (today `POST /ksef/announcements`) needs
`Authorization: Bearer <token>` with a token from the file KSEF_OPERATOR_TOKEN_FILE
(mode 0600, one `name:token` per line, see `pipeline.bearer`) and
`Content-Type: application/json`:
- no KSEF_OPERATOR_TOKEN_FILE: 403 (fail closed; the read-only pages stay available);
- the file missing, not private (group/other bits: `chmod 600`) or empty: 503;
- no token or a token not in the file: 401; another content type: 415.

An announcement whose start lies more than BACKDATE_TOLERANCE in the past (and earlier
than the start already known for that id) reopens deadlines that may have passed, and one
that sets, moves or clears the end of a known message ends a window: both are refused
(422) unless the body says `"allow_backdate": true` / `"allow_end": true`. Every accepted
change is put on `ksef.alerts` as an `operator-change` record naming who (the token's
name and fingerprint), when and with which flags, before the announcement itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.bearer import (
    Caller,
    Refusal,
    TokenEntry,
    TokenFileError,
    authorize,
    read_tokens,
    require_json,
)
from pipeline.ksef.announcements import parse_time
from pipeline.modes.alerts import INFO, WARNING
from pipeline.runtime.settings import OPERATOR_TOKEN_FILE, operator_token_file
from topics.records import Alert, Announcement

TOKEN_FILE_ENV = OPERATOR_TOKEN_FILE
BACKDATE_TOLERANCE = dt.timedelta(minutes=5)
ALLOW_BACKDATE = "allow_backdate"
ALLOW_END = "allow_end"
FLAGS = (ALLOW_BACKDATE, ALLOW_END)
AUDIT_KIND = "operator-change"


def operator_tokens(environ: Mapping[str, str] | None = None
                    ) -> tuple[TokenEntry, ...] | Refusal:
    """The tokens of KSEF_OPERATOR_TOKEN_FILE, read at every call (a replaced file counts
    at once), or why the operator endpoints are off."""
    path = operator_token_file(environ)
    if not path:
        return Refusal(403, f"operator endpoints are off on this worker: set {TOKEN_FILE_ENV} "
                            "to a file (mode 0600) holding `name:token`")
    try:
        return read_tokens(Path(path))
    except TokenFileError as exc:
        return Refusal(503, f"operator endpoints are off on this worker: {exc}")


def gate(headers: Mapping[str, str], content_type: str | None,
         environ: Mapping[str, str] | None = None) -> Caller | Refusal:
    """The caller of a state-changing request, or the refusal to answer with."""
    tokens = operator_tokens(environ)
    if isinstance(tokens, Refusal):
        return tokens
    caller = authorize(tokens, headers)
    if isinstance(caller, Refusal):
        return caller
    return require_json(content_type) or caller


def flags(body: dict[str, object]) -> dict[str, bool] | Refusal:
    """Take `allow_backdate` / `allow_end` out of a request body (they must be booleans)."""
    found: dict[str, bool] = {}
    for name in FLAGS:
        value = body.pop(name, False)
        if not isinstance(value, bool):
            return Refusal(400, f"'{name}' must be true or false")
        found[name] = value
    return found


@dataclass(frozen=True)
class Change:
    """What a new record does to the windows that `previous` (same id, if any) described."""

    backdated: bool  # starts more than the tolerance ago, earlier than known before
    changes_end: bool  # sets, moves or clears the end of a known message

    @property
    def risky(self) -> bool:
        return self.backdated or self.changes_end


def assess(record: Announcement, previous: Announcement | None, now: dt.datetime) -> Change:
    start = parse_time(record.start)
    backdated = start < now - BACKDATE_TOLERANCE and (
        previous is None or start < parse_time(previous.start))
    changes_end = previous is not None and record.end != previous.end
    return Change(backdated, changes_end)


def json_flag(name: str) -> str:
    return f'send "{name}": true'


def refusal(record: Announcement, change: Change, allowed: Mapping[str, bool],
            now: dt.datetime, hint: Callable[[str], str] = json_flag) -> Refusal | None:
    """422 when the record backdates or ends a window without the matching flag (`hint`
    says how to give it: a JSON field on the endpoint, an option on the command line)."""
    minutes = int(BACKDATE_TOLERANCE.total_seconds() // 60)
    problems = []
    if change.backdated and not allowed.get(ALLOW_BACKDATE):
        problems.append(
            f"start {record.start} is more than {minutes} min before now "
            f"({now.isoformat(timespec='seconds')}): a backdated window can reopen deadlines "
            f"that already passed; {hint(ALLOW_BACKDATE)} if it really began then "
            "(the change is audited)")
    if change.changes_end and not allowed.get(ALLOW_END):
        problems.append(
            f"this ends (or moves or clears the end of) message {record.id!r}: ending a window "
            f"shortens the deadlines it extended; {hint(ALLOW_END)} to do it "
            "(the change is audited)")
    return Refusal(422, "; ".join(problems)) if problems else None


def signed(record: Announcement, caller: Caller) -> Announcement:
    """The record as published: it names who changed it (the audit trail on the topic)."""
    return dataclasses.replace(record, changed_by=f"{caller.name} ({caller.fingerprint})")


def audit_alert(record: Announcement, caller: Caller, change: Change,
                allowed: Mapping[str, bool], now: dt.datetime, remote: str | None) -> Alert:
    """The `ksef.alerts` audit record of an accepted operator change: who, when, what."""
    at = now.isoformat(timespec="seconds")
    used = [name for name in FLAGS if allowed.get(name)]
    window = f"from {record.start}" + (f" until {record.end}" if record.end else " (open)")
    return Alert(
        alert_id=f"{AUDIT_KIND}:{record.id}:v{record.version}", kind=AUDIT_KIND,
        severity=WARNING if change.risky else INFO, at=at,
        message=(f"{caller.name} ({caller.fingerprint}) published operator announcement "
                 f"{record.id} v{record.version} at {at}: {record.category} {window}"
                 + (f" with {', '.join(used)}" if used else "")),
        details={"by": caller.name, "token_fingerprint": caller.fingerprint, "at": at,
                 "remote": remote, "id": record.id, "version": record.version,
                 "category": record.category, "type": record.type, "start": record.start,
                 "end": record.end, "backdated": change.backdated,
                 "changes_end": change.changes_end, **{name: bool(allowed.get(name))
                                                       for name in FLAGS}})
