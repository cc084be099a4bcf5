"""Every setting the code reads from the environment is documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV_READ = re.compile(
    r'(?:environ\.get\(|environ\[|getenv\(|_choice\(|_number\(|_count\(|_float\(|_int\()\s*"((?:KSEF|KAFKA)_[A-Z0-9_]+)"')


def _settings_read() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted([*REPO.glob("pipeline/**/*.py"), *REPO.glob("topics/**/*.py")]):
        for name in ENV_READ.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, str(path.relative_to(REPO)))
    return found


def test_the_scan_finds_the_settings_it_is_meant_to() -> None:
    found = _settings_read()
    assert {"KSEF_DEDUPE_STORE", "KSEF_FETCH_MAX_WAIT_MS", "KAFKA_BOOTSTRAP_SERVERS",
            "KSEF_PACK_LINGER_S"} <= set(found)


def test_every_setting_read_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = {name: where for name, where in _settings_read().items()
               if f"`{name}`" not in readme and f"`{name} " not in readme
               and f"{name}`" not in readme}
    assert not missing, f"settings read but not documented in README.md: {missing}"
