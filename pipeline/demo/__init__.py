"""The demo (`ops/demo`, `python -m pipeline.demo`) and what it is made of.

- `run`: the orchestration: broker, topic catalog, emulator, workers, progress, summary;
- `workload`: the invoices it sends and the accounting of where each one came out;
- `samples`: deterministic, realistic FA(3) invoices, also used by tests and benchmarks.

Nothing here is imported by the pipeline's stages; the domain (`pipeline.ksef`) knows
none of it.
"""
