"""The submit stage's two lanes: loading the stage loads both on one shared context, and
the correction lane takes what it shares from that context, never from the batch lane.

Importing a lane registers Faust agents on the process's app, so it is done in a child
process (the tests' own app stays as it was).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import orjson

from pipeline.runtime.keyring_file import new_keyring_json

REPO = Path(__file__).resolve().parents[3]
LANES = REPO / "pipeline" / "stages" / "s3_submit"

PROBE = """
import importlib, sys
import orjson
importlib.import_module(sys.argv[1])
from pipeline.runtime.app import app, catalog_settings
from pipeline.stages.s3_submit.context import stage_context
ctx = stage_context()
submit = sys.modules.get("pipeline.stages.s3_submit.submit")
prefix = catalog_settings.prefix
print(orjson.dumps({
    "agents": sorted([a.name, a.channel.get_topic_name().removeprefix(prefix)]
                     for a in app.agents.values()),
    "one_context": submit is None or submit.ctx is ctx,
    "journal_subscribers": ctx.sessions._subscribers.count(ctx.journal.apply),
}).decode())
"""


def _load(tmp_path: Path, module: str) -> dict[str, object]:
    keyring = tmp_path / "keyring.json"
    keyring.write_bytes(new_keyring_json())
    keyring.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSEF_KEYRING")}
    # No broker listens here: nothing connects at import.
    env.update(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", KSEF_ENV="emulator",
               KSEF_KEYRING_FILE=str(keyring), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", PROBE, module], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_submit_stage_loads_both_lanes_on_one_context(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "pipeline.stages.s3_submit.submit")
    assert loaded["agents"] == [["submit", "ksef.batches.packed"],
                                ["submit-interactive", "ksef.invoices.corrections"]]
    assert loaded["one_context"] is True
    assert loaded["journal_subscribers"] == 1  # built once: one journal follows the topic


def test_the_correction_lane_loads_without_the_batch_lane(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "pipeline.stages.s3_submit.correction_lane")
    assert loaded["agents"] == [["submit-interactive", "ksef.invoices.corrections"]]
    assert loaded["journal_subscribers"] == 1


def test_the_correction_lane_never_imports_the_batch_lane() -> None:
    tree = ast.parse((LANES / "correction_lane.py").read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert "pipeline.stages.s3_submit.context.SubmitContext" in imported
    assert not any(name.startswith("pipeline.stages.s3_submit.submit") for name in imported)
