"""Per-invoice checks, run off the event loop in a pool of worker processes.

The FA(3) checks themselves are `pipeline.ksef.fa3.InvoiceChecker`; this module adds
the one check that needs the session (the context may issue for this seller) and
turns the result into a small picklable `Verdict`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

from pipeline.ksef.fa3 import InvoiceChecker

OK = 200
PERMISSIONS = 410

_checker: InvoiceChecker | None = None


@dataclass(frozen=True)
class Verdict:
    code: int  # 200 passes every stateless check, else KSeF's invoice status code
    message: str | None
    seller_nip: str | None
    buyer_nip: str | None
    invoice_number: str | None
    kind: str | None
    issue_date: dt.date | None
    sha256_b64: str
    size: int


@dataclass(frozen=True)
class CheckItem:
    data: bytes
    today: dt.date  # Polish day of acceptance (invoicingDate)
    context_nip: str
    attachments_allowed: bool


def _get_checker() -> InvoiceChecker:
    global _checker
    if _checker is None:
        _checker = InvoiceChecker()
        _checker.warm_up()
    return _checker


def _warm_worker() -> None:
    _get_checker()


def check_one(item: CheckItem, verify_nip_checksums: bool = True) -> Verdict:
    result = _get_checker().check(item.data, today=item.today,
                                  attachments_allowed=item.attachments_allowed,
                                  verify_nip_checksums=verify_nip_checksums)
    facts = result.facts
    code, message = OK, None
    if result.finding is not None:
        code, message = result.finding.code, result.finding.message
    elif item.context_nip not in (facts.seller_nip, facts.buyer_nip):
        code = PERMISSIONS
        message = (f"the authenticated context {item.context_nip} may not issue invoices of "
                   f"seller {facts.seller_nip} (Podmiot1/NIP)")
    return Verdict(code, message, facts.seller_nip, facts.buyer_nip, facts.invoice_number,
                   facts.kind, facts.issue_date, facts.sha256_b64, facts.size)


def check_many(items: Sequence[CheckItem], verify_nip_checksums: bool = True) -> list[Verdict]:
    return [check_one(item, verify_nip_checksums) for item in items]


class ValidationPool:
    """Runs `check_many` in worker processes (`workers` > 0) or in one thread (0)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: Executor
        if workers > 0:
            self._executor = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm_worker)
        else:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="emulator-check")

    async def warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        count = max(1, self.workers)
        await asyncio.gather(*(loop.run_in_executor(self._executor, _warm_worker)
                               for _ in range(count)))

    async def check(self, items: Sequence[CheckItem], verify_nip_checksums: bool = True,
                    ) -> list[Verdict]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, check_many, list(items),
                                          verify_nip_checksums)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
