"""The FA(3) XSD, loaded from the installed `ksef-client` package, never from the network.

The schemas import each other by absolute `http://crd.gov.pl/...` URLs; both lxml and
xmlschema get those URLs mapped to the packaged copies. lxml validates on the hot path;
xmlschema is compiled only when a failure needs explaining (it is slow to build, but
reports the element path precisely).
"""

from __future__ import annotations

import importlib.resources
import threading
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
        name = packaged_name(system_url or "")
        if name is None:
            raise OSError(f"FA(3) schema import {system_url!r} is not packaged; refusing to fetch")
        return self.resolve_string(_schema_bytes()[name], context, base_url=system_url)


def _schema_parser() -> etree.XMLParser:
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_PackagedSchemaResolver())
    return parser


def compile_lxml_schema() -> etree.XMLSchema:
    """A fresh lxml XMLSchema for FA(3) (about a tenth of a second)."""
    parser = _schema_parser()
    doc = etree.fromstring(_schema_bytes()[MAIN_SCHEMA], parser, base_url=_MAIN_URL)
    return etree.XMLSchema(etree.ElementTree(doc))


_local = threading.local()


def lxml_schema() -> etree.XMLSchema:
    """This thread's compiled schema.

    lxml keeps the last validation's error log on the schema object, so concurrent
    callers each get their own instance; one compile per thread, lazily.
    """
    schema: etree.XMLSchema | None = getattr(_local, "schema", None)
    if schema is None:
        schema = compile_lxml_schema()
        _local.schema = schema
    return schema


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
