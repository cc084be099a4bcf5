"""Pipeline stages: each module registers Faust agents on `pipeline.app.app`.

Stages never import each other; they meet only through catalog topics. A worker runs
any subset (`ksef-pipeline worker --stages validate,seal`), so stages scale apart.
"""

STAGES: dict[str, str] = {
    "validate": "pipeline.stages.validate",
    "seal": "pipeline.stages.seal",
}
