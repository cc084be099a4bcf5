"""Why KSeF would refuse an invoice: the rejection vocabulary and the finding record."""

from __future__ import annotations

from dataclasses import dataclass

# KSeF's invoice-level status codes (see DOMAIN.md).
CODE_ATTACHMENTS = 415
CODE_FORMAT = 430
CODE_DUPLICATE = 440
CODE_SEMANTIC = 450
CODE_UNKNOWN = 500

REASONS: dict[str, tuple[int, str]] = {
    "too-large": (
        CODE_FORMAT,
        "larger than 1,000,000 bytes (3,000,000 bytes when it carries attachments)",
    ),
    "bom": (CODE_FORMAT, "starts with the UTF-8 byte order mark; KSeF wants UTF-8 without it"),
    "encoding": (
        CODE_FORMAT,
        "not UTF-8: another encoding declared, UTF-16/32 (with or without a BOM), or invalid "
        "UTF-8 bytes",
    ),
    "not-xml": (CODE_FORMAT, "not a well-formed XML 1.0 document (empty, junk, broken markup)"),
    "forbidden-character": (
        CODE_FORMAT,
        "contains a character XML 1.0 forbids or discourages (C0/C1 controls, noncharacters)",
    ),
    "doctype": (
        CODE_FORMAT,
        "contains a document type declaration (DTD); our safety rule, not a documented KSeF one",
    ),
    "processing-instruction": (CODE_FORMAT, "contains an XML processing instruction"),
    "schema": (CODE_FORMAT, "not a valid FA(3) document (root element or XSD validation)"),
    "nip-checksum": (
        CODE_SEMANTIC,
        "a NIP of Podmiot1/2/3 or PodmiotUpowazniony fails the checksum",
    ),
    "issue-date-in-future": (
        CODE_SEMANTIC,
        "issue date P_1 is after the day KSeF would accept the invoice",
    ),
    "attachments-not-allowed": (
        CODE_ATTACHMENTS,
        "carries an attachment (Zalacznik) where attachments are not allowed",
    ),
    "duplicate": (
        CODE_DUPLICATE,
        "same seller NIP, RodzajFaktury and P_2 as an invoice already accepted",
    ),
    "unknown": (CODE_UNKNOWN, "the check itself failed unexpectedly"),
}


# A finding quotes invoice text (element names, values, parser messages) in short
# excerpts only: rejections are kept 400 days and must not become copies of the input.
EXCERPT_MAX = 200  # characters of invoice text in one quoted piece
MESSAGE_MAX = 1000  # characters of a whole message
PATH_MAX = 300  # characters of an element path


def excerpt(text: str, limit: int = EXCERPT_MAX) -> str:
    """`text` cut to `limit` characters ("..." ends a cut one)."""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


@dataclass(frozen=True)
class Finding:
    """Why KSeF would refuse the invoice; `message` never quotes invoice contents at length."""

    code: int
    reason: str
    message: str
    line: int | None = None
    path: str | None = None


def finding(
    reason: str, message: str, *, line: int | None = None, path: str | None = None
) -> Finding:
    """A Finding whose code is the one REASONS gives for `reason`; message and path cut
    to MESSAGE_MAX / PATH_MAX characters."""
    return Finding(REASONS[reason][0], reason, excerpt(message, MESSAGE_MAX), line,
                   None if path is None else excerpt(path, PATH_MAX))
