"""The seal-stage wiring the lead adds to `pipeline.stages.seal`, loaded here with
`--module` so the self-observed outage test sees new invoices take the mode-state."""

from pipeline.modes.follow import mode_follower
from pipeline.modes.snapshot import history_from_mode_state
from pipeline.stages.seal import ModeView
from topics.records import ModeState


def _apply(state: ModeState) -> None:
    ModeView.history = history_from_mode_state(state)
    ModeView.ksef_reachable = state.ksef_reachable


mode_follower().subscribe(_apply)
