"""Byte-level checks KSeF applies before it reads the XML: size, BOM, encoding, characters.

They run on every invoice, so the common case (a plain UTF-8 document) costs a few
prefix compares and one `bytes.translate` pass; regexes, decoding and positions are
worked out only once something looks wrong.
"""

from __future__ import annotations

import re

from .reasons import Finding, finding

MAX_SIZE = 1_000_000
MAX_SIZE_WITH_ATTACHMENTS = 3_000_000
ATTACHMENT_ELEMENT = b"Zalacznik"

UTF8_BOM = b"\xef\xbb\xbf"
# A document starting with one of these is not UTF-8 at all: an encoding problem.
_OTHER_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
    (b"\xfe\xff", "UTF-16 (big-endian)"),
    (b"\xff\xfe", "UTF-16 (little-endian)"),
)
_XML_WHITESPACE = b" \t\r\n"
_USUAL_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'
_DECLARATION = re.compile(rb"<\?xml(?P<body>[^>]{0,300}?)\?>")
_PSEUDO_ATTRIBUTE = re.compile(rb"""([A-Za-z]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


# What XML 1.0 forbids or discourages, as UTF-8 byte sequences (a match is reported only
# once the whole document is known to be valid UTF-8): C0 controls but tab/LF/CR, DEL, C1
# controls U+0080..U+0084 and U+0086..U+009F (NEL is allowed), U+FDD0..U+FDEF, and
# U+FFFE/U+FFFF of every plane (4-byte forms: planes 1..16 end in BF BE / BF BF).
_FORBIDDEN = re.compile(
    rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
    rb"|\xc2[\x80-\x84\x86-\x9f]"
    rb"|\xef\xb7[\x90-\xaf]"
    rb"|\xef\xbf[\xbe\xbf]"
    rb"|[\xf0-\xf4][\x8f\x9f\xaf\xbf]\xbf[\xbe\xbf]"
)
# The parser itself rejects C0 controls and U+FFFE/U+FFFF (not XML characters), so the
# hot path only looks for what it lets through: DEL, C1 controls, U+FDD0..U+FDEF and the
# plane-final noncharacters. Their UTF-8 forms start with one of these bytes, each
# found by memchr; the pattern runs only where one occurs.
_DISCOURAGED_LEADS = (b"\x7f", b"\xc2", b"\xef", b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")
_C0_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_NOT_C0_CONTROLS = bytes(b for b in range(256) if not _C0_CONTROL.match(bytes([b])))
_OPEN_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_CHAR_REFERENCE = re.compile(rb"&#(?:x([0-9A-Fa-f]{1,8})|([0-9]{1,10}));")


def line_and_column(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in bytes) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


def _where(data: bytes, offset: int) -> str:
    line, column = line_and_column(data, offset)
    return f"line {line}, column {column} (byte offset {offset})"


def _enclosing_element(data: bytes, offset: int) -> str | None:
    """Name of the last start tag before `offset`: where a bad character sits."""
    names = _OPEN_TAG.findall(data, max(0, offset - 2000), offset)
    return names[-1].rsplit(b":", 1)[-1].decode("ascii") if names else None


def precheck(data: bytes) -> Finding | None:
    """The first byte-level problem KSeF would reject `data` for, or None.

    UTF-8 validity is left to the XML parser, which rejects every malformed sequence;
    when parsing fails, `utf8_problem` and `character_problem` tell an encoding error or
    a forbidden character from bad XML.
    """
    if len(data) > MAX_SIZE or data[:1] != b"<" or data[1:2] == b"\x00":
        problem = _shape_problem(data)
        if problem is not None:
            return problem
    if data.startswith(b"<?xml") and not data.startswith(_USUAL_DECLARATION):
        problem = _declaration_problem(data)
        if problem is not None:
            return problem
    first = _first_discouraged(data)
    if first != -1:
        return _forbidden_or_encoding(data, first)
    problem = doctype_problem(data)
    if problem is not None:
        return problem
    return _reference_problem(data) if _has_character_reference(data) else None


DOCTYPE_MESSAGE = ("the document has a DOCTYPE declaration; DTDs (and their entities) are "
                   "refused: an FA(3) invoice needs none")


def doctype_problem(data: bytes) -> Finding | None:
    """A DOCTYPE in the prolog, found in the bytes before libxml2 sees them.

    libxml2 opens the file an external subset names even with `load_dtd=False`: a FIFO
    or `/dev/stdin` froze a whole worker, and its error told whether a path exists.
    The walk skips the declaration, instructions and comments up to the first other
    markup, so a DOCTYPE is refused whatever it names, and nothing is ever opened.
    """
    position = 0
    while True:
        start = data.find(b"<", position)
        if start == -1:
            return None
        if data.startswith(b"<?", start):
            end = data.find(b"?>", start + 2)
            position = end + 2
        elif data.startswith(b"<!--", start):
            end = data.find(b"-->", start + 4)
            position = end + 3
        elif data.startswith(b"<!DOCTYPE", start):
            return finding("doctype", DOCTYPE_MESSAGE, line=line_and_column(data, start)[0])
        else:
            return None  # the root element (or junk the parser reports)
        if end == -1:
            return None  # unterminated: the parser reports it


def _has_character_reference(data: bytes) -> bool:
    # `b"&#" in data` costs ~1 ns a byte; a memchr for "&" (rare in invoices) is ~40x less.
    position = data.find(b"&")
    while position != -1:
        if data[position + 1 : position + 2] == b"#":
            return True
        position = data.find(b"&", position + 1)
    return False


def _unwanted_kind(char: int) -> str | None:
    """Why a code point may not appear in an FA(3) document, or None when it may."""
    if char in (0x9, 0xA, 0xD):
        return None
    if char < 0x20 or char == 0x7F:
        return "a control character XML 1.0 does not allow"
    if 0x80 <= char <= 0x84 or 0x86 <= char <= 0x9F:
        return "a C1 control character XML 1.0 discourages"
    if 0xD800 <= char <= 0xDFFF:
        return "a surrogate, not a character XML 1.0 allows"
    if char > 0x10FFFF:
        return "beyond Unicode"
    if 0xFDD0 <= char <= 0xFDEF or (char & 0xFFFE) == 0xFFFE:
        return "a Unicode noncharacter XML 1.0 discourages"
    return None


def _reference_problem(data: bytes) -> Finding | None:
    """A character reference (`&#1;`, `&#x85;`) to what the raw text may not contain."""
    for match in _CHAR_REFERENCE.finditer(data):
        hex_digits, digits = match.groups()
        char = int(hex_digits, 16) if hex_digits is not None else int(digits)
        kind = _unwanted_kind(char)
        if kind is None:
            continue
        shown = f"U+{char:04X}" if char <= 0x10FFFF else f"code point {char}"
        reference = match.group().decode("ascii")
        return _forbidden_at(data, match.start(), f"character reference {reference} is "
                                                  f"{shown} ({kind})")
    return None


def _shape_problem(data: bytes) -> Finding | None:
    """Empty, oversized, BOM, UTF-16/32, or not starting with markup at all."""
    size = len(data)
    if size == 0 or data.isspace():
        return finding("not-xml", f"the document is empty ({size} bytes, no markup)")
    problem = _size_problem(data)
    if problem is not None:
        return problem
    if data.startswith(UTF8_BOM):
        return finding(
            "bom",
            "the document starts with the UTF-8 byte order mark EF BB BF; "
            "KSeF accepts UTF-8 without a BOM",
            line=1,
        )
    for bom, name in _OTHER_BOMS:
        if data.startswith(bom):
            return finding(
                "encoding",
                f"the document starts with a {name} byte order mark "
                f"({' '.join(f'{b:02X}' for b in bom)}): it is {name.split()[0]} encoded; "
                "KSeF accepts UTF-8 only",
                line=1,
            )
    if _looks_wide(data[:4]):
        return finding(
            "encoding",
            "the document starts with '<' padded by NUL bytes: it is UTF-16 or UTF-32 "
            "encoded; KSeF accepts UTF-8 only",
            line=1,
        )
    if data.lstrip(_XML_WHITESPACE)[:1] != b"<":
        offset = size - len(data.lstrip(_XML_WHITESPACE))
        return finding(
            "not-xml",
            f"the document does not start with markup: byte 0x{data[offset]:02X} at "
            f"{_where(data, offset)} where '<' was expected",
            line=line_and_column(data, offset)[0],
        )
    return None


def _looks_wide(head: bytes) -> bool:
    """'<' encoded as UTF-16 (either byte order) or UTF-32: markup, but not in UTF-8."""
    if head in (b"<\x00\x00\x00", b"\x00\x00\x00<"):
        return True
    little = head[0:1] == b"<" and head[1:2] == b"\x00" and head[3:4] == b"\x00"
    big = head[0:1] == b"\x00" and head[1:2] == b"<" and head[2:3] == b"\x00"
    return little or big


def _size_problem(data: bytes) -> Finding | None:
    size = len(data)
    if size > MAX_SIZE_WITH_ATTACHMENTS:
        return finding(
            "too-large",
            f"the document has {size:,} bytes; KSeF accepts at most {MAX_SIZE:,} bytes "
            f"({MAX_SIZE_WITH_ATTACHMENTS:,} with attachments)",
        )
    if size > MAX_SIZE and ATTACHMENT_ELEMENT not in data:
        return too_large_without_attachments(size)
    return None


def too_large_without_attachments(size: int) -> Finding:
    return finding(
        "too-large",
        f"the document has {size:,} bytes and no attachment (Zalacznik); KSeF accepts "
        f"at most {MAX_SIZE:,} bytes for an invoice without attachments",
    )


def _declaration_problem(data: bytes) -> Finding | None:
    if not data.startswith(b"<?xml"):
        return None
    match = _DECLARATION.match(data[:400])
    if match is None:
        return None  # no well-formed declaration: the parser reports it precisely
    pseudo = {
        m[1]: m[2] if m[2] is not None else m[3] for m in _PSEUDO_ATTRIBUTE.finditer(match["body"])
    }
    version = pseudo.get(b"version")
    if version is not None and version != b"1.0":
        return finding(
            "not-xml",
            f"the XML declaration says version {version.decode('ascii', 'replace')!r}; "
            "KSeF accepts XML 1.0 only",
            line=1,
        )
    encoding = pseudo.get(b"encoding")
    if encoding is not None and encoding.lower() != b"utf-8":
        return finding(
            "encoding",
            f"the XML declaration names encoding {encoding.decode('ascii', 'replace')!r}; "
            "KSeF accepts UTF-8 only",
            line=1,
        )
    return None


def utf8_problem(data: bytes) -> Finding | None:
    """An `encoding` finding at the first malformed UTF-8 sequence, if there is one."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = data[error.start : error.start + 4]
        return finding(
            "encoding",
            f"invalid UTF-8 at {_where(data, error.start)}: bytes "
            f"{' '.join(f'{b:02X}' for b in bad)} ({error.reason}); KSeF accepts UTF-8 only",
            line=line_and_column(data, error.start)[0],
        )
    return None


def character_problem(data: bytes) -> Finding | None:
    """The first forbidden character, C0 controls included: for input that did not parse."""
    first = _first_discouraged(data)
    if data.translate(None, _NOT_C0_CONTROLS):  # rare: the regex runs only then
        control = _C0_CONTROL.search(data)
        if control is not None and (first == -1 or control.start() < first):
            first = control.start()
    return None if first == -1 else _forbidden_or_encoding(data, first)


def _first_discouraged(data: bytes) -> int:
    """Offset of the first discouraged character the parser accepts, or -1.

    Only occurrences of a lead byte are tried: most are ordinary characters (e.g. NBSP).
    """
    first = -1
    for lead in _DISCOURAGED_LEADS:
        position = data.find(lead)
        while position != -1 and (first == -1 or position < first):
            if _FORBIDDEN.match(data, position):
                first = position
                break
            position = data.find(lead, position + 1)
    return first


def _forbidden_or_encoding(data: bytes, offset: int) -> Finding:
    # The byte patterns assume well-formed UTF-8; malformed input is an encoding error.
    return utf8_problem(data) or _forbidden(data, offset)


def _forbidden(data: bytes, offset: int) -> Finding:
    char = ord(data[offset : offset + 4].decode("utf-8", "ignore")[0])
    kind = _unwanted_kind(char) or "a character XML 1.0 discourages"
    return _forbidden_at(data, offset, f"U+{char:04X} ({kind})")


def _forbidden_at(data: bytes, offset: int, what: str) -> Finding:
    element = _enclosing_element(data, offset)
    inside = f" inside <{element}>" if element else ""
    return finding(
        "forbidden-character",
        f"{what} at {_where(data, offset)}{inside}",
        line=line_and_column(data, offset)[0],
    )
