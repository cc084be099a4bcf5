"""Every stateless check KSeF applies to an FA(3) invoice, in one pass over the bytes.

The hot path is one lxml parse and one XSD validation of that same tree; the byte
checks before it and the fact lookups after it are small next to those. Work that
only explains a failure (positions, element paths, xmlschema) runs only on failure.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from pipeline.ksef.numbers import NIP_WEIGHTS, sha256_b64

from .facts import InvoiceFacts, NipField, read_invoice, unread_facts
from .precheck import (
    DOCTYPE_MESSAGE,
    MAX_SIZE,
    character_problem,
    precheck,
    too_large_without_attachments,
    utf8_problem,
)
from .reasons import EXCERPT_MAX, Finding, excerpt, finding
from .schema import (
    FA3_NAMESPACE,
    FA3_ROOT_TAG,
    explainer_schema,
    first_schema_error,
    lxml_schema,
)

FA2_NAMESPACE = "http://crd.gov.pl/wzor/2023/06/29/12648/"
_NS_PREFIX = f"{{{FA3_NAMESPACE}}}"
_LONG_QUOTED = re.compile(r"'([^']{40})[^']+'")
_LONG_RUN = re.compile(r"(\S{100})\S+")  # a name or value without spaces, cut
_LONG_LIST = re.compile(r"([{\[])((?:'[^']*', ){10,}'[^']*')([}\]])")
_SPACE_BYTES = (b" ", b"\t", b"\r", b"\n")
# xmlschema reads the whole tree to explain even an early error (about 12 ms for 12 KB,
# 250 ms for 240 KB); past this size lxml's message and element path have to do, so a
# flood of large bad invoices cannot stall a worker.
EXPLAIN_MAX_BYTES = 64_000


@dataclass(frozen=True)
class CheckResult:
    """What `InvoiceChecker.check` found: the facts it could read and the first problem."""

    facts: InvoiceFacts
    finding: Finding | None  # None: passes every stateless check

    @property
    def ok(self) -> bool:
        return self.finding is None


def invoice_parser(*, drop_blank_text: bool = False) -> Any:
    """The parser KSeF-bound bytes get: no network, no entity expansion, no huge trees."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_blank_text=drop_blank_text,
        collect_ids=False,
    )


class _ThreadParsers(threading.local):
    """lxml parsers are not to be shared between threads; each thread gets its own."""

    def __init__(self) -> None:
        self.plain = invoice_parser()
        self.compact = invoice_parser(drop_blank_text=True)


_parsers = _ThreadParsers()


def parser_for(data: bytes) -> Any:
    """The compact parser unless the document has comments or CDATA sections.

    Dropping whitespace-only text between elements spares the validator about a tenth
    of its work. FA(3) has no mixed content, and libxml2 keeps the whitespace that is
    an element's whole content, so the verdict can only change where such whitespace
    sits beside a comment or CDATA section in a text-only element: any "<!" keeps
    every text node ('!' is rare, so memchr usually settles it).
    """
    if b"!" in data and b"<!" in data:
        return _parsers.plain
    return _parsers.compact


class InvoiceChecker:
    """Applies the stateless KSeF pre-checks; safe to share between threads.

    The XSD is compiled once per process, lazily; `warm_up()` pays that up front.
    """

    def warm_up(self) -> None:
        lxml_schema()

    def check(
        self,
        data: bytes,
        *,
        today: dt.date,
        attachments_allowed: bool = False,
        explain: bool = True,
        verify_nip_checksums: bool = True,
    ) -> CheckResult:
        """Facts and the first reason KSeF would refuse `data`; never raises.

        `today` is the Polish calendar day of acceptance; `verify_nip_checksums=False`
        mirrors KSeF's test environment, which skips NIP checksums. `explain` adds
        xmlschema's reading of an XSD failure (documents up to EXPLAIN_MAX_BYTES).
        """
        digest = ""
        try:
            if type(data) is not bytes:
                data = bytes(data)  # bytearray / memoryview from a consumer
            digest = sha256_b64(data)
            problem = precheck(data)
            if problem is not None:
                return CheckResult(unread_facts(len(data), digest), problem)
            return _check_document(
                data, digest, today, attachments_allowed, explain, verify_nip_checksums
            )
        except Exception as error:  # a checker bug must not kill a worker
            message = f"internal error while checking the invoice: {type(error).__name__}"
            return CheckResult(unread_facts(len(data), digest), finding("unknown", message))


