"""`ops/demo --observe` without a broker: its Prometheus directory, and no Prometheus at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.demo import run
from pipeline.demo.observe import command, write_config


def test_generated_config_scrapes_the_workers_from_file_sd(tmp_path: Path) -> None:
    home = tmp_path / "prometheus"
    (home / "data").mkdir(parents=True)  # a previous run's TSDB goes
    config = write_config(home, [4101, 4102], source=tmp_path / "absent")
    text = config.read_text()
    for line in ("job_name: ksef-pipeline", "scrape_interval: 2s", "- targets/*.json",
                 "- rules/*.yml"):
        assert line in text
    assert json.loads((home / "targets/workers.json").read_text()) == [
        {"targets": ["127.0.0.1:4101"], "labels": {"worker": "0"}},
        {"targets": ["127.0.0.1:4102"], "labels": {"worker": "1"}}]
    assert (home / "rules").is_dir() and not (home / "data").exists()
    assert command("/usr/bin/prometheus", config, home / "data", 9999)[-1] == \
        "--web.listen-address=127.0.0.1:9999"


def test_the_checked_in_config_and_rules_are_used_when_present(tmp_path: Path) -> None:
    source = tmp_path / "observability"
    (source / "rules").mkdir(parents=True)
    (source / "prometheus.yml").write_text("# checked in\n")
    (source / "rules/alerts.yml").write_text("groups: []\n")
    home = tmp_path / "prometheus"
    config = write_config(home, [4101], source=source)
    assert config.read_text() == "# checked in\n"
    assert (home / "rules/alerts.yml").read_text() == "groups: []\n"
    assert (home / "targets/workers.json").exists()


def test_observe_without_prometheus_exits_2_naming_the_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KSEF_PROMETHEUS_BIN", str(tmp_path / "no-such-prometheus"))
    assert run.main(["--observe", "--var", str(tmp_path / "var")]) == 2
    assert "apt-get install prometheus" in capsys.readouterr().err
    assert not (tmp_path / "var").exists()  # nothing was started
