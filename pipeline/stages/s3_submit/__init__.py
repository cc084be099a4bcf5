"""Stage 3, submit: `ksef.batches.packed` -> `ksef.sessions` (and technical corrections).

`submit` is the agent: batch sessions, in deadline order (`batch_queue`), held while a
context's credentials cannot log in (`credential_hold`, `credential_watch`,
`held_releases`), and the interactive lane for technical corrections. Importing the
package loads no agent.
"""
