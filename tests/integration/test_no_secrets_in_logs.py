"""Acceptance (issue 16): a full demo run — its own broker, the emulator, a worker, a few
invoices to the end — leaves no configured secret in any log: worker logs, the emulator
log, the broker logs and the demo's own output are searched for every secret the run was
given (keyring keys, KSeF tokens, the emulator admin token, an operator token, the
certificate contexts' private keys)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.bearer import write_token_file
from tests.kafka_harness import REPO

INVOICES = 24


def _secrets(var: Path, operator_token: str) -> dict[str, str]:
    """Every secret value the run configured, by where it came from."""
    found: dict[str, str] = {"operator token": operator_token}
    keyring = json.loads((var / "keyring.json").read_text())
    found |= {f"keyring key {k}": v for k, v in keyring["keys"].items()}
    credentials = json.loads((var / "credentials.json").read_text())
    for nip, entry in credentials["contexts"].items():
        if "token" in entry:
            found[f"KSeF token {nip}"] = entry["token"]
        if "private_key" in entry:
            pem = (var / entry["private_key"]).read_text()
            body = [line for line in pem.splitlines() if line and "-----" not in line]
            for i, line in enumerate(body):
                if len(line) >= 40:  # any full line of key material
                    found[f"private key {nip} line {i}"] = line
    for path in (var / "emulator").glob("admin-token*"):
        for line in path.read_text().splitlines():
            if line.strip():
                found[f"emulator admin token {path.name}"] = line.rpartition(":")[2].strip()
    return found


def test_a_demo_run_logs_no_secret(tmp_path: Path) -> None:
    var = tmp_path / "demo"
    var.mkdir()
    operator_token = write_token_file(tmp_path / "operator-token", "ops")
    env = {**os.environ, "KSEF_OPERATOR_TOKEN_FILE": str(tmp_path / "operator-token"),
           "PYTHONPATH": str(REPO), "KAFKA_HEAP": "256m", "KSEF_LOG_LEVEL": "info"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the demo starts its own broker
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.demo", "--invoices", str(INVOICES), "--sellers", "3",
         "--workers", "1", "--linger", "1", "--exit-when-done", "--timeout", "100",
         "--var", str(var)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    (var / "demo-output.log").write_text(out.stdout + out.stderr)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert f"submitted={INVOICES}" in out.stdout

    secrets = _secrets(var, operator_token)
    kinds = ("keyring key", "KSeF token", "emulator admin token", "operator token",
             "private key")
    assert all(any(n.startswith(k) for n in secrets) for k in kinds), sorted(secrets)
    logs = [p for p in var.rglob("*") if p.is_file() and (
        p.suffix in (".log", ".out") or p.name in ("server.log", "controller.log"))]
    assert any(p.name.startswith("worker-") for p in logs), logs
    assert any(p.name == "emulator.log" for p in logs), logs
    leaks = []
    for path in logs:
        text = path.read_text(encoding="utf-8", errors="replace")
        leaks += [f"{name} in {path.relative_to(var)}" for name, value in secrets.items()
                  if value in text]
    assert not leaks, leaks