def _check_document(
    data: bytes,
    digest: str,
    today: dt.date,
    attachments_allowed: bool,
    explain: bool,
    verify_nip_checksums: bool,
) -> CheckResult:
    try:
        root = etree.fromstring(data, parser_for(data))
    except etree.XMLSyntaxError as error:
        failure = utf8_problem(data) or character_problem(data) or _syntax_finding(error)
        return CheckResult(unread_facts(len(data), digest), failure)
    facts, nips = read_invoice(root, len(data), digest)
    problem = (
        _structure_problem(data, root)
        or _root_problem(root)
        or _size_problem(facts)
        or _schema_problem(root, explain and len(data) <= EXPLAIN_MAX_BYTES)
        or (_nip_problem(nips) if verify_nip_checksums else None)
    )
    if problem is None and facts.issue_date is not None and facts.issue_date > today:
        problem = _date_problem(facts, today, root)
    if problem is None and facts.has_attachments and not attachments_allowed:
        problem = _attachment_problem(root)
    return CheckResult(facts, problem)


def _syntax_finding(error: Any) -> Finding:
    line, column = error.position if error.position else (error.lineno, None)
    where = f"line {line}" + (f", column {column}" if column else "")
    detail = excerpt(_LONG_RUN.sub(r"\1...", error.msg or "parse error"), 2 * EXCERPT_MAX)
    return finding("not-xml", f"not well-formed XML at {where}: {detail}", line=line)


def _structure_problem(data: bytes, root: Any) -> Finding | None:
    """DOCTYPE and processing instructions; the byte scans keep the common case free."""
    prolog_end = _prolog_end(data)
    if prolog_end is None and root.getroottree().docinfo.internalDTD is not None:
        return finding("doctype", DOCTYPE_MESSAGE, line=1)  # also refused before parsing
    # '?' is rare in invoices and found by memchr; '<?' itself is a slow search.
    if data.find(b"?", prolog_end or 0) == -1:
        return None
    instructions = [
        *reversed(list(root.itersiblings(etree.PI, preceding=True))),
        *root.iter(etree.PI),
        *root.itersiblings(etree.PI),
    ]
    if not instructions:
        return None  # the "?" was in text, a comment or CDATA
    first = instructions[0]
    parent = first.getparent()
    path = element_path(parent) if parent is not None else None
    where = f" inside {path}" if path else " outside the root element"
    return finding(
        "processing-instruction",
        f"processing instruction <?{excerpt(first.target, 100)} ...?> at line "
        f"{first.sourceline}{where}; "
        "KSeF refuses documents with processing instructions",
        line=first.sourceline,
        path=path,
    )


def _prolog_end(data: bytes) -> int | None:
    """Where the root start tag begins when the prolog is just the usual declaration
    and whitespace (so it holds no DOCTYPE and no instruction); None otherwise."""
    position = 0
    if data.startswith(b"<?xml"):
        position = data.find(b"?>", 0, 400) + 2
        if position == 1:
            return None
    while data[position : position + 1] in _SPACE_BYTES:
        position += 1
    return position if data[position + 1 : position + 2].isalpha() else None


def _root_problem(root: Any) -> Finding | None:
    """FA(3) `Faktura` in its namespace; anything else gets a message naming what it is."""
    if root.tag == FA3_ROOT_TAG:
        return None
    qname = etree.QName(root)
    if qname.localname == "Faktura" and qname.namespace == FA2_NAMESPACE:
        message = (
            f"this is an FA(2) invoice (namespace {FA2_NAMESPACE}); "
            f"KSeF expects FA(3), namespace {FA3_NAMESPACE}"
        )
    elif qname.localname == "Faktura":
        namespace = qname.namespace or "no namespace"
        message = (
            f"root element Faktura is in {namespace}; FA(3) requires namespace {FA3_NAMESPACE}"
        )
    else:
        message = (
            f"root element is <{excerpt(qname.localname, 100)}>; an FA(3) invoice has root "
            "<Faktura> "
            f"in namespace {FA3_NAMESPACE}"
        )
    return finding("schema", message, line=root.sourceline,
                   path=f"/{excerpt(qname.localname, 100)}")


def _size_problem(facts: InvoiceFacts) -> Finding | None:
    if facts.size > MAX_SIZE and not facts.has_attachments:
        return too_large_without_attachments(facts.size)
    return None


