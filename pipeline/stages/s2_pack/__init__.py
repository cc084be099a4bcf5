"""Stage 2, pack: `ksef.invoices.sealed` -> `ksef.batches.packed` (and duplicates refused).

`pack` is the agent; it owns the duplicate table of its sellers' partitions
(`duplicates`) and fills batches within KSeF's limits (`packing`). Importing the package
loads no agent.
"""
