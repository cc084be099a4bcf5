"""The FA(3) XSD, loaded from the installed `ksef-client` package, never from the network.

The schemas import each other by absolute `http://crd.gov.pl/...` URLs; lxml gets them
from a resolver and xmlschema from a URI mapper, both serving the packaged copies and
refusing anything else. lxml validates on the hot path; xmlschema is built only when a
failure needs explaining (slow to build, but it words the element path precisely).
"""

from __future__ import annotations

import importlib.resources
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree  # type: ignore[import-untyped]

FA3_NAMESPACE = "http://crd.gov.pl/wzor/2025/06/25/13775/"
FA3_ROOT_TAG = f"{{{FA3_NAMESPACE}}}Faktura"
MAIN_SCHEMA = "schemat_FA(3)_v1-0E.xsd"
_SCHEMA_PACKAGE = "ksef_client.documents.fa3"
_REMOTE_PREFIX = "http://crd.gov.pl/"
_MAIN_URL = f"{FA3_NAMESPACE}{MAIN_SCHEMA}"


def schema_directory() -> Path:
    """Directory of the packaged XSDs (the package is installed as plain files)."""
    return Path(str(importlib.resources.files(_SCHEMA_PACKAGE) / "schemas"))


@cache
def _schema_bytes() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in schema_directory().glob("*.xsd")}


def packaged_name(url: str) -> str | None:
    """The packaged file a crd.gov.pl schema URL (or bare file name) stands for, if any."""
    name = url.rsplit("/", 1)[-1]
    return name if name in _schema_bytes() else None


class _PackagedSchemaResolver(etree.Resolver):  # type: ignore[misc]
    """Serves crd.gov.pl schema imports from package data; anything else is refused."""

    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        url = system_url or ""
        name = packaged_name(url) if url.startswith(_REMOTE_PREFIX) else None
        if name is None:
            raise OSError(f"FA(3) schema import {system_url!r} is not packaged; refusing to fetch")
        return self.resolve_string(_schema_bytes()[name], context, base_url=system_url)


def _schema_parser() -> etree.XMLParser:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_PackagedSchemaResolver())
    return parser


# lxml swaps libxml2's process-wide entity loader in and out around every parse, so a
# schema compile overlapping another thread's parse can now and then see its imports
# refused; a fresh attempt succeeds. Compiles happen once or twice per process.
_COMPILE_ATTEMPTS = 5


def compile_lxml_schema() -> etree.XMLSchema:
    """A fresh lxml XMLSchema for FA(3) (a few tenths of a second)."""
    for _ in range(_COMPILE_ATTEMPTS - 1):
        try:
            return _compile_once()
        except etree.XMLSchemaParseError:
            continue
    return _compile_once()


def _compile_once() -> etree.XMLSchema:
    doc = etree.fromstring(_schema_bytes()[MAIN_SCHEMA], _schema_parser(), base_url=_MAIN_URL)
    return etree.XMLSchema(etree.ElementTree(doc))


class _SharedSchema:
    """One compiled schema, built on first use; `validate` on it is safe from any thread.

    lxml gives each validate() call its own libxml2 context, but routes error details
    into one log per schema object, which concurrent calls would mix up. So the hot
    path shares one schema for the yes/no answer, and the rare failure is re-run on a
    second schema, under a lock, to read its first error.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._schema: etree.XMLSchema | None = None

    def get(self) -> etree.XMLSchema:
        schema = self._schema
        if schema is None:
            with self._lock:
                if self._schema is None:
                    self._schema = compile_lxml_schema()
                schema = self._schema
        return schema


_validating = _SharedSchema()
_diagnosing = _SharedSchema()
_diagnosis_lock = threading.Lock()


def lxml_schema() -> etree.XMLSchema:
    """The process-wide compiled FA(3) schema, for `validate()` (a yes/no answer)."""
    return _validating.get()


@dataclass(frozen=True)
class SchemaError:
    line: int | None
    libxml_path: str | None  # e.g. '/*/*[4]/*[4]', an XPath into the validated tree
    message: str


def first_schema_error(root: Any) -> SchemaError | None:
    """The first XSD error in `root`'s document, or None when it is valid."""
    with _diagnosis_lock:
        schema = _diagnosing.get()
        if schema.validate(root):
            return None
        entries = schema.error_log.filter_from_errors() or list(schema.error_log)
        if not entries:
            return SchemaError(None, None, "the document does not match the FA(3) XSD")
        return SchemaError(entries[0].line, entries[0].path, entries[0].message)


def _map_uri(uri: str) -> str:
    name = packaged_name(uri) if uri.startswith(_REMOTE_PREFIX) else None
    return str(schema_directory() / name) if name is not None else uri


_explainer_lock = threading.Lock()


@cache
def _build_explainer() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(
        str(schema_directory() / MAIN_SCHEMA), uri_mapper=_map_uri, allow="local"
    )


def explainer_schema() -> xmlschema.XMLSchema:
    """xmlschema's view of FA(3), compiled once per process on first use."""
    with _explainer_lock:
        return _build_explainer()
