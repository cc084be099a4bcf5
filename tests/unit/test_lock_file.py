"""The hashed lock files agree with pyproject.toml's pins (issue 16 point 7, supply chain).

requirements.lock (runtime + dev extras + build requirements) is what ops/lib/venv.sh
installs with --require-hashes; requirements-runtime.lock (runtime + build requirements) is
what the Dockerfile installs; ops/lock-tools.lock pins pip and pip-tools. All are written by
ops/lock; a pin changed in pyproject.toml without re-running ops/lock fails here.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
FULL_LOCK = REPO / "requirements.lock"
RUNTIME_LOCK = REPO / "requirements-runtime.lock"
TOOLS_LOCK = REPO / "ops" / "lock-tools.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s*;\s*(.+?))?\s*\\?$")
HASH = re.compile(r"^\s+--hash=sha256:([0-9a-f]{64})\s*\\?$")


@dataclass
class Locked:
    version: str
    hashes: set[str] = field(default_factory=set)
    marker: str | None = None


def parse_lock(path: Path) -> dict[str, Locked]:
    """{canonical name: Locked} from a pip-compile --generate-hashes file; fails on any line
    that is neither an exact pin, a hash, a comment nor blank (an option such as an index URL
    or a direct URL requirement would bypass the pins)."""
    locked: dict[str, Locked] = {}
    current: Locked | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            current = None  # hashes come right after their pin
            continue
        if pin := PIN.match(line):
            name = canonicalize_name(pin.group(1))
            assert name not in locked, f"{path.name}:{number}: {name} locked twice"
            current = locked[name] = Locked(pin.group(2), marker=pin.group(3))
        elif (digest := HASH.match(line)) and current is not None:
            current.hashes.add(digest.group(1))
        else:
            raise AssertionError(f"{path.name}:{number}: unexpected line {line!r}")
    return locked


def pyproject() -> dict:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def runtime_requirements() -> list[Requirement]:
    return [Requirement(r) for r in pyproject()["project"]["dependencies"]]


def dev_requirements() -> list[Requirement]:
    return [Requirement(r) for r in pyproject()["project"]["optional-dependencies"]["dev"]]


def build_requirements() -> list[Requirement]:
    return [Requirement(r) for r in pyproject()["build-system"]["requires"]]


@pytest.fixture(scope="module")
def full() -> dict[str, Locked]:
    return parse_lock(FULL_LOCK)


@pytest.fixture(scope="module")
def runtime() -> dict[str, Locked]:
    return parse_lock(RUNTIME_LOCK)


def test_the_parser_reads_pins_hashes_and_refuses_options(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    lock.write_text("# header\nsix==1.17.0 \\\n    --hash=sha256:" + "a" * 64 + " \\\n"
                    "    --hash=sha256:" + "b" * 64 + "\n    # via x\n")
    assert parse_lock(lock) == {"six": Locked("1.17.0", {"a" * 64, "b" * 64})}
    for bad in ("--index-url http://mirror.invalid/simple\n", "six>=1.0\n",
                "six @ http://mirror.invalid/six.whl\n", "-e .\n"):
        lock.write_text(bad)
        with pytest.raises(AssertionError, match="unexpected line"):
            parse_lock(lock)


def test_every_direct_dependency_is_pinned_exactly() -> None:
    for req in runtime_requirements() + dev_requirements():
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", \
            f"pyproject.toml: {req} is not pinned with =="


@pytest.mark.parametrize("lock_name", ["requirements.lock", "requirements-runtime.lock"])
def test_every_direct_pin_equals_its_locked_version(lock_name: str) -> None:
    locked = parse_lock(REPO / lock_name)
    reqs = runtime_requirements() + build_requirements()
    if lock_name == "requirements.lock":
        reqs += dev_requirements()
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in locked, f"{lock_name}: {req} is not locked; run ops/lock"
        version = locked[name].version
        assert req.specifier.contains(Version(version), prereleases=True), (
            f"{lock_name} locks {name}=={version} but pyproject.toml asks {req}; run ops/lock")


@pytest.mark.parametrize("lock", [FULL_LOCK, RUNTIME_LOCK, TOOLS_LOCK], ids=lambda p: p.name)
def test_every_locked_requirement_has_a_hash(lock: Path) -> None:
    locked = parse_lock(lock)
    assert len(locked) > 3
    unhashed = sorted(name for name, entry in locked.items() if not entry.hashes)
    assert not unhashed, f"{lock.name}: no --hash for {unhashed}"


def test_the_runtime_lock_is_the_full_lock_less_the_dev_tools(
        full: dict[str, Locked], runtime: dict[str, Locked]) -> None:
    for name, entry in runtime.items():
        assert name in full, f"requirements-runtime.lock has {name}, requirements.lock not"
        assert (entry.version, entry.hashes) == (full[name].version, full[name].hashes), \
            f"{name} differs between the two lock files; run ops/lock"
    dev_only = {canonicalize_name(r.name) for r in dev_requirements()} - {
        canonicalize_name(r.name) for r in runtime_requirements()}
    assert not dev_only & set(runtime), "dev tools in the runtime lock (the worker image)"


def test_the_lock_pins_the_build_backend_so_the_project_installs_without_isolation(
        full: dict[str, Locked]) -> None:
    # ops/lib/venv.sh installs the project with --no-build-isolation: setuptools and wheel
    # must come from the (hashed) lock, not from an unhashed download.
    assert {"setuptools", "wheel"} <= set(full)


def test_the_pinned_pip_is_hashed() -> None:
    tools = parse_lock(TOOLS_LOCK)
    assert tools["pip"].hashes and tools["pip-tools"].hashes
