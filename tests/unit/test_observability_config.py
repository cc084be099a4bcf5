"""ops/observability: promtool accepts the scrape config and the alert rules, the rules'
unit tests pass, and every metric the rules and the dashboard name is one a worker
exposes. A misspelled metric is not an error anywhere else: the query matches nothing and
the alert never fires, the panel stays empty.

promtool comes from Debian's `prometheus` package; ops/test installs it when missing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.metrics.families import Metrics

OBS = Path(__file__).resolve().parents[2] / "ops" / "observability"
CONFIG = OBS / "prometheus.yml"
RULE_FILES = sorted((OBS / "rules").glob("*.yml"))
RULE_TESTS = sorted((OBS / "tests").glob("*.test.yml"))
DASHBOARD = OBS / "grafana" / "ksef-pipeline.json"
# Alerts the runbook (README.md) describes; each must stay defined.
EXPECTED_ALERTS = {
    "KsefDeadlineAtRisk", "KsefDeadlineMissed", "KsefFailureAnnounced", "KsefMaintenance",
    "KsefObservedOutage", "KsefLatarniaUnreachable", "KsefConsumerLagGrowing",
    "KsefRejectionSpike", "KsefRateLimited", "KsefCredentialsExpiring",
    "KsefCredentialsExpiringSoon", "KsefWorkerDown", "KsefNoWorkers", "KsefTableRecoveryStuck",
}
SEVERITIES = {"critical", "warning", "info"}
# A metric or recorded-series name: not part of a longer name, a label value like
# "ksef.invoices.sealed" or a Grafana variable.
NAME = re.compile(r"(?<![\w:.$-])[A-Za-z_:][\w:]*")


def promtool(*args: str) -> str:
    """Run promtool; its whole output when it succeeds, the test fails with it otherwise."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: run ops/test (it installs Debian's prometheus "
                    "package) or `apt-get install --no-install-recommends prometheus`")
    done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def exposed_names() -> set[str]:
    """Series names as Prometheus stores them: counters with `_total`, histograms as
    `_bucket`/`_sum`/`_count` (the registry's family names carry neither)."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        else:
            assert family.type == "gauge", f"{family.name}: {family.type} not handled here"
            names.add(family.name)
    return names


def recorded_names() -> set[str]:
    return {m.group(1) for path in RULE_FILES
            for m in re.finditer(r"^\s*-?\s*record:\s*(\S+)", path.read_text(), re.M)}


def unknown_names(text: str, exposed: set[str], recorded: set[str]) -> set[str]:
    """The pipeline's series names in `text` that no worker exposes and no rule records."""
    used = {name for name in NAME.findall(text) if "ksef_" in name}
    return {name for name in used
            if name not in (recorded if ":" in name else exposed)}


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets, and the series selector
    of each variable's `label_values(selector, label)` (Grafana's, not PromQL)."""
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            query = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["definition"])
            assert query, var["definition"]
            exprs.append(query.group(1))
    return exprs


def alert_blocks() -> dict[str, str]:
    """Alert name -> its text in the rule files (up to the next rule)."""
    blocks: dict[str, str] = {}
    for path in RULE_FILES:
        parts = re.split(r"^\s*- (?:alert|record):", path.read_text(), flags=re.M)
        for part in parts[1:]:
            name, _, body = part.partition("\n")
            if re.fullmatch(r"\s*[A-Z]\w*\s*", name):  # an alert (records are snake_case)
                assert name.strip() not in blocks, f"alert {name.strip()} defined twice"
                blocks[name.strip()] = body
    return blocks


# ---- promtool ----
def test_config_as_shipped_is_valid() -> None:
    output = promtool("check", "config", str(CONFIG))
    assert f"{len(RULE_FILES)} rule files found" in output


def test_config_with_targets_in_the_documented_format(tmp_path: Path) -> None:
    """A copy beside a targets/workers.json written as the config's comment shows (what
    `ops/demo --observe` does): promtool reads and checks the targets file too."""
    documented = "\n".join(
        line[1:] for line in CONFIG.read_text().splitlines() if line.startswith("#   "))
    targets = json.loads(documented)
    assert targets and all("targets" in group for group in targets)
    shutil.copy(CONFIG, tmp_path / "prometheus.yml")
    shutil.copytree(OBS / "rules", tmp_path / "rules")
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "workers.json").write_text(json.dumps(targets))
    output = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert "WARNING" not in output, output


def test_rules_are_valid() -> None:
    assert RULE_FILES
    promtool("check", "rules", *map(str, RULE_FILES))


def test_rules_unit_tests_pass() -> None:
    assert RULE_TESTS
    output = promtool("test", "rules", *map(str, RULE_TESTS))
    assert "FAILED" not in output, output


def test_dashboard_expressions_parse(tmp_path: Path) -> None:
    """promtool has no bare PromQL check, so each expression becomes a recording rule
    (Grafana's variables replaced by what they expand to)."""
    variables = {"$__rate_interval": "1m", "$instance": ".*"}
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for n, expr in enumerate(dashboard_exprs()):
        for var, value in variables.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"unhandled Grafana variable in {expr}"
        lines += [f"      - record: dashboard:expr_{n}", f"        expr: {json.dumps(expr)}"]
    rules = tmp_path / "dashboard.yml"
    rules.write_text("\n".join(lines) + "\n")
    promtool("check", "rules", str(rules))


# ---- names ----
@pytest.mark.parametrize("path", [*RULE_FILES, *RULE_TESTS], ids=lambda p: p.name)
def test_rule_files_name_only_exposed_metrics(path: Path) -> None:
    assert unknown_names(path.read_text(), exposed_names(), recorded_names()) == set()


def test_dashboard_names_only_exposed_metrics() -> None:
    """The dashboard also works without the rules loaded: raw metrics only."""
    text = "\n".join(dashboard_exprs())
    assert unknown_names(text, exposed_names(), set()) == set()


def test_name_check_catches_misspellings() -> None:
    exposed, recorded = exposed_names(), recorded_names()
    assert "ksef_outcomes_total" in exposed
    assert "ksef_invoice_latency_seconds_bucket" in exposed
    bad = ('sum(rate(ksef_outcome_total[5m])) + sum(ksef_outcomes) '
           '+ sum(ksef_invoice_latency_seconds) + topic:ksef_lag:sum '
           '+ sum(ksef_pending_invoices{bucket="overdue", topic="ksef.invoices.sealed"})')
    assert unknown_names(bad, exposed, recorded) == {
        "ksef_outcome_total", "ksef_outcomes", "ksef_invoice_latency_seconds",
        "topic:ksef_lag:sum"}


# ---- shape ----
def test_alerts_have_severity_summary_and_description() -> None:
    blocks = alert_blocks()
    assert set(blocks) >= EXPECTED_ALERTS, EXPECTED_ALERTS - set(blocks)
    for name, body in blocks.items():
        severity = re.search(r"^\s+severity:\s*(\S+)", body, re.M)
        assert severity and severity.group(1) in SEVERITIES, name
        assert re.search(r"^\s+summary:", body, re.M), name
        assert re.search(r"^\s+description:", body, re.M), name


def test_dashboard_shape() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    source = {"type": "prometheus", "uid": "${datasource}"}
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == source, panel["title"]
            assert target["expr"].strip(), panel["title"]
