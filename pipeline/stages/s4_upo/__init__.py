"""Stage 4, upo: `ksef.sessions` -> `ksef.invoices.outcomes` | rejected, and `ksef.upo`.

`settle` is the agent: the UPO and per-invoice results of every closed session, written
once per invoice. Importing the package loads no agent.
"""
