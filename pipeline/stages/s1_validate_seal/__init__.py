"""Stage 1, validate+seal: `ksef.invoices.submitted` -> `ksef.invoices.sealed` | rejected.

`validate` is the agent; `submission` (input bounds, every stateless KSeF pre-check) and
`sealing` (mode, deadline, QR links, compressed and encrypted invoice) are its plain
decisions. Importing the package loads no agent.
"""
