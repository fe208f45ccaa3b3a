"""The kubelet's crash-loop back-off (pkg/kubelet: flowcontrol.Backoff, 10 s initial, 300 s cap).

Each failed run of a container doubles the wait before the next start: 10 s, 20 s, 40 s ... capped at 300 s.
An entry that has not been bumped for twice the cap (10 min) starts over, so a container that ran that long
before failing waits 10 s again. All durations are multiplied by ``timings.backoff_scale`` (1.0 = real time).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

INITIAL = 10.0
CAP = 300.0
RESET_AFTER = 2 * CAP


@dataclass
class Backoff:
    """Back-off state of one container of one pod."""
    restarts: int = 0
    _delay: float = 0.0                  # unscaled seconds of the last wait
    _last: float | None = None           # monotonic time of the last bump

    def next_delay(self, scale: float, now: float | None = None) -> float:
        """Record one more failure and return the scaled wait before the next start."""
        now = time.monotonic() if now is None else now
        if self._last is not None and now - self._last > RESET_AFTER * scale:
            self._delay = 0.0
        self._delay = INITIAL if not self._delay else min(self._delay * 2, CAP)
        self._last = now
        self.restarts += 1
        return self._delay * scale

    @property
    def current(self) -> float:
        """The last wait in unscaled seconds (what the kubelet's messages show)."""
        return self._delay or INITIAL


def go_duration(seconds: float) -> str:
    """A whole number of seconds in Go's time.Duration notation (``10s``, ``2m40s``, ``5m0s``)."""
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"
