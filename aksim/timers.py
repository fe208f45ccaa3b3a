"""A single background thread that runs callbacks at their due time, under the simulator lock.

Everything time-driven in the simulator (LRO completion, connector start and restarts, lease renewals,
role replication) goes through here, so there is one place where simulated time passes.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
import traceback
from typing import Callable


class Timers:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._generation = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="aksim-timers", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
            self._cv.notify()

    def clear(self) -> None:
        """Drop every pending callback (used when a new scenario is loaded)."""
        with self._cv:
            self._heap.clear()
            self._generation += 1
            self._cv.notify()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(timeout)
                if self._stop:
                    return
                _, _, fn = heapq.heappop(self._heap)
                generation = self._generation
            with self._lock:
                if generation != self._generation:
                    continue
                try:
                    fn()
                except Exception:  # pylint: disable=broad-except
                    traceback.print_exc()