def _schema_problem(root: Any, explain: bool) -> Finding | None:
    if lxml_schema().validate(root):
        return None
    error = first_schema_error(root)
    if error is None:  # cannot happen: the same XSD, the same tree
        return finding("schema", "FA(3) XSD validation failed", line=root.sourceline)
    path = _log_path(root, error.libxml_path)
    where = f"at {path} (line {error.line})" if path else f"at line {error.line}"
    message = f"FA(3) XSD {where}: {_readable(error.message).rstrip('.')}"
    if explain:
        message += _xmlschema_explanation(root)
    return finding("schema", message, line=error.line, path=path)


def _readable(message: str) -> str:
    """Names without the FA(3) namespace; long quoted values, names and value lists cut
    short, the whole at most 2 * EXCERPT_MAX characters."""
    message = _LONG_QUOTED.sub(r"'\1...'", message.replace(_NS_PREFIX, ""))
    message = _LONG_RUN.sub(r"\1...", _LONG_LIST.sub(_shorten_list, message))
    return excerpt(message, 2 * EXCERPT_MAX)


def _shorten_list(match: re.Match[str]) -> str:
    items = match[2].split(", ")
    return f"{match[1]}{', '.join(items[:5])}, ... ({len(items)} values){match[3]}"


def _log_path(root: Any, libxml_path: str | None) -> str | None:
    """libxml2 gives '/*/*[4]/*[4]'; turn it into '/Faktura/Fa/P_6'."""
    if not libxml_path:
        return None
    try:
        found = root.getroottree().xpath(libxml_path)
    except etree.XPathError:
        return None
    if not found or not isinstance(found[0], etree._Element):
        return None
    return element_path(found[0])


def element_path(element: Any) -> str:
    """Local names from the root, with [n] where a name repeats among siblings."""
    steps: list[str] = []
    node = element
    while node is not None:
        name = excerpt(etree.QName(node).localname, 100)
        parent = node.getparent()
        if parent is not None:
            same = list(parent.iterchildren(node.tag))
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


def _xmlschema_explanation(root: Any) -> str:
    try:
        first = next(iter(explainer_schema().iter_errors(root)), None)
    except Exception:  # explanation is best effort; lxml's verdict stands
        return ""
    if first is None:
        return ""
    reason = _readable(first.reason or "").replace("tns:", "")
    return f"; xmlschema: at {first.path}: {reason}" if reason else ""


@lru_cache(maxsize=65_536)  # a billing system repeats its sellers and buyers
def nip_problem(nip: str) -> str | None:
    """Why `nip` fails the NIP checksum, or None when it passes."""
    if len(nip) != 10 or not nip.isascii() or not nip.isdigit():
        return "a NIP is exactly 10 digits"
    total = sum(int(d) * w for d, w in zip(nip, NIP_WEIGHTS, strict=False)) % 11
    if total == 10:
        return "the weighted sum of its first 9 digits is 10 mod 11, which no NIP can have"
    if total != int(nip[9]):
        return f"check digit is {nip[9]} but the weighted sum of the first 9 digits gives {total}"
    return None


def _nip_problem(nips: list[NipField]) -> Finding | None:
    for field in nips:
        why = nip_problem(field.value)
        if why is not None:
            return finding(
                "nip-checksum",
                f"NIP {field.value} at {field.path} (line {field.line}) is invalid: {why}",
                line=field.line,
                path=field.path,
            )
    return None


def _line_of(root: Any, relative_path: str) -> int | None:
    element = root.find(relative_path.replace("{}", _NS_PREFIX))
    return None if element is None else int(element.sourceline)


def _date_problem(facts: InvoiceFacts, today: dt.date, root: Any) -> Finding:
    assert facts.issue_date is not None
    message = (
        f"issue date P_1 {facts.issue_date.isoformat()} is after {today.isoformat()}, "
        "the day KSeF would accept the invoice"
    )
    line = _line_of(root, "{}Fa/{}P_1")
    return finding("issue-date-in-future", message, line=line, path="/Faktura/Fa/P_1")


def _attachment_problem(root: Any) -> Finding:
    line = _line_of(root, "{}Zalacznik")
    message = (
        f"the invoice carries an attachment (Zalacznik, line {line}); attachments are "
        "accepted only in batch sessions of contexts that enabled them"
    )
    return finding("attachments-not-allowed", message, line=line, path="/Faktura/Zalacznik")
