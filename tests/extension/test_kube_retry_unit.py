"""kube_retry and kube_rest without a cluster: what is retried, how long, and the JSON views."""
from __future__ import annotations

import time

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import NewConnectionError, SSLError

from azext_virtualnode import kube_retry
from azext_virtualnode.kube_rest import Resource, view
from azext_virtualnode.kube_retry import ApiServerError, ClusterAccessDenied, ClusterUnreachable


def api_error(status: int, retry_after: str | None = None) -> ApiException:
    exc = ApiException(status=status, reason="Injected")
    exc.headers = {"Retry-After": retry_after} if retry_after else {}
    return exc


class Flaky:
    def __init__(self, *errors: BaseException) -> None:
        self.errors, self.calls = list(errors), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status):
    sleeps: list[float] = []
    fn = Flaky(api_error(status), api_error(status))
    assert kube_retry.call(fn, time.monotonic() + 60, sleep=sleeps.append) == "ok"
    assert fn.calls == 3 and len(sleeps) == 2


def test_connection_refused_is_retried_but_tls_is_not():
    refused = NewConnectionError(None, "Connection refused")
    fn = Flaky(refused)
    assert kube_retry.call(fn, time.monotonic() + 60, sleep=lambda _: None) == "ok"
    with pytest.raises(ClusterUnreachable) as info:
        kube_retry.call(Flaky(SSLError("certificate verify failed")), time.monotonic() + 60, sleep=lambda _: None)
    assert type(info.value) is ClusterUnreachable and info.value.code == "ClusterUnreachable"


@pytest.mark.parametrize("status", [401, 403])
def test_access_denied_is_not_retried(status):
    fn = Flaky(api_error(status))
    with pytest.raises(ClusterAccessDenied):
        kube_retry.call(fn, time.monotonic() + 60, sleep=lambda _: None)
    assert fn.calls == 1


def test_persistent_5xx_becomes_api_server_error_at_the_deadline():
    fn = Flaky(*[api_error(503)] * 1000)
    slept: list[float] = []
    with pytest.raises(ApiServerError) as info:
        kube_retry.call(fn, time.monotonic() + 2, sleep=lambda s: (slept.append(s), time.sleep(s)))
    assert "503" in str(info.value) and sum(slept) <= 2


def test_retry_after_is_honoured_and_backoff_is_capped_with_jitter():
    sleeps: list[float] = []
    kube_retry.call(Flaky(api_error(429, "3")), time.monotonic() + 60, sleep=sleeps.append)
    assert sleeps == [3.0]
    backoff = kube_retry.Backoff()
    delays = [backoff.next() for _ in range(12)]
    assert all(d <= kube_retry.MAX_DELAY for d in delays) and delays[-1] >= kube_retry.MAX_DELAY / 2
    assert len(set(delays)) > 1


def test_other_errors_propagate_unchanged():
    with pytest.raises(KeyError):
        kube_retry.call(Flaky(KeyError("x")), time.monotonic() + 60)


def test_json_views_read_like_the_models():
    pod = view({"metadata": {"name": "p", "labels": {"app": "x"}, "ownerReferences": [{"kind": "ReplicaSet"}]},
                "status": {"containerStatuses": [{"restartCount": 2,
                                                  "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}})
    assert isinstance(pod, Resource)
    assert pod.metadata.name == "p" and pod.metadata.labels == {"app": "x"}
    assert pod.metadata.owner_references[0].kind == "ReplicaSet"
    assert pod.status.container_statuses[0].restart_count == 2
    assert pod.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert pod.spec is None and pod.status.phase is None
