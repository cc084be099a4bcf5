"""The worker's web port in process (aiohttp test client, no broker): who may post an
announcement, what it may change without a flag, what is audited, and that Faust's own
pages are gone."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pipeline.modes.messages import operator_announcement
from topics.records import Alert, Announcement, ModeState

TOKEN = "alice-token-0123456789abcdef"
URL = "/ksef/announcements"
JSON = {"Content-Type": "application/json"}


def _web_app() -> web.Application:
    import pipeline.modes.announcements  # registers the views
    import pipeline.modes.web  # noqa: F401
    from pipeline.runtime import logs
    from pipeline.runtime.app import app

    logs.configure()  # as the worker command does: logs go to stderr, not stdout
    if not app.web.blueprints.applied:
        app.web.init_server()
    fresh = web.Application()  # the worker's routes on an application of this test's loop
    for route in app.web.web_app.router.routes():  # type: ignore[attr-defined]
        if route.method != "HEAD":
            fresh.router.add_route(route.method, route.resource.canonical, route.handler)
    return fresh


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the endpoint hands to the producer (alerts and announcements, in order)."""
    import pipeline.modes.announcements as views

    sent: list[Any] = []

    async def keep(record: Any) -> None:
        sent.append(record)

    monkeypatch.setattr(views, "publish_alert", keep, raising=False)
    monkeypatch.setattr(views, "publish_announcement", keep)
    monkeypatch.setattr(views.follower, "state", None)
    return sent


@pytest.fixture
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "operators"
    path.write_text(f"# operators\nalice:{TOKEN}\nbob:bob-token-0123456789abcdef\n")
    path.chmod(0o600)
    monkeypatch.setenv("KSEF_OPERATOR_TOKEN_FILE", str(path))
    return path


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(_web_app())) as test_client:
        yield test_client


def _bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **JSON}


def _soon(minutes: float = 10) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat(
        timespec="seconds")


async def test_forged_announcement_without_token_is_401(
        client: TestClient[Any, Any], token_file: Path, published: list[Any]) -> None:
    answer = await client.post(URL, json={"kind": "failure", "start": _soon()})
    assert answer.status == 401, await answer.text()
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert published == []


async def test_wrong_token_is_401(client: TestClient[Any, Any], token_file: Path,
                                  published: list[Any]) -> None:
    for header in ("Bearer not-the-token-0123456789", f"Basic {TOKEN}", TOKEN,
                   f"Bearer {TOKEN}x"):
        answer = await client.post(URL, json={"kind": "failure", "start": _soon()},
                                   headers={"Authorization": header})
        assert answer.status == 401, (header, await answer.text())
    assert published == []


async def test_text_plain_cross_site_post_with_the_right_token_is_415(
        client: TestClient[Any, Any], token_file: Path, published: list[Any]) -> None:
    body = json.dumps({"kind": "failure", "start": _soon()})
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                  None):
        headers = {"Authorization": f"Bearer {TOKEN}", "Origin": "https://evil.example"}
        if ctype:
            headers["Content-Type"] = ctype
        answer = await client.post(URL, data=body.encode(), headers=headers)
        assert answer.status == 415, (ctype, await answer.text())
    assert published == []


async def test_without_a_token_file_state_changes_are_refused_and_pages_stay(
        client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch,
        published: list[Any]) -> None:
    monkeypatch.delenv("KSEF_OPERATOR_TOKEN_FILE", raising=False)
    answer = await client.post(URL, json={"kind": "failure", "start": _soon()},
                               headers=_bearer())
    assert answer.status == 403 and "KSEF_OPERATOR_TOKEN_FILE" in await answer.text()
    for page in (URL, "/ksef/mode", "/ksef/status"):
        assert (await client.get(page)).status == 200, page
    assert published == []


async def test_a_token_file_others_may_read_is_refused(
        client: TestClient[Any, Any], token_file: Path, published: list[Any]) -> None:
    token_file.chmod(0o640)
    answer = await client.post(URL, json={"kind": "failure", "start": _soon()},
                               headers=_bearer())
    assert answer.status == 503
    assert "chmod 600" in (await answer.json())["error"]
    assert published == []


async def test_accepted_announcement_is_audited_before_it_is_published(
        client: TestClient[Any, Any], token_file: Path, published: list[Any]) -> None:
    answer = await client.post(URL, json={"kind": "failure", "start": _soon(2)},
                               headers=_bearer("bob-token-0123456789abcdef"))
    assert answer.status == 201, await answer.text()
    audit, record = published
    assert isinstance(audit, Alert) and isinstance(record, Announcement)
    assert record.source == "operator" and audit.kind == "operator-change"
    assert audit.details["by"] == "bob" and audit.details["id"] == record.id
    assert audit.details["token_fingerprint"].startswith("sha256:")
    # who, on the announcements topic itself (when: its `published`)
    assert record.changed_by == f"bob ({audit.details['token_fingerprint']})"
    assert "bob-token" not in json.dumps(audit.details)  # the secret never travels
    assert (await answer.json())["audit"]["by"] == "bob"


