"""The headers and bounds of a `ksef.invoices.submitted` record: what billing systems
write (`InvoiceProducer`), what the validate stage checks, what a replay re-sends.

Declared here, beside the records, because they are contract: a producer in another
language needs exactly these names and limits (`schemas/` mirrors them).
"""

from __future__ import annotations

HEADER_SELLER = "ksef-seller-nip"
HEADER_SOURCE = "ksef-source"
HEADER_ATTACHMENTS = "ksef-attachments"
HEADER_CORRECTION = "ksef-technical-correction-of"
KNOWN_HEADERS = frozenset({HEADER_SELLER, HEADER_SOURCE, HEADER_ATTACHMENTS, HEADER_CORRECTION})

# On a `ksef.batches.packed` record: its batch id (UTF-8), so a reader can tell whose
# batch it is without parsing a manifest of up to 10,000 invoices (records written
# before it have none).
HEADER_BATCH_ID = "ksef-batch-id"

# Input bounds: checked before anything is parsed or produced, so no input field can make
# a record (sealed or rejection) that a topic refuses. The invoice's own limit is KSeF's
# (3,000,000 bytes, `too-large`), checked by the FA(3) pre-check before parsing.
KEY_MAX_BYTES = 256  # the invoice id, UTF-8
SOURCE_MAX_CHARS = 256  # ksef-source
HEADERS_MAX_BYTES = 16 * 1024  # every header of the record, names and values
HEADERS_MAX_COUNT = 64
