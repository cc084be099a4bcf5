"""A minimal KSeF client written straight from the documented protocol, for the
emulator's tests, its benchmark and smoke checks.

Independent of `pipeline.ksef_api` on purpose, so a mistake shared by the production
client and the emulator cannot hide. Batch packages are built in memory: small and
medium packages only.
"""

from __future__ import annotations

import asyncio
import base64
import io
import tarfile
import time
import zipfile
from dataclasses import dataclass
from typing import Any

import aiohttp

from pipeline.ksef.crypto import SessionKey, encrypt_cbc, public_key_from_certificate, wrap_key
from pipeline.ksef.numbers import sha256_b64

FORM = {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"}


class HttpFailure(AssertionError):
    def __init__(self, status: int, body: Any, headers: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    status: int
    content_type: str
    body: Any


@dataclass
class Online:
    reference: str
    key: SessionKey


def build_package(docs: list[tuple[str, bytes]], compression: str = "Zip") -> bytes:
    buffer = io.BytesIO()
    if compression == "Zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, doc in docs:
                archive.writestr(name, doc)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, doc in docs:
                info = tarfile.TarInfo(name)
                info.size = len(doc)
                tar.addfile(info, io.BytesIO(doc))
    return buffer.getvalue()


def split_encrypt(package: bytes, part_size: int, key: SessionKey) -> list[bytes]:
    return [encrypt_cbc(key, package[i:i + part_size])
            for i in range(0, len(package), part_size)]


class ReferenceClient:
    def __init__(self, base_url: str, http: aiohttp.ClientSession,
                 admin_token: str | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.admin_token = admin_token  # bearer token of the emulator's /_emulator calls
        self.api = self.base + "/v2"
        self.http = http
        self._certs: list[dict[str, Any]] | None = None
        self.exchanges: list[Exchange] = []  # every API answer, for contract checks

    async def call(self, method: str, path: str, *, token: str | None = None,
                   json: Any = None, headers: dict[str, str] | None = None,
                   expect: int | tuple[int, ...] = (200, 201, 202, 204)) -> Any:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        url = path if path.startswith("http") else self.api + path
        async with self.http.request(method, url, json=json, headers=hdrs) as resp:
            text = await resp.text()
            ctype = resp.headers.get("Content-Type", "")
            body: Any = await resp.json(content_type=None) if "json" in ctype and text else text
            self.exchanges.append(Exchange(method, resp.url.path, resp.status, ctype, body))
            wanted = expect if isinstance(expect, tuple) else (expect,)
            if resp.status not in wanted:
                raise HttpFailure(resp.status, body, resp.headers)
            return body

    async def admin(self, action: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}
        return await self.call("POST", f"{self.base}/_emulator/{action}", json=body or {},
                               headers=headers)

    async def certificate(self, usage: str) -> str:
        if self._certs is None:
            self._certs = await self.call("GET", "/security/public-key-certificates")
        return str(next(c["certificate"] for c in self._certs if usage in c["usage"]))

    async def start_auth(self, nip: str, ksef_token: str, *, stamp_shift: int = 0,
                         ) -> tuple[str, Any]:
        """Challenge + `POST /auth/ksef-token`; returns (operation token, auth status)."""
        challenge = await self.call("POST", "/auth/challenge")
        cert = public_key_from_certificate(await self.certificate("KsefTokenEncryption"))
        secret = f"{ksef_token}|{challenge['timestampMs'] + stamp_shift}".encode()
        init = await self.call("POST", "/auth/ksef-token", json={
            "challenge": challenge["challenge"],
            "contextIdentifier": {"type": "Nip", "value": nip},
            "encryptedToken": base64.b64encode(wrap_key(cert, secret)).decode()})
        operation = init["authenticationToken"]["token"]
        status = await self.call("GET", f"/auth/{init['referenceNumber']}", token=operation)
        return str(operation), status

    async def authenticate(self, nip: str, token: str | None = None) -> str:
        """A KSeF token (issued by the emulator when not given) -> access token."""
        ksef_token = token or (await self.admin("ksef-tokens", {"nip": nip}))["token"]
        operation, status = await self.start_auth(nip, ksef_token)
        assert status["status"]["code"] == 200, status
        tokens = await self.call("POST", "/auth/token/redeem", token=operation)
        return str(tokens["accessToken"]["token"])

    async def encryption(self, key: SessionKey) -> dict[str, str]:
        cert = public_key_from_certificate(await self.certificate("SymmetricKeyEncryption"))
        return {"encryptedSymmetricKey": base64.b64encode(wrap_key(cert, key.key)).decode(),
                "initializationVector": base64.b64encode(key.iv).decode()}

    async def open_online(self, token: str) -> Online:
        key = SessionKey.generate()
        body = {"formCode": FORM, "encryption": await self.encryption(key)}
        opened = await self.call("POST", "/sessions/online", token=token, json=body, expect=201)
        return Online(opened["referenceNumber"], key)

    async def send(self, token: str, session: Online, xml: bytes, *, offline: bool = False,
                   corrected: str | None = None, expect: int = 202) -> Any:
        encrypted = encrypt_cbc(session.key, xml)
        body = {"invoiceHash": sha256_b64(xml), "invoiceSize": len(xml),
                "encryptedInvoiceHash": sha256_b64(encrypted),
                "encryptedInvoiceSize": len(encrypted),
                "encryptedInvoiceContent": base64.b64encode(encrypted).decode(),
                "offlineMode": offline}
        if corrected:
            body["hashOfCorrectedInvoice"] = corrected
        answer = await self.call("POST", f"/sessions/online/{session.reference}/invoices",
                                 token=token, json=body, expect=expect)
        return answer["referenceNumber"] if expect == 202 else answer

    async def close_online(self, token: str, session: Online) -> None:
        await self.call("POST", f"/sessions/online/{session.reference}/close", token=token,
                        expect=204)

    async def wait_session(self, token: str, reference: str, timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            status = await self.call("GET", f"/sessions/{reference}", token=token)
            if status["status"]["code"] not in (100, 150, 170):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"session {reference} still {status['status']}")
            await asyncio.sleep(0.05)

    async def invoices(self, token: str, reference: str, failed: bool = False,
                       page: int = 1000) -> list[dict[str, Any]]:
        path = f"/sessions/{reference}/invoices" + ("/failed" if failed else "")
        out: list[dict[str, Any]] = []
        cont: str | None = None
        while True:
            headers = {"x-continuation-token": cont} if cont else None
            body = await self.call("GET", f"{path}?pageSize={page}", token=token,
                                   headers=headers)
            out.extend(body["invoices"])
            cont = body.get("continuationToken")
            if not cont:
                return out

    async def open_batch(self, token: str, package: bytes, parts: list[bytes],
                         key: SessionKey, *, compression: str = "Zip",
                         declared: list[tuple[int, str]] | None = None,
                         offline: bool = False, expect: int = 201) -> Any:
        sizes = declared or [(len(p), sha256_b64(p)) for p in parts]
        body = {"formCode": FORM, "offlineMode": offline,
                "batchFile": {"fileSize": len(package), "fileHash": sha256_b64(package),
                              "compressionType": compression,
                              "fileParts": [{"ordinalNumber": i, "fileSize": size,
                                             "fileHash": sha} for i, (size, sha) in
                                            enumerate(sizes, 1)]},
                "encryption": await self.encryption(key)}
        return await self.call("POST", "/sessions/batch", token=token, json=body, expect=expect)

    async def upload(self, request: dict[str, Any], data: bytes, expect: int = 201) -> None:
        async with self.http.request(request["method"], request["url"], data=data,
                                     headers=request["headers"]) as resp:
            assert resp.status == expect, (resp.status, await resp.text())

    async def batch(self, token: str, docs: list[tuple[str, bytes]], *, part_size: int,
                    compression: str = "Zip", tamper: int | None = None,
                    wait: bool = True) -> tuple[str, Any]:
        """Send a whole batch; `tamper` flips a byte of that part after declaring it."""
        key = SessionKey.generate()
        package = build_package(docs, compression)
        parts = split_encrypt(package, part_size, key)
        opened = await self.open_batch(token, package, parts, key, compression=compression)
        uploads = [bytearray(p) for p in parts]
        if tamper is not None:
            uploads[tamper - 1][len(uploads[tamper - 1]) // 2] ^= 0xFF
        await asyncio.gather(*(self.upload(req, bytes(uploads[req["ordinalNumber"] - 1]))
                               for req in opened["partUploadRequests"]))
        reference = opened["referenceNumber"]
        await self.call("POST", f"/sessions/batch/{reference}/close", token=token, expect=204)
        status = await self.wait_session(token, reference) if wait else None
        return reference, status
