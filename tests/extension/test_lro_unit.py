"""Unit tests of the extension's LRO poll interval and If-Match retry loop (no simulator)."""
from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceModifiedError

from azext_virtualnode.lro import ETAG_ATTEMPTS, poll_interval, write_with_etag


class _Resp:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "x"
        self.headers: dict[str, str] = {}

    def text(self) -> str:
        return ""


def err(status: int) -> HttpResponseError:
    cls = ResourceModifiedError if status == 412 else HttpResponseError
    return cls(message=f"status {status}", response=_Resp(status))


@pytest.mark.parametrize("raw,expected", [(None, 2.0), ("0.1", 0.1), ("junk", 2.0), ("-1", 0.0), ("999", 60.0)])
def test_poll_interval_is_a_few_seconds_unless_overridden(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("AZEXT_VIRTUALNODE_POLL_INTERVAL", raising=False)
    else:
        monkeypatch.setenv("AZEXT_VIRTUALNODE_POLL_INTERVAL", raw)
    assert poll_interval() == expected


def test_412_rereads_and_reapplies_until_a_write_succeeds():
    writes, reads = [], []

    def write(state):
        writes.append(state)
        if len(writes) < 3:
            raise err(412)
        return f"done with {state}"

    def reread():
        reads.append(1)
        return f"state{len(reads)}"

    assert write_with_etag("state0", write, reread, "Thing") == "done with state2"
    assert writes == ["state0", "state1", "state2"] and len(reads) == 2


def test_412_is_retried_a_bounded_number_of_times():
    calls = []

    def write(state):
        calls.append(state)
        raise err(412)

    with pytest.raises(HttpResponseError):
        write_with_etag(0, write, lambda: len(calls), "Thing")
    assert len(calls) == ETAG_ATTEMPTS == 3


def test_other_errors_are_not_retried():
    calls = []

    def write(state):
        calls.append(state)
        raise err(409)

    with pytest.raises(HttpResponseError):
        write_with_etag(0, write, lambda: pytest.fail("must not re-read"), "Thing")
    assert calls == [0]
