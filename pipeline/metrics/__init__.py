"""Prometheus metrics of a worker: the families (`families.Metrics`), the worker-wide
scrape-time readings (`worker.watch_worker`) and the `/metrics` page (`page`)."""

from pipeline.metrics.families import (
    CONTENT_TYPE,
    DEADLINE_BUCKETS,
    KSEF_STATES,
    Metrics,
    deadline_bucket,
    status_class,
)

__all__ = ["CONTENT_TYPE", "DEADLINE_BUCKETS", "KSEF_STATES", "Metrics", "deadline_bucket",
           "status_class"]
