"""One log line per broker state change instead of one per failed request.

With its broker gone, a worker's Kafka clients (aiokafka under Faust, librdkafka in the
group-less readers) log every failed connect, metadata update, fetch and heartbeat: about
250 lines a second, megabytes of log a minute that hide everything else. This filter sits
on the log handler (one place, whoever logged) and lets through the first such line as
"broker unreachable", then a reminder every `reminder_s` with the count of lines it held
back, and "broker reachable again" once no connection error came for `quiet_s` (the
clients retry every 100 ms while the broker is away, so a quiet spell means they got
through). Every other record passes untouched.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

# Loggers of the Kafka clients, and the messages they write when the broker is away.
CLIENT_LOGGERS = ("aiokafka", "faust.transport", "librdkafka")
FAILURE = re.compile(
    r"Unable connect|Unable to update metadata|Connect call failed|NodeNotReady|"
    r"KafkaConnectionError|Connection at .* closed|Coordinator.*(dead|failed|Not ?Available)|"
    r"Heartbeat .*failed|RequestTimedOut|Connection refused|[Aa]ll brokers (are )?down|"
    r"_TRANSPORT|_ALL_BROKERS_DOWN|Disconnected",
    re.IGNORECASE,
)
STATE_LOGGER = "pipeline.broker"


def is_broker_failure(record: logging.LogRecord) -> bool:
    """A Kafka client's warning or error about a broker it cannot reach."""
    if record.levelno < logging.WARNING or not record.name.startswith(CLIENT_LOGGERS):
        return False
    return FAILURE.search(record.getMessage()) is not None


class BrokerStateFilter(logging.Filter):
    """Collapses broker connection errors into state changes and timed reminders."""

    def __init__(self, reminder_s: float = 30.0, quiet_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.reminder_s = reminder_s
        self.quiet_s = quiet_s
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._last_failure = 0.0
        self._last_said = 0.0
        self._held = 0  # failure lines held back since the last line let through
        self._watch: threading.Thread | None = None

    @property
    def unreachable(self) -> bool:
        return self._down_since is not None

    def filter(self, record: logging.LogRecord) -> bool:
        if not is_broker_failure(record):
            return True
        with self._lock:
            now = self._clock()
            self._last_failure = now
            if self._down_since is None:
                self._down_since = self._last_said = now
                self._held = 0
                self._start_watch()
                _rewrite(record, "broker unreachable (%s: %s)", record.name, record.getMessage())
                return True
            if now - self._last_said < self.reminder_s:
                self._held += 1
                return False
            held, self._held, self._last_said = self._held, 0, now
            _rewrite(record, "broker still unreachable after %.0f s; %d similar lines "
                     "suppressed (latest %s: %s)", now - self._down_since, held, record.name,
                     record.getMessage())
            return True

    def check_recovered(self) -> str | None:
        """The "reachable again" message once failures have stopped for `quiet_s`."""
        with self._lock:
            if self._down_since is None or self._clock() - self._last_failure < self.quiet_s:
                return None
            down_s, held = self._last_failure - self._down_since, self._held
            self._down_since, self._held, self._watch = None, 0, None
        return (f"broker reachable again: no connection error for {self.quiet_s:.0f} s "
                f"after {down_s:.0f} s of them; {held} similar lines suppressed")

    def _start_watch(self) -> None:
        # A thread, not a record, has to notice the quiet: no failure line comes to say so.
        if self._watch is None:
            self._watch = threading.Thread(target=self._watch_recovery, daemon=True,
                                           name="broker-log-watch")
            self._watch.start()

    def _watch_recovery(self) -> None:
        while True:
            time.sleep(min(1.0, self.quiet_s / 2))
            message = self.check_recovered()
            if message is not None:
                logging.getLogger(STATE_LOGGER).warning(message)
                return


def _rewrite(record: logging.LogRecord, msg: str, *args: object) -> None:
    record.msg, record.args = msg, args
    record.name = STATE_LOGGER
    record.exc_info = record.exc_text = None  # the same traceback every 100 ms says nothing
