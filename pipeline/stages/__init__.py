"""Pipeline stages: each module registers Faust agents on `pipeline.runtime.app.app`.

Stages never import each other; they meet only through catalog topics. A worker runs
any subset (`ksef-pipeline worker --stages validate,pack`), so stages scale apart.
"""

STAGES: dict[str, str] = {
    "validate": "pipeline.stages.validate",  # validates and seals, one hop
    "pack": "pipeline.stages.pack",
    "submit": "pipeline.stages.submit",
    "upo": "pipeline.stages.settle",  # UPOs and per-invoice results of closed sessions
    "mode": "pipeline.modes.stage",
}
# Former stage names: `seal` became part of `validate` (stage layer v2).
ALIASES: dict[str, str] = {"seal": "validate"}
# Stages that hold events unacknowledged while a batch or session is in progress.
HOLDING_STAGES = frozenset({"pack", "submit", "upo"})
