"""The one door to Kafka and Faust, and what a worker process needs around it.

Stages (`pipeline.stages`) and the mode-state stream (`pipeline.modes`) hold decisions;
everything that touches a broker, a consumer group, a table or the process lives here:

- `app`: the Faust app, `topic()` handles of catalog topics and the one `produce()`;
  `faust_fixes` (commit, rebalance and producer corrections), `recovery_watch`,
  `stop_deadline`, `replay_guard` and `deliveries` (acknowledging events exactly when
  their work is done), `key_hold` (events waiting for a keyring key);
- every Kafka client (`clients`); readers and writers outside Faust: `topic_reads`,
  `topic_follower`, `session_follow`, `forwarding`, `invoice_producer`
  (billing systems' producer), `topic_admin`; `spool_paths` (batch files on disk);
- state beside the tables: `invoice_ledger`;
- the process: `settings` (the worker's and the Kafka client's settings), `logs`,
  `broker_log`, `redaction` (the log processor that masks secrets), `private_files`,
  `secret_files` and `keyring_file` (secret files, 0600), `backoff`.

Importing this package does nothing; `app` builds the Faust app when it is imported.
"""
