"""Which code may import what, and who may touch the environment, read from the source.

Every module is parsed with `ast`, never imported, so a rule holds for code no test runs
(a branch, a `TYPE_CHECKING` block, a function-level import) and checking costs no
start-up. A rule names the code it covers (`scope`, paths from the repository root: a
directory covers everything below it, minus `exempt`), the modules that code must not
import (`forbidden`, each covering its submodules, minus `allowed`), and whether that code
may read or change the process environment.

To add a rule, add a `Rule` to RULES.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

KAFKA_CLIENTS = ("aiokafka", "confluent_kafka", "kafka")
STREAM_FRAMEWORKS = ("faust", "mode")
HTTP_CLIENTS = ("aiohttp", "httpx", "requests", "urllib.request", "http.client", "socket", "ssl")
KSEF_SDK = ("ksef_client",)
PROCESSES = ("subprocess",)

# What builds a Kafka client (or a Faust app, which builds its own).
CLIENT_CLASSES = ("confluent_kafka.Producer", "confluent_kafka.Consumer",
                  "confluent_kafka.admin.AdminClient", "confluent_kafka.cimpl",
                  "aiokafka.AIOKafkaConsumer", "aiokafka.AIOKafkaProducer",
                  "aiokafka.consumer", "aiokafka.producer", "faust.App")
# The stage packages, in flow order.
STAGE_PACKAGES = ("s1_validate_seal", "s2_pack", "s3_submit", "s4_upo")

# Names of the `os` module that read or change the environment.
ENVIRONMENT_NAMES = frozenset({"environ", "environb", "getenv", "getenvb", "putenv",
                               "unsetenv"})


@dataclass(frozen=True)
class Rule:
    name: str
    scope: tuple[str, ...]
    forbidden: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()
    environment: bool = True  # False: no os.environ / os.getenv / putenv... in scope

    def covers(self, path: str) -> bool:
        return (any(_under(path, s) for s in self.scope)
                and not any(_under(path, e) for e in self.exempt))

    def refuses(self, module: str) -> bool:
        return (any(_within(module, f) for f in self.forbidden)
                and not any(_within(module, a) for a in self.allowed))


RULES: tuple[Rule, ...] = (
    Rule(
        "pipeline/ksef is the pure KSeF domain: no Kafka, Faust, HTTP, KSeF SDK, topics, "
        "nor any other part of the project (the API client is pipeline/ksef_api)",
        scope=("pipeline/ksef",),
        forbidden=(*KAFKA_CLIENTS, *STREAM_FRAMEWORKS, *HTTP_CLIENTS, *KSEF_SDK, *PROCESSES,
                   "topics", "pipeline"),
        allowed=("pipeline.ksef",),
        environment=False,
    ),
    Rule(
        "topics is the contract every stage and outside producer shares: no Kafka client, "
        "Faust, HTTP, KSeF SDK, nor any part of the pipeline",
        scope=("topics",),
        forbidden=(*KAFKA_CLIENTS, *STREAM_FRAMEWORKS, *HTTP_CLIENTS, *KSEF_SDK, *PROCESSES,
                   "pipeline"),
    ),
    Rule(
        "the metric families and the readings are plain code over live state: no Kafka "
        "client, Faust, HTTP or environment (only the /metrics page touches the web)",
        scope=("pipeline/metrics",),
        exempt=("pipeline/metrics/page.py",),
        forbidden=(*KAFKA_CLIENTS, *STREAM_FRAMEWORKS, *HTTP_CLIENTS, *PROCESSES,
                   "pipeline.runtime.app", "pipeline.stages", "pipeline.modes"),
        environment=False,
    ),
    Rule(
        "Kafka clients are built in one place, pipeline/runtime (the benchmarks measure "
        "raw clients on purpose)",
        scope=("pipeline", "topics"),
        exempt=("pipeline/runtime", "pipeline/bench"),
        forbidden=CLIENT_CLASSES,
    ),
    Rule(
        "only pipeline/runtime/settings.py reads the environment: stages, modes, the runtime, "
        "credentials, the KSeF API client and the metrics take its settings objects",
        scope=("pipeline/stages", "pipeline/modes", "pipeline/runtime", "pipeline/credentials",
               "pipeline/ksef_api", "pipeline/metrics"),
        exempt=("pipeline/runtime/settings.py",),
        environment=False,
    ),
    *(Rule(f"stage package {stage} meets the other stages only through topics: it "
           "imports none of them",
           scope=(f"pipeline/stages/{stage}",),
           forbidden=tuple(f"pipeline.stages.{other}" for other in STAGE_PACKAGES
                           if other != stage))
      for stage in STAGE_PACKAGES),
)


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def _within(module: str, package: str) -> bool:
    """`module` is `package` or one of its submodules (`pipeline.ksef_api` is not within
    `pipeline.ksef`)."""
    return module == package or module.startswith(package + ".")


def module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything `tree` imports. `from a.b import c` gives
    `a.b.c` (c may be a submodule, and a name of a.b is still a.b's); relative imports
    are resolved against `module`; `importlib.import_module` and `__import__` of a
    literal string count too."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = (func.attr if isinstance(func, ast.Attribute)
                      else func.id if isinstance(func, ast.Name) else "")
            first = node.args[0]
            if (called in ("import_module", "__import__") and isinstance(first, ast.Constant)
                    and isinstance(first.value, str)):
                yield node.lineno, first.value


def environment_uses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, what) wherever `tree` reads or changes the process environment through `os`
    (`os.environ`, `os.getenv`, ..., under any alias of `os`, or imported from it)."""
    os_names = {"os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {a.asname or a.name for a in node.names if a.name == "os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os" and not node.level:
            for alias in node.names:
                if alias.name in ENVIRONMENT_NAMES or alias.name == "*":
                    yield node.lineno, f"from os import {alias.name}"
        elif (isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_NAMES
              and isinstance(node.value, ast.Name) and node.value.id in os_names):
            yield node.lineno, f"{node.value.id}.{node.attr}"


def check(rule: Rule, path: str, source: str) -> list[Violation]:
    tree = ast.parse(source, filename=path)
    module = module_name(path)
    found = [Violation(path, line, f"imports {name}")
             for line, name in imported(tree, module, path.endswith("/__init__.py"))
             if rule.refuses(name)]
    if not rule.environment:
        found += [Violation(path, line, f"uses the environment ({what})")
                  for line, what in environment_uses(tree)]
    return sorted(found, key=lambda v: (v.path, v.line, v.what))


def sources() -> list[str]:
    return sorted(str(p.relative_to(REPO)) for top in ("pipeline", "topics")
                  for p in (REPO / top).rglob("*.py"))


@pytest.mark.parametrize("rule", RULES, ids=[r.scope[0] for r in RULES])
def test_rule_holds(rule: Rule) -> None:
    covered = [p for p in sources() if rule.covers(p)]
    assert covered, f"rule {rule.name!r} covers no file: is its scope {rule.scope} right?"
    violations = [v for p in covered
                  for v in check(rule, p, (REPO / p).read_text(encoding="utf-8"))]
    assert not violations, (f"{rule.name}:\n  "
                            + "\n  ".join(str(v) for v in violations))


DOMAIN = RULES[0]


@pytest.mark.parametrize(("path", "source", "expected"), [
    ("pipeline/ksef/a.py", "import faust", ["imports faust"]),
    ("pipeline/ksef/a.py", "import confluent_kafka.admin as admin",
     ["imports confluent_kafka.admin"]),
    ("pipeline/ksef/a.py", "from topics.records import KafkaRef",
     ["imports topics.records.KafkaRef"]),
    ("pipeline/ksef/a.py", "from pipeline import ksef_api", ["imports pipeline.ksef_api"]),
    ("pipeline/ksef/a.py", "from pipeline.ksef_api.errors import KsefError",
     ["imports pipeline.ksef_api.errors.KsefError"]),
    ("pipeline/ksef/fa3/a.py", "from .. import numbers", []),
    ("pipeline/ksef/fa3/a.py", "from ...runtime.keyring_file import load_keyring",
     ["imports pipeline.runtime.keyring_file.load_keyring"]),
    ("pipeline/ksef/fa3/__init__.py", "from .checker import InvoiceChecker", []),
    ("pipeline/ksef/a.py", "from urllib.parse import urlsplit", []),
    ("pipeline/ksef/a.py", "import urllib.request", ["imports urllib.request"]),
    ("pipeline/ksef/a.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
     "    from httpx import Client", ["imports httpx.Client"]),
    ("pipeline/ksef/a.py", "def f():\n    import aiohttp", ["imports aiohttp"]),
    ("pipeline/ksef/a.py", "import importlib\nimportlib.import_module('ksef_client.models')",
     ["imports ksef_client.models"]),
    ("pipeline/ksef/a.py", "import os\nkey = os.environ.get('KSEF_X')",
     ["uses the environment (os.environ)"]),
    ("pipeline/ksef/a.py", "import os as o\nkey = o.getenv('KSEF_X')",
     ["uses the environment (o.getenv)"]),
    ("pipeline/ksef/a.py", "from os import environ", ["uses the environment (from os import "
                                                      "environ)"]),
    ("pipeline/ksef/a.py", "import os\nnonce = os.urandom(12)", []),
])
def test_the_checker_sees_what_it_is_meant_to(path: str, source: str,
                                               expected: list[str]) -> None:
    assert DOMAIN.covers(path)
    assert [v.what for v in check(DOMAIN, path, source)] == expected


def test_scopes_and_module_names() -> None:
    assert not DOMAIN.covers("pipeline/ksef_api/client.py")
    assert DOMAIN.covers("pipeline/ksef/package/manifest.py")
    assert not DOMAIN.refuses("pipeline.ksef.numbers")
    assert DOMAIN.refuses("pipeline.ksef_api")
    assert module_name("pipeline/ksef/fa3/__init__.py") == "pipeline.ksef.fa3"
    assert module_name("pipeline/ksef/fa3/checker.py") == "pipeline.ksef.fa3.checker"
