"""Pure KSeF domain: rules, numbers, formats and crypto.

No Kafka, no Faust, no network, no KSeF SDK, no `topics`, nothing else of the project, and
no environment: `tests/unit/test_import_rules.py` checks it on the source. Beside it, the
adapters: `pipeline.ksef_api` (the HTTP client), `pipeline.runtime.keyring_file` (where the keyring
comes from), `pipeline.credentials` (credential files), `pipeline.demo` (sample invoices).

File I/O left here, on purpose: a batch package is built and encrypted on disk, streamed
(`package`: the spool directory the caller names; packages reach gigabytes, never held in
memory), and the FA(3) checks read the XSDs shipped in the package (`fa3.schema`).
"""
