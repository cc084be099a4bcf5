"""Start the emulator as a child process and hand out KSeF tokens (demo, tests, bench)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.bearer import write_token_file
from pipeline.stopping import stop_group

ADMIN_TOKEN_FILE = "admin-token"


@dataclass
class EmulatorProcess:
    proc: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path
    admin_token: str | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return self.base_url + "/v2"

    @property
    def admin_token_file(self) -> Path:
        """The token file the emulator was started with (KSEF_EMULATOR_ADMIN_TOKEN_FILE for
        `emulator-ctl`)."""
        return self.data_dir / ADMIN_TOKEN_FILE

    def admin(self, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        headers = {"Content-Type": "application/json"}
        if self.admin_token:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        req = urllib.request.Request(
            f"{self.base_url}/_emulator/{path}", method="POST",
            data=json.dumps(body or {}).encode(), headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def token(self, nip: str) -> str:
        return str(self.admin("ksef-tokens", {"nip": nip})["token"])

    def write_tokens(self, nips: list[str], path: Path) -> Path:
        path.write_text(json.dumps({nip: self.token(nip) for nip in nips}))
        path.chmod(0o600)
        return path

    def write_credentials(self, nips: list[str], path: Path,
                          certificates: dict[str, str] | None = None) -> Path:
        """A credentials file (0600) for `nips`: a self-signed certificate with the key
        type given in `certificates` (`rsa` or `ec`, accepted as KSeF TEST accepts
        them) for those named there, a KSeF token from this emulator for the others."""
        from pipeline.emulator.selfsigned import mint

        certificates = certificates or {}
        contexts: dict[str, dict[str, str]] = {}
        for nip in nips:
            if nip in certificates:
                cert, key = mint(nip, certificates[nip]).write(path.parent / "certs", nip)
                contexts[nip] = {"certificate": str(cert.relative_to(path.parent)),
                                 "private_key": str(key.relative_to(path.parent))}
            else:
                contexts[nip] = {"token": self.token(nip)}
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"contexts": contexts}, handle, indent=2)
        return path

    def stop(self) -> int | None:
        """SIGTERM its process group (SIGKILL after 30 s); its exit code."""
        return stop_group(self.proc, 30)


def start_emulator(data_dir: Path, *args: str, log_path: Path | None = None,
                   cwd: Path | None = None, env: dict[str, str] | None = None,
                   timeout_s: float = 60.0) -> EmulatorProcess:
    """`ksef-pipeline emulator` on `data_dir`, with a new admin token in
    `data_dir/admin-token` (0600) that `.admin()` sends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / "emulator.json"
    marker.unlink(missing_ok=True)
    token = write_token_file(data_dir / ADMIN_TOKEN_FILE, "launcher")
    log = (log_path or data_dir / "emulator.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "emulator", "--data-dir",
                             str(data_dir), "--admin-token-file", str(data_dir / ADMIN_TOKEN_FILE),
                             *args], stdout=log, stderr=subprocess.STDOUT,
                            cwd=cwd, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited with {proc.returncode}; see {log.name}")
        if time.monotonic() > deadline:
            stop_group(proc, 5)
            raise RuntimeError(f"emulator not ready after {timeout_s:.0f} s; see {log.name}")
        time.sleep(0.1)
    base = str(json.loads(marker.read_text())["baseUrl"])
    return EmulatorProcess(proc, base, data_dir, token)
