"""When to ask KSeF again whether a session is processed.

KSeF allows 120 status requests a minute and 1,200 an hour per (context, IP) (limits of
2026-09). A batch is often processed within seconds, and every second between its end and
the next poll is a second its invoices wait for their outcome. So the first minute is
polled at most a second apart (60 requests, half the minute's allowance: a second session
of the context fits beside it), later every 5 s as before (720 an hour, within the hour's
allowance). Before, the pauses doubled to 5 s at once, and a batch processed in 3.6 s was
seen at 6.3 s. A poll the limits do not allow waits in the worker's limiter, so many
sessions of one context slow their polls down rather than meet a 429.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StatusPolls:
    first_s: float = 0.1  # the pause after the first poll, doubled from there
    brisk_s: float = 1.0  # the longest pause during the first `brisk_for_s`
    brisk_for_s: float = 55.0
    max_s: float = 5.0  # the longest pause after that

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.brisk_s <= self.max_s or self.brisk_for_s < 0:
            raise ValueError("need 0 < first_s <= brisk_s <= max_s and brisk_for_s >= 0")

    def next_pause(self, pause: float | None, waited: float) -> float:
        """The pause before the next poll, after `pause` (None: after the first poll) and
        `waited` seconds of pauses so far."""
        if pause is None:
            return self.first_s
        cap = self.brisk_s if waited < self.brisk_for_s else self.max_s
        return min(pause * 2, cap)
