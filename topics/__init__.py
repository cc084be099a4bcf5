"""Topic catalog and record types: the only contract between pipeline stages."""

from topics.catalog import BY_NAME, CATALOG, CatalogSettings, TopicSpec, topic_name

__all__ = ["BY_NAME", "CATALOG", "CatalogSettings", "TopicSpec", "topic_name"]
