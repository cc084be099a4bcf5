"""Persistence of the credential side of the emulator: permissions granted to subjects,
certificate enrollments, issued KSeF certificates and revocations.

Kept beside `Store` (same SQLite database and lock) so invoice persistence stays one
concept and this one another.
"""

from __future__ import annotations

from typing import Any

from pipeline.emulator.store import Row, Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS permissions (
    context_nip TEXT NOT NULL, subject_type TEXT NOT NULL, subject_value TEXT NOT NULL,
    permission TEXT NOT NULL, granted TEXT NOT NULL,
    PRIMARY KEY (context_nip, subject_type, subject_value, permission));
CREATE TABLE IF NOT EXISTS enrollments (
    reference TEXT PRIMARY KEY, owner_type TEXT NOT NULL, owner_value TEXT NOT NULL,
    requested TEXT NOT NULL, status_code INTEGER NOT NULL, status_description TEXT NOT NULL,
    status_details TEXT, serial TEXT);
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT PRIMARY KEY, owner_type TEXT NOT NULL, owner_value TEXT NOT NULL,
    name TEXT NOT NULL, type TEXT NOT NULL, common_name TEXT NOT NULL, der BLOB NOT NULL,
    public_key BLOB NOT NULL, valid_from TEXT NOT NULL, valid_to TEXT NOT NULL,
    request_date TEXT NOT NULL, last_use TEXT, enrollment TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS certificates_by_owner ON certificates (owner_type, owner_value);
CREATE TABLE IF NOT EXISTS revocations (
    serial TEXT PRIMARY KEY, revoked TEXT NOT NULL, reason TEXT NOT NULL);
"""


class CertStore:
    def __init__(self, store: Store) -> None:
        self._store = store
        store.executescript(_SCHEMA)

    # permissions
    def grant(self, context_nip: str, subject_type: str, subject_value: str,
              permissions: list[str], when: str) -> None:
        for permission in permissions:
            self._store.insert("permissions", {
                "context_nip": context_nip, "subject_type": subject_type,
                "subject_value": subject_value, "permission": permission, "granted": when},
                ignore=True)

    def revoke_grants(self, context_nip: str, subject_type: str, subject_value: str) -> int:
        return self._store.run("DELETE FROM permissions WHERE context_nip = ? AND "
                               "subject_type = ? AND subject_value = ?",
                               (context_nip, subject_type, subject_value))

    def permissions(self, context_nip: str, subject_type: str, subject_value: str) -> list[str]:
        rows = self._store.fetch_all(
            "SELECT permission FROM permissions WHERE context_nip = ? AND subject_type = ? "
            "AND subject_value = ? ORDER BY permission", (context_nip, subject_type, subject_value))
        return [r["permission"] for r in rows]

    # enrollments and certificates
    def add_enrollment(self, row: Row) -> None:
        self._store.insert("enrollments", row)

    def enrollment(self, reference: str) -> Row | None:
        return self._store.fetch_one("SELECT * FROM enrollments WHERE reference = ?",
                                     (reference,))

    def count_enrollments(self, owner_type: str, owner_value: str) -> int:
        row = self._store.fetch_one("SELECT COUNT(*) AS n FROM enrollments WHERE owner_type = ? "
                                    "AND owner_value = ?", (owner_type, owner_value))
        return int(row["n"]) if row else 0

    def add_certificate(self, row: Row, enrollment_fields: dict[str, Any]) -> None:
        """Store an issued certificate and complete its enrollment, in one transaction."""
        with self._store.transaction():
            self._store.insert("certificates", row)
            sets = ", ".join(f"{k} = ?" for k in enrollment_fields)
            self._store.run(f"UPDATE enrollments SET {sets} WHERE reference = ?",
                            [*enrollment_fields.values(), row["enrollment"]])

    def add_certificate_refusal(self, reference: str, details: str) -> None:
        self._store.run("UPDATE enrollments SET status_code = 400, status_description = ?, "
                        "status_details = ? WHERE reference = ?",
                        ("Wniosek odrzucony", details, reference))

    def certificate(self, serial: str) -> Row | None:
        return self._store.fetch_one(
            "SELECT c.*, r.revoked AS revoked, r.reason AS revocation_reason FROM certificates c "
            "LEFT JOIN revocations r ON r.serial = c.serial WHERE c.serial = ?", (serial,))

    def certificate_by_key(self, public_key: bytes) -> Row | None:
        return self._store.fetch_one("SELECT serial FROM certificates WHERE public_key = ?",
                                     (public_key,))

    def owned_certificates(self, owner_type: str, owner_value: str) -> list[Row]:
        return self._store.fetch_all(
            "SELECT c.*, r.revoked AS revoked FROM certificates c LEFT JOIN revocations r "
            "ON r.serial = c.serial WHERE owner_type = ? AND owner_value = ? "
            "ORDER BY request_date DESC, c.serial", (owner_type, owner_value))

    def touch(self, serial: str, when: str) -> None:
        self._store.run("UPDATE certificates SET last_use = ? WHERE serial = ?", (when, serial))

    # revocations (of any certificate, emulator-issued or not)
    def revoke(self, serial: str, when: str, reason: str) -> bool:
        """False when `serial` was revoked before."""
        return self._store.insert("revocations", {"serial": serial, "revoked": when,
                                                  "reason": reason}, ignore=True)

    def revocation(self, serial: str) -> Row | None:
        return self._store.fetch_one("SELECT * FROM revocations WHERE serial = ?", (serial,))
