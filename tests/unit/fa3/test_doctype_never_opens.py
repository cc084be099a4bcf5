"""A DOCTYPE is refused from the bytes, before libxml2 parses: with `load_dtd=False` it
still opened the file an external subset names (a FIFO or /dev/stdin froze a worker,
and the reason told whether a path exists)."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

import pytest

from pipeline.demo.samples import make_invoice, seller_nips
from pipeline.ksef.fa3 import InvoiceChecker
from pipeline.ksef.fa3.precheck import doctype_problem

TODAY = dt.date(2026, 12, 4)
(SELLER,) = seller_nips(1, seed=16)


def _with_doctype(subset: bytes) -> bytes:
    xml = make_invoice(seller_nip=SELLER, number="DT/1", issue_date=TODAY, seed=1)
    end = xml.index(b"?>") + 2
    return xml[:end] + b"\n<!-- a comment -->\n<!DOCTYPE Faktura " + subset + b">" + xml[end:]


@pytest.fixture(scope="module")
def checker() -> InvoiceChecker:
    return InvoiceChecker()


# A subset opened would block for good; a check answers in milliseconds, but a loaded
# 2-core CI machine can stretch that past a second (the first check of the module too)
ANSWER_S = 30.0


def _check_within(checker: InvoiceChecker, data: bytes, seconds: float) -> str | None:
    result: list[str | None] = []

    def run() -> None:
        got = checker.check(data, today=TODAY)
        result.append(got.finding.reason if got.finding else None)

    worker = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(seconds)
    assert result, f"the check did not answer within {seconds} s (it opened the subset?)"
    assert time.monotonic() - started < seconds
    return result[0]


def test_a_fifo_named_by_the_doctype_is_never_opened(checker: InvoiceChecker,
                                                     tmp_path: Path) -> None:
    fifo = tmp_path / "subset.dtd"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    data = _with_doctype(b'SYSTEM "' + str(fifo).encode() + b'"')
    assert _check_within(checker, data, ANSWER_S) == "doctype"


def test_dev_stdin_and_existing_or_missing_paths_answer_alike(checker: InvoiceChecker) -> None:
    for path in (b"/dev/stdin", b"/etc/passwd", b"/no/such/file.dtd"):
        data = _with_doctype(b'SYSTEM "' + path + b'"')
        assert _check_within(checker, data, ANSWER_S) == "doctype"


def test_the_prolog_walk() -> None:
    assert doctype_problem(b'<?xml version="1.0"?><a/>') is None
    assert doctype_problem(b"<!-- <!DOCTYPE x> only text in a comment --><a/>") is None
    assert doctype_problem(b"<a><![CDATA[<!DOCTYPE x>]]></a>") is None  # not in a prolog
    found = doctype_problem(b'<?xml version="1.0"?>\n<?pi x?>\n<!DOCTYPE a []><a/>')
    assert found is not None and found.reason == "doctype" and found.line == 3
