"""One KSeF request limiter for a whole worker: KSeF counts the requests of every stage
together (per context and IP), so the stages' clients must draw from the same windows."""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline.credentials import CredentialStore
from pipeline.ksef_api.link import KsefClients, KsefSettings, WorkerLimiters

REPO = Path(__file__).resolve().parents[3]
NIP = "7010002137"


async def test_clients_of_every_stage_share_the_worker_limiter() -> None:
    limiters = WorkerLimiters()
    settings = KsefSettings(api_url="http://127.0.0.1:9")
    shared = limiters.get(settings)
    assert limiters.get(KsefSettings(api_url="http://127.0.0.1:9")) is shared
    assert limiters.get(KsefSettings(api_url="http://127.0.0.1:9", time_scale=10.0)) \
        is not shared  # a faster clock (the emulator's tests) counts in other windows
    store = CredentialStore(None, None, environ={f"KSEF_TOKEN_{NIP}": "tok"})
    stages = [KsefClients(settings, store=store, limiter=shared) for _ in range(3)]
    try:
        assert all(c.client(NIP).transport.limiter is shared for c in stages)
        assert all(c.public().transport.limiter is shared for c in stages)
        alone = KsefClients(settings, store=store)  # a command's own clients
        assert alone.client(NIP).transport.limiter is not shared
        await alone.aclose()
    finally:
        for clients in stages:
            await clients.aclose()


def test_every_stage_builds_its_clients_on_the_worker_limiter() -> None:
    calls = []
    for path in sorted((REPO / "pipeline" / "stages").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "KsefClients"):
                calls.append((path.relative_to(REPO).as_posix(),
                              {k.arg for k in node.keywords}))
    assert len(calls) >= 3  # pack, submit, upo
    assert [p for p, keywords in calls if "limiter" not in keywords] == []
