"""Response validation against the component schemas of MF's official `open-api.json`.

The spec is read from the shared reference docs (never copied into the repository):
`$KSEF_DOCS/open-api.json`, by default `../shared/reference/ksef-docs` beside the repo.
OpenAPI 3.0 `nullable` is translated to JSON Schema before validating.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

REPO = Path(__file__).resolve().parents[3]
DOCS = Path(os.environ.get("KSEF_DOCS", REPO.parent / "shared/reference/ksef-docs"))
SPEC_PATH = DOCS / "open-api.json"


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@cache
def _components() -> dict[str, Any]:
    return _nullable(spec()["components"])  # type: ignore[no-any-return]


def template_of(method: str, path: str) -> str:
    """The OpenAPI path template (`/sessions/{referenceNumber}`) an actual path matches."""
    clean = path.removeprefix("/v2")
    candidates = []
    for template, ops in spec()["paths"].items():
        if method.lower() not in ops:
            continue
        pattern = "^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"
        if re.match(pattern, clean):
            candidates.append(template)
    if not candidates:
        raise KeyError(f"{method} {path} is not in the official API")
    return min(candidates, key=lambda t: t.count("{"))  # literal segments win


def response_schema(method: str, template: str, status: int, content_type: str) -> Any:
    operation = spec()["paths"][template][method.lower()]
    response = operation["responses"].get(str(status))
    if response is None:
        raise KeyError(f"{method} {template} documents no {status} response")
    media = content_type.split(";")[0].strip() or "application/json"
    content = response.get("content", {})
    if media not in content:
        raise KeyError(f"{method} {template} {status} documents no {media} content")
    return content[media]["schema"]


def validate(method: str, path: str, status: int, content_type: str, body: Any) -> str:
    """Validate one answer; returns the operation it was checked as."""
    template = template_of(method, path)
    schema = response_schema(method, template, status, content_type)
    document = {**_nullable(schema), "components": _components()}
    jsonschema.Draft7Validator(document).validate(body)
    return f"{method.upper()} {template} {status}"
