"""`ksef-pipeline deadline` and `ksef-pipeline ksef-number` as operators and tests use them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main
from tests.unit.announcement_builders import maintenance, outage

OFFICIAL = outage("AW-1", "2025-07-09T09:00:00+02:00", "2025-07-12T15:00:00+02:00")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def events_file(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "events.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def one_json_line(out: str) -> dict[str, Any]:
    lines = out.splitlines()
    assert len(lines) == 1, out
    parsed: dict[str, Any] = json.loads(lines[0])
    assert list(parsed) == ["deadline", "status", "mode", "basis"]
    return parsed


def test_official_example_prints_exactly_one_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = events_file(tmp_path, OFFICIAL)
    code, out, err = cli(
        capsys, "deadline", "--mode", "offline24", "--issued", "2025-07-08", "--events", events
    )
    assert (code, err) == (0, "")
    result = one_json_line(out)
    assert (result["deadline"], result["status"], result["mode"]) == (
        "2025-07-22",
        "due",
        "offline24",
    )
    assert out.startswith('{"deadline": "2025-07-22", "status": "due", "mode": "offline24"')


def test_without_events_file_nothing_is_announced(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "deadline", "--mode", "offline24", "--issued", "2025-12-23")
    assert code == 0
    assert one_json_line(out)["deadline"] == "2025-12-29"


def test_auto_reports_the_derived_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = events_file(tmp_path, OFFICIAL)
    code, out, _ = cli(
        capsys, "deadline", "--mode", "auto", "--issued", "2025-07-10", "--events", events
    )
    assert code == 0
    result = one_json_line(out)
    assert (result["mode"], result["deadline"]) == ("emergency", "2025-07-22")


def test_auto_without_announcements_is_offline24(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "deadline", "--mode", "auto", "--issued", "2025-07-11")
    assert code == 0
    assert one_json_line(out) | {"basis": ""} == {
        "deadline": "2025-07-14",
        "status": "due",
        "mode": "offline24",
        "basis": "",
    }


def test_open_failure_prints_null_deadline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = events_file(tmp_path, outage("AW", "2025-07-09T09:00:00+02:00"))
    code, out, _ = cli(
        capsys, "deadline", "--mode", "emergency", "--issued", "2025-07-09", "--events", events
    )
    assert code == 0
    assert '"deadline": null' in out
    result = one_json_line(out)
    assert (result["deadline"], result["status"]) == (None, "open")


def test_total_failure_is_exempt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = events_file(
        tmp_path, outage("TF", "2025-07-09T09:00:00+02:00", category="TOTAL_FAILURE")
    )
    code, out, _ = cli(
        capsys, "deadline", "--mode", "auto", "--issued", "2025-07-09", "--events", events
    )
    assert code == 0
    result = one_json_line(out)
    assert (result["deadline"], result["status"], result["mode"]) == (
        None,
        "exempt",
        "total_failure",
    )


def test_maintenance_from_a_status_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    works = maintenance("PR", "2025-07-10T20:00:00+02:00", "2025-07-10T23:00:00+02:00")
    events = events_file(tmp_path, {"status": "MAINTENANCE", "messages": works})
    code, out, _ = cli(
        capsys, "deadline", "--mode", "offline", "--issued", "2025-07-10", "--events", events
    )
    assert code == 0
    assert one_json_line(out)["deadline"] == "2025-07-11"


def test_events_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(OFFICIAL)))
    code, out, _ = cli(
        capsys, "deadline", "--mode", "offline24", "--issued", "2025-07-08", "--events", "-"
    )
    assert code == 0
    assert one_json_line(out)["deadline"] == "2025-07-22"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--mode", "offline48", "--issued", "2025-07-08"], "invalid choice"),
        (["--mode", "AUTO", "--issued", "2025-07-08"], "invalid choice"),
        (["--issued", "2025-07-08"], "--mode"),
        (["--mode", "online"], "--issued"),
        (["--mode", "online", "--issued", "2025-7-8"], "YYYY-MM-DD"),
        (["--mode", "online", "--issued", "20250708"], "YYYY-MM-DD"),
        (["--mode", "online", "--issued", "2025-02-30"], "not a calendar date"),
        (["--mode", "online", "--issued", "tomorrow"], "YYYY-MM-DD"),
        (["--mode", "online", "--issued", "1999-01-04"], "outside the supported"),
        (["--mode", "online", "--issued", "2025-07-08", "--events", "/no/such/file"],
         "cannot read events file"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_with_a_message_on_stderr(
    capsys: pytest.CaptureFixture[str], args: list[str], complaint: str
) -> None:
    code, out, err = cli(capsys, "deadline", *args)
    assert code == 2 and out == ""
    assert complaint in err


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("[{", "not valid JSON"),
        ('{"a": 1}', "JSON array"),
        ('[{"id": "x", "category": "FAILURE", "type": "FAILURE_START"}]', "needs a start"),
        ('[{"id": "x", "category": "OUTAGE", "type": "FAILURE_START", "start": "2025-07-09"}]',
         "category"),
        ('[{"id": "x", "category": "FAILURE", "type": "FAILURE_START", "start": "9 July"}]',
         "ISO 8601"),
    ],
)  # fmt: skip
def test_malformed_events_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, complaint: str
) -> None:
    path = tmp_path / "events.json"
    path.write_text(content, encoding="utf-8")
    code, out, err = cli(
        capsys, "deadline", "--mode", "auto", "--issued", "2025-07-08", "--events", str(path)
    )
    assert code == 2 and out == ""
    assert complaint in err


def test_console_script_end_to_end(tmp_path: Path) -> None:
    events = events_file(tmp_path, OFFICIAL)
    ok = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "deadline", "--mode", "offline24",
         "--issued", "2025-07-08", "--events", events],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 0 and ok.stderr == ""
    assert json.loads(ok.stdout)["deadline"] == "2025-07-22"
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "deadline", "--mode", "sometimes",
         "--issued", "2025-07-08"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stdout == "" and "sometimes" in bad.stderr


# --- ksef-number ----------------------------------------------------------------------


def test_ksef_number_check_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "ksef-number", "check", "5265877635-20250826-0100001AF629-AF")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "number": "5265877635-20250826-0100001AF629-AF",
        "valid": True,
        "reason": None,
    }


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("5265877635-20250826-0100001AF629-AE", "checksum AE does not match CRC-8 AF"),
        ("5265877635-20250826-0100001AF629", "length is 32"),
        ("5265877635-20250826-0100001af629-AF", "upper-case hex"),
    ],
)
def test_ksef_number_check_invalid_exits_1_with_the_reason(
    capsys: pytest.CaptureFixture[str], number: str, reason: str
) -> None:
    code, out, err = cli(capsys, "ksef-number", "check", number)
    assert code == 1
    assert reason in err
    result = json.loads(out)
    assert (result["number"], result["valid"]) == (number, False)
    assert reason in result["reason"]


def test_ksef_number_make(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ksef-number", "make", "5265877635", "2025-08-26", "0100001AF629")
    assert code == 0
    assert json.loads(out) == {"number": "5265877635-20250826-0100001AF629-AF"}
    code, _, err = cli(capsys, "ksef-number", "make", "52658", "2025-08-26", "1")
    assert code == 2 and "10 digits" in err
