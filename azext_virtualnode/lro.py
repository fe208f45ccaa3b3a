"""ARM writes that neither lose a concurrent change nor wait on a 30 s poll.

- Polling: real AKS and Network long-running operations send no ``Retry-After``; azure-core then sleeps its
  ``polling_interval`` between polls (30 s for ARM clients). Every LRO this extension starts passes
  :func:`poll_interval` instead. azure-core uses it only when the service sends no hint
  (``LROBasePolling._extract_delay``), so a ``Retry-After`` the service does send still wins.
- Optimistic concurrency: a GET–modify–PUT sends ``If-Match`` with the eTag it read. On 412 it re-reads,
  re-applies its one change and tries again (:data:`ETAG_ATTEMPTS` times in all), saying so in the output.
"""
from __future__ import annotations

import os
from typing import Callable, TypeVar

from knack.log import get_logger

from azext_virtualnode._consts import LRO_POLL_INTERVAL, POLL_INTERVAL_ENV

logger = get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")

ETAG_ATTEMPTS = 3


def poll_interval() -> float:
    """Seconds between LRO polls when the service sends no hint; ``AZEXT_VIRTUALNODE_POLL_INTERVAL`` overrides it
    (the tests use a short one against the simulator)."""
    raw = os.environ.get(POLL_INTERVAL_ENV, "")
    try:
        value = float(raw) if raw.strip() else LRO_POLL_INTERVAL
    except ValueError:
        value = LRO_POLL_INTERVAL
    return min(max(value, 0.0), 60.0)


def is_precondition_failed(exc: BaseException) -> bool:
    return getattr(exc, "status_code", None) == 412


def write_with_etag(state: T, write: Callable[[T], R], reread: Callable[[], T], what: str,
                    attempts: int = ETAG_ATTEMPTS) -> R:
    """``write(state)`` applies one change to ``state`` and PUTs it with ``If-Match: <state's eTag>``.

    On 412 (someone else wrote ``what`` after we read it) read it again and re-apply, at most ``attempts`` writes.
    """
    for attempt in range(1, attempts + 1):
        try:
            return write(state)
        except Exception as exc:  # pylint: disable=broad-except
            if not is_precondition_failed(exc) or attempt == attempts:
                raise
            logger.warning("%s was changed by someone else after it was read (412 PreconditionFailed); reading it "
                           "again and re-applying only this command's change (attempt %d of %d).",
                           what, attempt + 1, attempts)
            state = reread()
    raise AssertionError("unreachable")  # pragma: no cover
