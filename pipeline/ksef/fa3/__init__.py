"""FA(3) invoices: the stateless KSeF pre-checks (sample invoices: `pipeline.demo.samples`)."""

from .checker import CheckResult, InvoiceChecker, nip_problem
from .facts import INVOICE_KINDS, InvoiceFacts
from .reasons import REASONS, Finding

__all__ = [
    "INVOICE_KINDS", "REASONS", "CheckResult", "Finding", "InvoiceChecker", "InvoiceFacts",
    "nip_problem",
]