async def test_backdated_window_needs_the_flag_and_is_audited(
        client: TestClient[Any, Any], token_file: Path, published: list[Any]) -> None:
    then = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).isoformat(timespec="seconds")
    answer = await client.post(URL, json={"kind": "failure", "start": then},
                               headers=_bearer())
    assert answer.status == 422, await answer.text()
    assert "allow_backdate" in (await answer.json())["error"]
    answer = await client.post(URL, json={"kind": "total-failure", "start": then,
                                          "allow_backdate": "yes"}, headers=_bearer())
    assert answer.status == 400 and published == []

    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    answer = await client.post(URL, json={"kind": "failure", "start": then,
                                          "allow_backdate": True}, headers=_bearer())
    assert answer.status == 201, await answer.text()
    audit, record = published
    assert record.start == then and record.category == "FAILURE"
    assert audit.severity == "warning"
    assert audit.details["by"] == "alice" and audit.details["allow_backdate"] is True
    assert audit.details["backdated"] is True
    assert dt.datetime.fromisoformat(audit.at) >= before  # when
    assert "alice" in audit.message and "allow_backdate" in audit.message


async def test_a_start_within_the_tolerance_needs_no_flag(
        client: TestClient[Any, Any], token_file: Path, published: list[Any]) -> None:
    answer = await client.post(URL, json={"kind": "failure", "start": _soon(-2)},
                               headers=_bearer())
    assert answer.status == 201, await answer.text()


async def test_ending_a_window_needs_the_flag(
        client: TestClient[Any, Any], token_file: Path, published: list[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.modes.announcements as views

    now = dt.datetime.now(dt.UTC)
    known = operator_announcement("total-failure", now - dt.timedelta(hours=2), None,
                                  now - dt.timedelta(hours=2))
    monkeypatch.setattr(views.follower, "state", ModeState(
        state="TOTAL_FAILURE", since=known.start, updated_at=known.start,
        announcements=[known]))
    end = {"kind": "end", "id": known.id, "at": now.isoformat(timespec="seconds")}
    answer = await client.post(URL, json=end, headers=_bearer())
    assert answer.status == 422 and "allow_end" in (await answer.json())["error"]
    revise = {"kind": "total-failure", "id": known.id, "start": known.start,
              "end": now.isoformat(timespec="seconds")}
    answer = await client.post(URL, json=revise, headers=_bearer())
    assert answer.status == 422, await answer.text()
    assert published == []

    answer = await client.post(URL, json={**end, "allow_end": True}, headers=_bearer())
    assert answer.status == 201, await answer.text()
    audit, record = published
    assert record.end is not None and record.version == 2
    assert audit.details["changes_end"] is True and audit.details["allow_end"] is True


async def test_faust_pages_are_gone(client: TestClient[Any, Any]) -> None:
    for path in ("/table/", "/router/", "/router/topics", "/table/ksef-dedupe/x/", "/",
                 "/stats/", "/graph/", "/performance/"):
        assert (await client.get(path)).status == 404, path


def test_token_file_lines_and_names(tmp_path: Path) -> None:
    from pipeline.bearer import Caller, TokenFileError, match, read_tokens

    path = tmp_path / "t"
    path.write_text("carol:" + "c" * 20 + "\n" + "d" * 24 + "\n")
    os.chmod(path, 0o600)
    entries = read_tokens(path)
    assert entries[0].name == "carol"
    assert entries[1].name.startswith("token sha256:")
    assert "c" * 20 not in repr(entries)
    found = match(entries, "c" * 20)
    assert isinstance(found, Caller) and found.name == "carol"
    assert match(entries, "c" * 19) is None
    path.write_text("short\n")
    with pytest.raises(TokenFileError, match="at least 16"):
        read_tokens(path)
    path.chmod(0o604)
    with pytest.raises(TokenFileError, match="chmod 600"):
        read_tokens(path)


async def test_announce_command_posts_to_a_worker_with_the_token(
        client: TestClient[Any, Any], token_file: Path, published: list[Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    mine = tmp_path / "my-token"
    mine.write_text(f"alice:{TOKEN}\n")
    mine.chmod(0o600)
    worker = str(client.make_url("/"))
    then = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=5)).isoformat(timespec="seconds")
    argv = ["announce", "failure", "--start", then, "--worker", worker]

    code = await asyncio.to_thread(main, [*argv, "--token-file", str(mine)])
    assert code == 2 and "HTTP 422" in capsys.readouterr().err
    code = await asyncio.to_thread(main, [*argv, "--token-file", str(token_file.parent / "x")])
    assert code == 2 and "No such file" in capsys.readouterr().err
    assert published == []

    code = await asyncio.to_thread(main, [*argv, "--token-file", str(mine), "--allow-backdate"])
    assert code == 0, capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out)
    assert printed["source"] == "operator" and printed["audit"]["by"] == "alice"
    audit, record = published
    assert audit.details["allow_backdate"] is True and record.start == then
