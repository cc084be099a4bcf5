"""Pipeline stages: each module registers Faust agents on `pipeline.app.app`.

Stages never import each other; they meet only through catalog topics. A worker runs
any subset (`ksef-pipeline worker --stages validate,seal`), so stages scale apart.
"""

STAGES: dict[str, str] = {
    "validate": "pipeline.stages.validate",
    "seal": "pipeline.stages.seal",
    "pack": "pipeline.stages.pack",
    "submit": "pipeline.stages.submit",
    "upo": "pipeline.stages.upo",
    "mode": "pipeline.modes.stage",
}
# Stages that hold events unacknowledged while a batch or session is in progress.
HOLDING_STAGES = frozenset({"pack", "submit", "upo"})
