"""Polling helper for tests that watch the simulator's state change (tests only; the product uses watches)."""
import time


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, what: str = ""):
    """The first truthy value of ``predicate()``; AssertionError (naming ``what`` and the last value) at timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not reached within {timeout}s: {what} (last: {last!r})")
