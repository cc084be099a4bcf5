"""The mode-state stream: outage announcements, KSeF state, pending deadlines, alerts.

    Latarnia poller / operator (CLI, HTTP) / observations ─▶ ksef.announcements
    mode-state agent (table of messages) ─▶ ksef.mode ─▶ every worker (follow.ModeFollower)
    sealed / outcomes / rejected + ksef.mode ─▶ deadline tracker ─▶ ksef.deadlines, ksef.alerts

Modules without Faust (safe for commands and tests): `messages` (records, operator and
observation builders), `snapshot` (state, `history_from_mode_state`,
`should_hold_sessions`), `observed` (`OutageWatch`, `HealthReporter`), `pending`
(`DeadlineBook`), `risk`, `alerts`, `latarnia`, `status_page`, `topic_reads`, `replay`.
Worker modules (import `pipeline.runtime.app`): `follow`, `publish`, `state`, `announcements`,
`deadlines`, `web`, and `stage` (the `mode` stage, which registers them all).

Environment (besides KAFKA_* / KSEF_TOPIC_* / KSEF_ENV / KSEF_API_URL; all read by
`pipeline.runtime.settings`):
- KSEF_LATARNIA_URL: Latarnia base (default: the configured KSeF environment's; the
  emulator serves it at `<emulator>/latarnia`)
- KSEF_LATARNIA_POLL_S: poll interval, default 60 (0 = no poller)
- KSEF_LATARNIA_UNREACHABLE_AFTER_S: failing this long -> UNKNOWN + alert (default 2 polls)
- KSEF_OBSERVED_OUTAGE_AFTER_S: KSeF failing our requests this long -> OBSERVED_OUTAGE,
  new invoices offline24, alert (default 60; the submit stage gives it to
  `observed.HealthReporter`)
- KSEF_MODE_TICK_S: how often the state is re-evaluated (default 5)
- KSEF_DEADLINE_CHECK_S: how often deadlines are checked for alerts (default 60)
- KSEF_DEADLINE_RISK_HORIZON_H (default 48), KSEF_DEADLINE_NOMINAL_PER_HOUR (default
  600000): see `risk`

Hooks for other stages (all exist; the stages call them):
- every worker that needs the state: `follow.mode_follower()` (call at import time),
  `.subscribe(fn)`, `.state`, `await .wait_ready()`;
- seal: `snapshot.history_from_mode_state(state)` and `state.ksef_reachable` for
  `ModeView` (see tests/integration/modes/mode_view_hook.py);
- submit: `snapshot.should_hold_sessions(state, include_observed=False)`, and
  `observed.HealthReporter(publish.publish_announcement, lambda: follower.state,
  threshold=...)` whose
  `.observe` is the `KsefClients(observer=...)`;
- rehearsals: `audit.disagreements(records, state)` or `ksef-pipeline deadlines --check`.
"""
