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


def _calls(path: Path, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == name]


def test_every_stage_takes_its_clients_from_the_one_factory() -> None:
    stages = sorted((REPO / "pipeline" / "stages").rglob("*.py"))
    built_here = [p.relative_to(REPO).as_posix() for p in stages if _calls(p, "KsefClients")]
    assert built_here == []  # a stage's own KsefClients(...) would have a limiter of its own
    users = {p.parent.name for p in stages if _calls(p, "stage_ksef_clients")}
    assert users == {"s2_pack", "s3_submit", "s4_upo"}
    factory = _calls(REPO / "pipeline" / "runtime" / "app.py", "KsefClients")
    assert [{k.arg for k in call.keywords} >= {"limiter", "observer"} for call in factory] \
        == [True]


async def test_the_factory_builds_clients_on_the_worker_limiter(monkeypatch) -> None:
    monkeypatch.setenv("KSEF_API_URL", "http://127.0.0.1:9")
    from pipeline.runtime.app import ksef_limiters, stage_ksef_clients

    first, second = stage_ksef_clients(), stage_ksef_clients()
    try:
        shared = ksef_limiters.get(KsefSettings.from_env())
        assert first.public().transport.limiter is shared
        assert second.public().transport.limiter is shared
    finally:
        await first.aclose()
        await second.aclose()
