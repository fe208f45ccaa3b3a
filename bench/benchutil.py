"""What the benchmark scripts share."""
from __future__ import annotations

import time
from typing import Any


def until(check: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    """Call ``check`` every ``interval`` seconds until it is true; RuntimeError after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
