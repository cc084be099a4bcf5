"""Local KSeF API v2 + Latarnia emulator (aiohttp), for the demo, tests and outage drills.

Run it with ``ksef-pipeline emulator --data-dir DIR --admin-token-file FILE [--port N]
[--limits test]``; it prints
its API base (``http://127.0.0.1:PORT/v2``) and writes it to ``DIR/emulator.json``. In
code: ``running = await RunningEmulator.start(EmulatorConfig(data_dir=...))``.

It behaves like KSeF where a client can tell: the same endpoints and JSON shapes as the
official OpenAPI, real crypto (RSA-OAEP key wrapping, AES-256-CBC invoices and parts),
asynchronous processing with KSeF's status codes, every FA(3) check, duplicates (440),
KSeF numbers with a valid CRC-8, UPOs valid against ``upo-v4-3.xsd``, rate limits with
``Retry-After``, and persistence in SQLite under the data directory.

Getting a KSeF token for a NIP (the real test environment issues them through
``POST /v2/tokens`` after a certificate login, which the emulator has no use for):

    POST /_emulator/ksef-tokens   {"nip": "5265877635"}
    -> 201 {"referenceNumber": "...", "token": "...|nip-5265877635|..."}

or ``ksef-pipeline emulator-ctl --url URL token 5265877635``. Then authenticate as with
the real API: ``POST /v2/auth/challenge``, encrypt ``token|timestampMs`` with the
certificate of usage ``KsefTokenEncryption`` from ``GET
/v2/security/public-key-certificates``, ``POST /v2/auth/ksef-token`` with context
``{"type": "Nip", "value": NIP}``, poll ``GET /v2/auth/{ref}``, ``POST
/v2/auth/token/redeem``. The context may send invoices whose seller (Podmiot1) or buyer
(Podmiot2, self-billing) is its own NIP; others get status 410.

Operator controls (``/_emulator/...``, see ``emulator-ctl``): ``down`` (503 or reset
connections), ``up``, ``latency``, ``fail-next`` (force an invoice or session status),
``lose-response`` (act on a request, then reset the connection instead of answering),
Latarnia ``announce``/``end``/``latarnia-down``/``latarnia-up``, ``reset``, ``sweep``.
Every ``/_emulator/...`` request needs ``Authorization: Bearer <admin token>`` (the tokens
of ``--admin-token-file`` / ``EmulatorConfig.admin_tokens``; 401 otherwise) and a POST
``Content-Type: application/json`` (415); with no token configured they answer 403 unless
the emulator runs with ``--insecure-admin``. ``pipeline.emulator.process.start_emulator`` makes a
token in ``DIR/admin-token`` (0600) and sends it.
Latarnia itself (public, read-only): ``GET /latarnia/status`` and ``GET /latarnia/messages``.

Certificate login: ``POST /v2/auth/xades-signature`` with a XAdES-signed
``AuthTokenRequest``, verified by ``xades_verify`` (signature faults: 400 with 9105 and
friends) and ``cert_subject`` (certificate faults 460, no permission 415, on ``GET
/v2/auth/{ref}``). Self-signed certificates are accepted as in KSeF TEST
(``emulator-ctl mint-cert NIP``). KSeF certificates: ``/v2/certificates/*`` enrollment from
a CSR, issued by the emulator CA (``ca``), query, retrieve, revoke. Grants:
``/v2/testdata/permissions`` or ``emulator-ctl grant``; operator revocation and the
certificate clock: ``emulator-ctl revoke-cert`` and ``clock``.

Not emulated: enveloping XAdES, XPath/filter2 transforms and SHA-1 signature methods
(KSeF accepts them), OCSP/CRL, PESEL persons' permissions beyond grants, permission types
(any grant lets a subject in), InternalId/NipVatUe contexts, invoice queries and exports,
UPO signatures (UPOs are unsigned), FA(2)/PEF forms.
"""

from pipeline.emulator.config import EmulatorConfig
from pipeline.emulator.server import RunningEmulator, create_app, serve

__all__ = ["EmulatorConfig", "RunningEmulator", "create_app", "serve"]
