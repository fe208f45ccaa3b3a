"""Retrying Kubernetes API calls through the errors real API servers answer routinely.

Retried: 429 (API priority and fairness; its ``Retry-After`` is honoured), 500, 502, 503, 504 (etcd leader
changes, apiserver restarts), connection refused/reset and timeouts — with capped exponential back-off and
full jitter, never past the caller's deadline. Not retried: 401/403 (``ClusterAccessDenied``), TLS and DNS
failures (``ClusterUnreachable``: retrying cannot fix a certificate or a private cluster's name), other 4xx.
When the retries run out, a 5xx becomes ``ApiServerError`` (the server answers, but fails) and a connection
error ``ClusterUnreachable``.
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")

RETRY_STATUSES = (429, 500, 502, 503, 504)
FIRST_DELAY = 0.25
MAX_DELAY = 4.0
MAX_RETRY_AFTER = 10.0


class ClusterUnreachable(Exception):
    """The API server could not be reached (no connection, DNS, TLS). Base class of the cluster read errors."""
    code = "ClusterUnreachable"


class ApiServerError(ClusterUnreachable):
    """The API server answers, but with server errors (5xx, or 429) that outlasted the retries."""
    code = "ApiServerError"


class ClusterAccessDenied(ClusterUnreachable):
    """The API server refused the credentials (401) or the identity lacks the right (403); ``server_message``
    is the API server's own text (who was denied which verb on which resource)."""
    code = "ClusterAccessDenied"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the API server refused the {'credentials' if status == 401 else 'request'} "
                         f"({status}): {message}")
        self.status, self.server_message = status, message

    @classmethod
    def of(cls, exc: Any) -> "ClusterAccessDenied":
        import json
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.reason
        except (TypeError, ValueError, AttributeError):
            message = exc.reason
        return cls(exc.status, str(message or ""))


def _retry_after(exc: Any) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return min(float(value), MAX_RETRY_AFTER) if value is not None else None
    except (TypeError, ValueError):
        return None


def _not_retryable_connection(exc: BaseException) -> bool:
    """TLS and name-resolution failures: retrying does not help."""
    import ssl
    from urllib3.exceptions import NameResolutionError, SSLError
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (ssl.SSLError, SSLError, NameResolutionError)):
            return True
        cur = getattr(cur, "reason", None) or cur.__cause__ or cur.__context__
    return False


def classify(exc: BaseException) -> tuple[bool, float | None, ClusterUnreachable | None]:
    """(retryable, Retry-After seconds, the error to raise when giving up; None: not an API-server error)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError
    if isinstance(exc, ApiException):
        status = exc.status or 0
        if status in (401, 403):
            return False, None, ClusterAccessDenied.of(exc)
        if status in RETRY_STATUSES:
            return True, _retry_after(exc), ApiServerError(f"the API server answered {status} {exc.reason}")
        if status == 0:  # no HTTP answer at all (a broken stream)
            return True, None, ClusterUnreachable(f"cannot reach the API server: {exc.reason}")
        return False, None, ApiServerError(f"the API server answered {status} {exc.reason}")
    if isinstance(exc, (HTTPError, OSError)):
        err = ClusterUnreachable(f"cannot reach the API server: {exc}")
        return not _not_retryable_connection(exc), None, err
    return False, None, None


class Backoff:
    """Capped exponential back-off with full jitter; a server's Retry-After wins when it is longer."""

    def __init__(self, first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> None:
        self.first, self.cap, self.attempt = first, cap, 0

    def next(self, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.first * 2 ** self.attempt)
        self.attempt += 1
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, retry_after) if retry_after is not None else delay

    def reset(self) -> None:
        self.attempt = 0


def call(fn: Callable[[], T], until: float, sleep: Callable[[float], None] = time.sleep,
         on_retry: Callable[[str], None] | None = None) -> T:
    """``fn()``, retried on transient API-server errors until the monotonic time ``until``.

    Raises ClusterAccessDenied / ApiServerError / ClusterUnreachable (chained to the last error) when it
    gives up; exceptions that are not API-server errors propagate unchanged.
    """
    backoff = Backoff()
    while True:
        try:
            return fn()
        except Exception as exc:  # pylint: disable=broad-except
            retryable, retry_after, error = classify(exc)
            if error is None:
                raise
            delay = backoff.next(retry_after)
            if not retryable or time.monotonic() + delay > until:
                raise error from exc
            if on_retry:
                on_retry(f"{error}; retrying in {delay:.1f}s")
            sleep(delay)
