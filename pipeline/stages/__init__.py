"""Pipeline stages, one package each, in flow order: s1_validate_seal, s2_pack,
s3_submit, s4_upo. Each holds its agent module and its plain decision functions. The
worker imports the module of each stage it runs, then calls its `install(app)` where it
has one (validate+seal: a stage object and its record loop, built from settings);
the others still register their Faust agents on `pipeline.runtime.app.app` when
imported.

Stages never import each other (`tests/unit/test_import_rules.py`); they meet only
through catalog topics (`topics/`), and what they share at run time lives in
`pipeline.runtime`. A worker runs any subset (`ksef-pipeline worker --stages
validate,pack`), so stages scale apart.
"""

STAGES: dict[str, str] = {
    "validate": "pipeline.stages.s1_validate_seal.validate",  # validates and seals, one hop
    "pack": "pipeline.stages.s2_pack.pack",
    "submit": "pipeline.stages.s3_submit.submit",
    "upo": "pipeline.stages.s4_upo.settle",  # UPOs and per-invoice results of closed sessions
    "mode": "pipeline.modes.stage",
}
# Former stage names: `seal` became part of `validate` (stage layer v2).
ALIASES: dict[str, str] = {"seal": "validate"}
# Stages that hold events unacknowledged while a batch or session is in progress.
HOLDING_STAGES = frozenset({"pack", "submit", "upo"})
