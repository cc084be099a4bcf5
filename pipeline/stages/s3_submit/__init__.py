"""Stage 3, submit: `ksef.batches.packed` -> `ksef.sessions` (and technical corrections).

Two lanes on one shared context (`context`: KSeF clients, session journal, holds,
keyring). `submit` is the batch lane: batch sessions, in deadline order
(`batch_queue`), held while a context's credentials cannot log in (`credential_hold`,
`credential_watch`, `held_releases`); importing it loads `correction_lane` too, the
interactive lane for technical corrections. Importing the package loads no agent.
"""
