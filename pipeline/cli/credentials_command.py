"""`ksef-pipeline credentials`: what each seller context authenticates with, whether it
still can, and getting or revoking KSeF certificates (tokens end 2026-12-31).

Subcommands: `list`, `check`, `enroll`, `revoke`. Contexts come from the same files and
environment as the worker's (`KSEF_CREDENTIALS_FILE`, `KSEF_TOKEN_<NIP>`,
`KSEF_TOKENS_FILE`), live checks go to the same KSeF (`KSEF_ENV`, `KSEF_API_URL`).
Secrets are never printed: only files, subjects, dates and KSeF's refusals.

`check` exit codes (worst wins): 0 every context fine; 1 a context cannot authenticate
now (a configuration problem, KSeF refused it or was unreachable; or no context is
configured at all); 2 a context will not authenticate
from `--at` (a token on/after 2027-01-01, a certificate expiring within `--within` days).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.credentials import ContextStatus, CredentialStore
    from pipeline.ksef_api.link import KsefClients, KsefSettings

CERTIFICATE_TYPES = ("Authentication", "Offline")
REVOCATION_REASONS = ("Unspecified", "Superseded", "KeyCompromise")
LIVE_TIMEOUT_S = 60.0


def _date(text: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _auth_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--auth-cert", help="log in with this certificate (PEM/DER), e.g. a "
                        "qualified seal, instead of the context's configured one")
    parser.add_argument("--auth-key", help="the private key of --auth-cert (file mode 0600)")
    parser.add_argument("--auth-key-password-file",
                        help="password of an encrypted --auth-key (file mode 0600)")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="every configured context and its credential")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    check_text = ("judge every context and authenticate it live; exit 0 fine, 1 cannot "
                  "authenticate now, 2 will not from --at (token after 2026-12-31, "
                  "certificate expiring within --within days)")
    check = sub.add_parser("check", help=check_text, description=check_text)
    check.add_argument("--within", type=int, default=30, metavar="DAYS",
                       help="a certificate expiring within DAYS of --at fails (default 30)")
    check.add_argument("--at", type=_date, metavar="DATE",
                       help="judge future validity from DATE (YYYY-MM-DD, default now)")
    check.add_argument("--no-live", action="store_true",
                       help="skip the live authentication against KSeF")
    enroll = sub.add_parser("enroll", help="get a KSeF certificate for a context (key made "
                            "here, CSR from KSeF's enrollment data)")
    enroll.add_argument("--nip", required=True)
    enroll.add_argument("--type", required=True, choices=CERTIFICATE_TYPES, dest="kind")
    enroll.add_argument("--key-type", choices=("ec", "rsa"), default="ec",
                        help="EC P-256 (default) or RSA 2048")
    enroll.add_argument("--name", help="certificate name in KSeF (5-100 letters, digits, "
                        "spaces, _ or -)")
    enroll.add_argument("--out", help="directory for the certificate and key (default: next "
                        "to KSEF_CREDENTIALS_FILE; Offline: KSEF_OFFLINE_CERT_DIR if set)")
    enroll.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for the certificate (default 300)")
    _auth_options(enroll)
    revoke = sub.add_parser("revoke", help="revoke a KSeF certificate of the context")
    revoke.add_argument("--nip", required=True)
    revoke.add_argument("--serial", required=True, help="serial number (hex)")
    revoke.add_argument("--reason", choices=REVOCATION_REASONS, default="Unspecified")
    _auth_options(revoke)


def _settings_and_store() -> tuple[KsefSettings, CredentialStore]:
    from pipeline.credentials import CredentialStore
    from pipeline.ksef_api.link import KsefSettings

    settings = KsefSettings.from_env()
    return settings, CredentialStore(settings.credentials_file, settings.tokens_file)


def _sources(settings: KsefSettings) -> str:
    named = [f"KSEF_CREDENTIALS_FILE={settings.credentials_file}"
             if settings.credentials_file else "",
             f"KSEF_TOKENS_FILE={settings.tokens_file}" if settings.tokens_file else ""]
    return ", ".join(n for n in named if n) or "no credentials file set"


def _list(args: argparse.Namespace) -> int:
    from pipeline.credentials.health import row_of

    settings, store = _settings_and_store()
    now = dt.datetime.now(dt.UTC)
    rows = [row_of(status, now) for status in store.contexts()]
    if args.json:
        print(json.dumps({"contexts": [r.as_json() for r in rows]}, indent=2,
                         ensure_ascii=False))
        return 0
    if not rows:
        print(f"no contexts configured ({_sources(settings)})")
        return 0
    table = [("NIP", "METHOD", "NOT AFTER", "DAYS", "SUBJECT", "SOURCE", "PROBLEM")]
    table += [(r.nip, r.method, f"{r.not_after:%Y-%m-%d}" if r.not_after else "-",
               "-" if r.days_to_expiry is None else str(r.days_to_expiry),
               r.subject or "-", r.source or "-", r.problem or "-") for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False))
              + "  " + line[-1])
    print(f"({_sources(settings)}; a token's NOT AFTER is the last day of KSeF tokens)")
    return 0


async def _live(clients: KsefClients, nip: str) -> str | None:
    """None when `nip` authenticated now; else why not (KSeF's reason, never a secret)."""
    from pipeline.ksef_api import KsefAuthError, KsefCredentialError, KsefError

    try:
        client = clients.client(nip)
        await asyncio.wait_for(client.authenticate(), LIVE_TIMEOUT_S)
    except KsefAuthError as exc:
        return f"KSeF refused authentication (reason {exc.reason}): {exc}"
    except KsefCredentialError as exc:
        return f"credentials problem ({exc.problem}): {exc}"
    except KsefError as exc:
        return f"authentication could not complete ({type(exc).__name__}): {exc}"
    except TimeoutError:
        return f"no authentication answer within {LIVE_TIMEOUT_S:.0f} s"
    except LookupError as exc:
        return str(exc)
    return None


def _describe(status: ContextStatus, now: dt.datetime) -> str:
    from pipeline.credentials.health import row_of

    row = row_of(status, now)
    parts = [f"{row.nip} {row.method}"]
    if row.subject:
        parts.append(row.subject)
    if row.not_after is not None and row.method == "certificate":
        parts.append(f"not after {row.not_after:%Y-%m-%d} ({row.days_to_expiry} days)")
    if row.source:
        parts.append(f"from {row.source}")
    return ", ".join(parts)


async def _check(args: argparse.Namespace) -> int:
    from pipeline.credentials.health import NOW_FAILS, OK, WILL_FAIL, future_verdict
    from pipeline.ksef_api.link import KsefClients

    settings, store = _settings_and_store()
    now = dt.datetime.now(dt.UTC)
    at = args.at or now
    statuses = store.contexts()
    if not statuses:
        print(f"no contexts configured ({_sources(settings)}): nothing can authenticate; "
              "set KSEF_CREDENTIALS_FILE -> exit 1")
        return 1
    env = settings.environment()
    live = "no live authentication" if args.no_live else (
        f"live authentication against {env.name} ({env.api_url})")
    print(f"checking {len(statuses)} context(s) from {_sources(settings)}; {live}; "
          f"judging from {at:%Y-%m-%d} with a {args.within}-day window", flush=True)
    counts = {OK: 0, NOW_FAILS: 0, WILL_FAIL: 0}
    clients = KsefClients(settings, store=store)
    try:
        for index, status in enumerate(statuses, 1):
            print(f"[{index}/{len(statuses)}] {_describe(status, now)}", flush=True)
            code, lines = OK, []
            if status.problem is not None:
                code = NOW_FAILS
                lines.append(f"FAIL  {status.problem.problem}: {status.problem}")
            elif not args.no_live:
                print("      authenticating ...", flush=True)
                failure = await _live(clients, status.nip)
                if failure is None:
                    lines.append("ok    authenticated now")
                else:
                    code = NOW_FAILS
                    lines.append(f"FAIL  {failure}")
            if status.credential is not None:
                future, why = future_verdict(status, at, args.within)
                if future == WILL_FAIL:
                    code = WILL_FAIL if code == OK else code
                    lines.append(f"FAIL  from {at:%Y-%m-%d}: {why}")
                elif why:
                    lines.append(f"WARN  {why}")
            for line in lines:
                print(f"      {line}", flush=True)
            counts[code] += 1
    finally:
        await clients.aclose()
    result = NOW_FAILS if counts[NOW_FAILS] else WILL_FAIL if counts[WILL_FAIL] else OK
    print(f"{len(statuses)} context(s): {counts[OK]} fine, {counts[NOW_FAILS]} cannot "
          f"authenticate now, {counts[WILL_FAIL]} will not from {at:%Y-%m-%d} "
          f"-> exit {result}")
    return result


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "list":
            return _list(args)
        if args.action == "check":
            return asyncio.run(_check(args))
    except ValueError as exc:  # a bad KSEF_ENV / KSEF_API_URL and the like
        print(f"credentials {args.action}: {exc}", file=sys.stderr)
        return 1
    from pipeline.cli import credentials_enroll
    if args.action == "enroll":
        return asyncio.run(credentials_enroll.enroll(args))
    return asyncio.run(credentials_enroll.revoke(args))
