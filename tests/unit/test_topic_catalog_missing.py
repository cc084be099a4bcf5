"""Which catalog topics a cluster lacks (the worker refuses to start without them)."""

from __future__ import annotations

from pipeline.runtime.topic_admin import missing_from
from topics import CATALOG, CatalogSettings, topic_name


def test_missing_from_names_every_absent_catalog_topic_with_the_prefix() -> None:
    settings = CatalogSettings(prefix="p.")
    names = [topic_name(spec, settings) for spec in CATALOG]
    assert missing_from(names, settings) == []
    assert missing_from([*names[1:], "other"], settings) == names[:1]
    assert missing_from([], settings) == names
    assert all(name.startswith("p.") for name in missing_from([], settings))
    # the same names without the prefix belong to another pipeline on the cluster
    assert missing_from([spec.name for spec in CATALOG], settings) == names
