"""SQLite persistence: everything a restart must not lose (stdlib sqlite3, WAL).

One connection shared by the event loop (short queries) and the processing threads
(bulk commits), serialised by a lock; each public method is one transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Row = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subjects (
    nip TEXT PRIMARY KEY, subject_type TEXT NOT NULL, description TEXT NOT NULL,
    created TEXT NOT NULL, attachments INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ksef_tokens (
    token_hash TEXT PRIMARY KEY, reference TEXT NOT NULL UNIQUE, nip TEXT NOT NULL,
    description TEXT NOT NULL, created TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS challenges (
    challenge TEXT PRIMARY KEY, timestamp_ms INTEGER NOT NULL, client_ip TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS auth_ops (
    reference TEXT PRIMARY KEY, nip TEXT NOT NULL, token_reference TEXT,
    started TEXT NOT NULL, status_code INTEGER NOT NULL, status_description TEXT NOT NULL,
    status_details TEXT, redeemed INTEGER NOT NULL DEFAULT 0, last_refresh TEXT,
    refresh_valid_until TEXT, revoked INTEGER NOT NULL DEFAULT 0, method TEXT,
    subject_type TEXT, subject_value TEXT, cert_serial TEXT, certificate BLOB);
CREATE TABLE IF NOT EXISTS sessions (
    reference TEXT PRIMARY KEY, kind TEXT NOT NULL, nip TEXT NOT NULL,
    auth_reference TEXT, token_reference TEXT, created TEXT NOT NULL, updated TEXT NOT NULL,
    closed TEXT, valid_until TEXT, status_code INTEGER NOT NULL,
    status_description TEXT NOT NULL, status_details TEXT, form_code TEXT NOT NULL,
    wrapped_key BLOB NOT NULL, iv BLOB NOT NULL, offline_mode INTEGER NOT NULL DEFAULT 0,
    batch_file TEXT, upload_deadline TEXT, invoice_count INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS sessions_by_nip ON sessions (nip, created);
CREATE TABLE IF NOT EXISTS parts (
    session TEXT NOT NULL, ordinal INTEGER NOT NULL, declared_size INTEGER NOT NULL,
    declared_hash TEXT NOT NULL, uploaded_size INTEGER, uploaded_hash TEXT, uploaded TEXT,
    PRIMARY KEY (session, ordinal));
CREATE TABLE IF NOT EXISTS invoices (
    reference TEXT PRIMARY KEY, session TEXT NOT NULL, ordinal INTEGER NOT NULL,
    invoice_number TEXT, ksef_number TEXT UNIQUE, invoice_hash TEXT NOT NULL,
    file_name TEXT, invoicing_date TEXT NOT NULL, acquisition_date TEXT,
    storage_date TEXT, invoicing_mode TEXT, status_code INTEGER NOT NULL,
    status_description TEXT NOT NULL, status_details TEXT, extensions TEXT,
    seller_nip TEXT, buyer_nip TEXT, kind TEXT, issue_date TEXT,
    offline_declared INTEGER NOT NULL DEFAULT 0, corrected_hash TEXT, size INTEGER,
    blob_offset INTEGER, blob_size INTEGER, UNIQUE (session, ordinal));
CREATE INDEX IF NOT EXISTS invoices_by_status ON invoices (session, status_code, ordinal);
CREATE INDEX IF NOT EXISTS invoices_by_hash ON invoices (invoice_hash);
CREATE INDEX IF NOT EXISTS invoices_pending ON invoices (status_code)
    WHERE status_code < 200;
CREATE TABLE IF NOT EXISTS invoice_blobs (ksef_number TEXT PRIMARY KEY, content BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pending_payloads (reference TEXT PRIMARY KEY, content BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS duplicates (
    seller_nip TEXT NOT NULL, kind TEXT NOT NULL, number TEXT NOT NULL,
    ksef_number TEXT NOT NULL, session TEXT NOT NULL,
    PRIMARY KEY (seller_nip, kind, number));
CREATE TABLE IF NOT EXISTS upo_pages (
    reference TEXT PRIMARY KEY, session TEXT NOT NULL, page INTEGER NOT NULL,
    path TEXT NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS latarnia_messages (
    id TEXT NOT NULL, version INTEGER NOT NULL, event_id INTEGER NOT NULL,
    category TEXT NOT NULL, type TEXT NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL,
    start TEXT NOT NULL, "end" TEXT, published TEXT NOT NULL, PRIMARY KEY (id, version));
CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_missing("invoices", {"blob_offset": "INTEGER", "blob_size": "INTEGER"})
        self._add_missing("auth_ops", {"method": "TEXT", "subject_type": "TEXT",
                                       "subject_value": "TEXT", "cert_serial": "TEXT",
                                       "certificate": "BLOB"})
        self.invoice_columns = self._columns("invoices")

    def _add_missing(self, table: str, columns: dict[str, str]) -> None:
        """Columns added since earlier versions, so older data directories still open."""
        present = self._columns(table)
        for column, kind in columns.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _columns(self, table: str) -> list[str]:
        return [r["name"] for r in self._db.execute(f"PRAGMA table_info({table})").fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def executescript(self, sql: str) -> None:
        """Create the tables of a companion store (see `cert_store`) on this database."""
        with self._lock:
            self._db.executescript(sql)

    def fetch_one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        return self._one(sql, args)

    def fetch_all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return self._all(sql, args)

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._run(sql, args)

    def insert(self, table: str, row: Row, *, ignore: bool = False) -> bool:
        return self._insert(table, row, ignore=ignore)

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def _run(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def _insert(self, table: str, row: Row, *, ignore: bool = False) -> bool:
        cols = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join("?" for _ in row)
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        return self._run(f"{verb} INTO {table} ({cols}) VALUES ({marks})", list(row.values())) > 0

    def _update(self, table: str, key: str, value: Any, fields: Row) -> None:
        sets = ", ".join(f'"{c}" = ?' for c in fields)
        self._run(f"UPDATE {table} SET {sets} WHERE {key} = ?", [*fields.values(), value])

    # subjects and tokens
    def add_subject(self, row: Row) -> bool:
        return self._insert("subjects", row, ignore=True)

    def subject(self, nip: str) -> Row | None:
        return self._one("SELECT * FROM subjects WHERE nip = ?", (nip,))

    def set_attachments(self, nip: str, enabled: bool) -> None:
        self._update("subjects", "nip", nip, {"attachments": int(enabled)})

    def add_token(self, row: Row) -> None:
        self._insert("ksef_tokens", row)

    def token_by_hash(self, token_hash: str) -> Row | None:
        return self._one("SELECT * FROM ksef_tokens WHERE token_hash = ?", (token_hash,))

    # authentication
    def add_challenge(self, row: Row) -> None:
        self._insert("challenges", row)

    def take_challenge(self, challenge: str) -> Row | None:
        """The challenge if it exists and was not used before (it is marked used)."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT * FROM challenges WHERE challenge = ? AND used = 0", (challenge,)
            ).fetchone()
            if row is not None:
                db.execute("UPDATE challenges SET used = 1 WHERE challenge = ?", (challenge,))
        return dict(row) if row is not None else None

    def add_auth(self, row: Row) -> None:
        self._insert("auth_ops", row)

    def auth(self, reference: str) -> Row | None:
        return self._one("SELECT * FROM auth_ops WHERE reference = ?", (reference,))

    def update_auth(self, reference: str, **fields: Any) -> None:
        self._update("auth_ops", "reference", reference, fields)

    def revoke_auths_by_certificate(self, serial: str) -> int:
        """Invalidate every authentication made with certificate `serial`."""
        return self._run("UPDATE auth_ops SET revoked = 1 WHERE cert_serial = ?", (serial,))

    # sessions and parts
    def add_session(self, row: Row, parts: Iterable[Row] = ()) -> None:
        with self.transaction():
            self._insert("sessions", row)
            for part in parts:
                self._insert("parts", part)

    def session(self, reference: str) -> Row | None:
        return self._one("SELECT * FROM sessions WHERE reference = ?", (reference,))

    def update_session(self, reference: str, **fields: Any) -> None:
        self._update("sessions", "reference", reference, fields)

    def sessions_with_status(self, codes: Sequence[int]) -> list[Row]:
        marks = ", ".join("?" for _ in codes)
        return self._all(f"SELECT * FROM sessions WHERE status_code IN ({marks})", codes)

    def query_sessions(self, where: str, args: Sequence[Any], offset: int, limit: int) -> list[Row]:
        return self._all(
            f"SELECT * FROM sessions WHERE {where} ORDER BY created DESC, reference "
            "LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )

    def parts(self, session: str) -> list[Row]:
        return self._all("SELECT * FROM parts WHERE session = ? ORDER BY ordinal", (session,))

    def record_upload(self, session: str, ordinal: int, size: int, sha: str, when: str) -> None:
        self._run(
            "UPDATE parts SET uploaded_size = ?, uploaded_hash = ?, uploaded = ? "
            "WHERE session = ? AND ordinal = ?",
            (size, sha, when, session, ordinal),
        )

    # invoices
    def add_online_invoice(self, row: Row, payload: bytes | None) -> None:
        """Record a sent invoice (and its plaintext until processed) in one transaction."""
        with self.transaction():
            self._insert("invoices", row)
            self._run("UPDATE sessions SET invoice_count = invoice_count + 1, updated = ? "
                      "WHERE reference = ?", (row["invoicing_date"], row["session"]))
            if payload is not None:
                self._insert("pending_payloads", {"reference": row["reference"],
                                                  "content": payload})

    def invoice(self, reference: str) -> Row | None:
        return self._one("SELECT * FROM invoices WHERE reference = ?", (reference,))

    def invoice_in_session(self, session: str, reference: str) -> Row | None:
        return self._one("SELECT * FROM invoices WHERE session = ? AND reference = ?",
                         (session, reference))

    def invoice_by_ksef(self, ksef_number: str) -> Row | None:
        return self._one("SELECT * FROM invoices WHERE ksef_number = ?", (ksef_number,))

    def invoices_by_hash(self, invoice_hash: str) -> list[Row]:
        return self._all("SELECT i.*, s.nip AS context_nip FROM invoices i JOIN sessions s "
                         "ON s.reference = i.session WHERE invoice_hash = ?", (invoice_hash,))

    def corrections_of(self, original_hash: str) -> list[Row]:
        return self._all("SELECT * FROM invoices WHERE corrected_hash = ?", (original_hash,))

    def invoices_page(self, session: str, failed_only: bool, offset: int, limit: int) -> list[Row]:
        extra = " AND status_code >= 300" if failed_only else ""
        return self._all(
            f"SELECT * FROM invoices WHERE session = ?{extra} ORDER BY ordinal LIMIT ? OFFSET ?",
            (session, limit, offset),
        )

    def accepted_invoices(self, session: str) -> list[Row]:
        return self._all("SELECT * FROM invoices WHERE session = ? AND status_code = 200 "
                         "ORDER BY ordinal", (session,))

    def invoice_counts(self, session: str) -> tuple[int, int, int]:
        """(all, accepted, failed) invoices of a session."""
        row = self._one(
            "SELECT COUNT(*) AS n, SUM(status_code = 200) AS ok, SUM(status_code >= 300) AS bad "
            "FROM invoices WHERE session = ?", (session,))
        assert row is not None
        return int(row["n"] or 0), int(row["ok"] or 0), int(row["bad"] or 0)

    def processed_ordinals(self, session: str) -> int:
        row = self._one("SELECT COALESCE(MAX(ordinal), 0) AS m FROM invoices WHERE session = ?",
                        (session,))
        return int(row["m"]) if row else 0

    def pending_invoices(self) -> list[Row]:
        return self._all("SELECT * FROM invoices WHERE status_code < 200 ORDER BY invoicing_date")

    def pending_payload(self, reference: str) -> bytes | None:
        row = self._one("SELECT content FROM pending_payloads WHERE reference = ?", (reference,))
        return bytes(row["content"]) if row else None

    def invoice_blob(self, ksef_number: str) -> bytes | None:
        row = self._one("SELECT content FROM invoice_blobs WHERE ksef_number = ?", (ksef_number,))
        return bytes(row["content"]) if row else None

    def find_duplicate(self, seller_nip: str, kind: str, number: str) -> Row | None:
        return self._one("SELECT * FROM duplicates WHERE seller_nip = ? AND kind = ? "
                         "AND number = ?", (seller_nip, kind, number))

    def next_sequence(self, name: str, count: int = 1) -> int:
        """Reserve `count` consecutive values; returns the first."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM sequences WHERE name = ?", (name,)).fetchone()
            first = (row["value"] if row else 0) + 1
            db.execute("INSERT OR REPLACE INTO sequences (name, value) VALUES (?, ?)",
                       (name, first + count - 1))
        return int(first)

    def commit_outcomes(self, outcomes: Sequence[Any], *, insert: bool) -> None:
        """Store processed invoices (rows, blobs, duplicate keys) in one transaction.

        `outcomes` items carry `row` (invoices columns), `blob` (bytes to keep in the
        database, or None) and `dup_key` ((seller, kind, number) of accepted ones). With
        `insert` the rows are new (batch); otherwise they update rows sent earlier (online).
        """
        cols = self.invoice_columns
        with self.transaction() as db:
            if insert:
                marks = ", ".join("?" for _ in cols)
                db.executemany(f"INSERT INTO invoices ({', '.join(cols)}) VALUES ({marks})",
                               [[o.row.get(c) for c in cols] for o in outcomes])
            else:
                for out in outcomes:
                    fields = {k: v for k, v in out.row.items() if k != "reference"}
                    self._update("invoices", "reference", out.row["reference"], fields)
                db.executemany("DELETE FROM pending_payloads WHERE reference = ?",
                               [(o.row["reference"],) for o in outcomes])
            db.executemany("INSERT INTO invoice_blobs (ksef_number, content) VALUES (?, ?)",
                           [(o.row["ksef_number"], o.blob) for o in outcomes
                            if o.blob is not None])
            db.executemany(
                "INSERT INTO duplicates (seller_nip, kind, number, ksef_number, session) "
                "VALUES (?, ?, ?, ?, ?)",
                [(*o.dup_key, o.row["ksef_number"], o.row["session"]) for o in outcomes
                 if o.dup_key is not None])

    # UPO
    def replace_upo_pages(self, session: str, pages: Iterable[Row]) -> None:
        with self.transaction():
            self._run("DELETE FROM upo_pages WHERE session = ?", (session,))
            for page in pages:
                self._insert("upo_pages", page)

    def upo_pages(self, session: str) -> list[Row]:
        return self._all("SELECT * FROM upo_pages WHERE session = ? ORDER BY page", (session,))

    def upo_page(self, session: str, reference: str) -> Row | None:
        return self._one("SELECT * FROM upo_pages WHERE session = ? AND reference = ?",
                         (session, reference))

    # Latarnia
    def add_message(self, row: Row) -> None:
        self._insert("latarnia_messages", row)

    def latest_messages(self) -> list[Row]:
        return self._all(
            'SELECT m.* FROM latarnia_messages m JOIN (SELECT id, MAX(version) AS v '
            'FROM latarnia_messages GROUP BY id) last ON m.id = last.id AND m.version = last.v '
            "ORDER BY m.published, m.id")

    def message_versions(self, message_id: str) -> list[Row]:
        return self._all("SELECT * FROM latarnia_messages WHERE id = ? ORDER BY version",
                         (message_id,))

    def max_event_id(self) -> int:
        row = self._one("SELECT COALESCE(MAX(event_id), 0) AS m FROM latarnia_messages")
        return int(row["m"]) if row else 0
