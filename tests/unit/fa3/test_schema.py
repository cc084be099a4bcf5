"""The FA(3) XSD comes from package data only, for lxml and for xmlschema."""

from __future__ import annotations

import pytest
from lxml import etree

from pipeline.ksef.fa3 import schema


def test_schemas_are_found_in_the_installed_package() -> None:
    assert schema.packaged_name(f"http://crd.gov.pl/x/{schema.MAIN_SCHEMA}") == schema.MAIN_SCHEMA
    assert schema.packaged_name("http://crd.gov.pl/x/unknown.xsd") is None
    assert schema.lxml_schema() is schema.lxml_schema()  # compiled once per process


@pytest.mark.parametrize(
    "location",
    ["http://crd.gov.pl/xml/schematy/nothing-like-this.xsd", "http://example.com/Kody.xsd"],
)
def test_imports_outside_the_package_are_refused_not_fetched(location: str) -> None:
    with pytest.raises(OSError, match="not packaged"):
        schema._PackagedSchemaResolver().resolve(location, None, None)
    # libxml2 may treat a refused import as a warning only; a schema that needs a type
    # from it must then still fail to compile, never be completed from elsewhere.
    xsd = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t"'
        ' xmlns:o="urn:other">'
        f'<xs:import namespace="urn:other" schemaLocation="{location}"/>'
        '<xs:element name="e" type="o:T"/></xs:schema>'
    ).encode()
    doc = etree.fromstring(xsd, schema._schema_parser(), base_url="http://crd.gov.pl/t.xsd")
    with pytest.raises(etree.XMLSchemaParseError):
        etree.XMLSchema(etree.ElementTree(doc))


def test_first_schema_error_reads_line_and_libxml_path() -> None:
    root = etree.fromstring(
        f'<Faktura xmlns="{schema.FA3_NAMESPACE}">\n<Naglowek/>\n</Faktura>'.encode()
    )
    error = schema.first_schema_error(root)
    assert error is not None
    assert error.line == 2 and error.libxml_path and "Naglowek" in error.message


def test_xmlschema_explainer_uses_the_packaged_files() -> None:
    explainer = schema.explainer_schema()
    assert explainer.target_namespace == schema.FA3_NAMESPACE
    urls = [s.url or "" for s in explainer.maps.iter_schemas()]
    fa3 = [url for url in urls if "ksef_client/documents/fa3/schemas/" in url]
    assert len(fa3) == 4 and all(url.startswith("file://") for url in fa3)
    assert not any(url.startswith("http") for url in urls)
