"""A tiny synchronous client for the emulator's operator endpoints (`/_emulator/...`)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.bearer import TokenFileError, read_tokens


class ControlError(Exception):
    pass


def admin_base(url: str) -> str:
    """`http://h:p`, `http://h:p/v2` or `http://h:p/_emulator` -> `http://h:p/_emulator`."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.netloc:
        raise ControlError(f"not an emulator URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}/_emulator"


def admin_token(path: str | Path | None = None) -> str | None:
    """The first token of the admin token file (`path`, else $KSEF_EMULATOR_ADMIN_TOKEN_FILE;
    None when neither is set)."""
    chosen = path or os.environ.get("KSEF_EMULATOR_ADMIN_TOKEN_FILE")
    if not chosen:
        return None
    try:
        return read_tokens(Path(chosen))[0].token
    except TokenFileError as exc:
        raise ControlError(str(exc)) from exc


def call(url: str, action: str, body: dict[str, Any] | None = None,
         timeout: float = 10.0, token: str | None = None) -> Any:
    """POST (or GET for `info`) an operator action; returns the decoded JSON answer.
    `token`: the emulator's admin token (sent as `Authorization: Bearer`)."""
    target = f"{admin_base(url)}/{action}"
    data = None if body is None else json.dumps(body).encode("utf-8")
    method = "GET" if action == "info" else "POST"
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(target, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise ControlError(f"{target}: HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ControlError(f"{target}: {exc}") from exc


def issue_token(url: str, nip: str, admin: str | None = None) -> str:
    """A KSeF token for `nip` from a running emulator (`admin`: its admin token)."""
    answer = call(url, "ksef-tokens", {"nip": nip}, token=admin)
    return str(answer["token"])
