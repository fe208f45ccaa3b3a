"""aksim: pods/eviction (policy/v1) honours PodDisruptionBudgets, as kubectl drain and `scale --force` rely on."""
from __future__ import annotations

import json
from typing import Any

import pytest

from waiting import wait_for


def ready_pod(core: Any, sim: Any, name: str) -> None:
    core.create_namespaced_pod("default", {"metadata": {"name": name, "labels": {"app": "guarded"}},
                                           "spec": {"containers": [{"name": "c", "image": "nginx"}]}})

    def is_ready() -> bool:
        with sim.lock:
            pod = sim.cluster().store.get("pods", "default", name)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod or {}).get("status", {}).get(
            "conditions", []))
    wait_for(is_ready, timeout=20)


def evict(core: Any, name: str) -> None:
    core.create_namespaced_pod_eviction(name, "default", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                          "metadata": {"name": name, "namespace": "default"}})


def test_eviction_respects_the_disruption_budget(sim: Any) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    api = sim.kube_client()
    core, policy = client.CoreV1Api(api), client.PolicyV1Api(api)
    ready_pod(core, sim, "guarded-1")
    policy.create_namespaced_pod_disruption_budget("default", {
        "metadata": {"name": "guard"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}})
    with pytest.raises(ApiException) as refused:
        evict(core, "guarded-1")
    body = json.loads(refused.value.body)
    assert refused.value.status == 429 and body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"][0] == {"reason": "DisruptionBudget", "message": "The disruption budget guard "
                                            "needs 1 healthy pods and has 1 currently"}
    with sim.lock:
        assert sim.cluster().store.get("pods", "default", "guarded-1") is not None

    ready_pod(core, sim, "guarded-2")           # two healthy, one needed: one may go
    evict(core, "guarded-1")
    wait_for(lambda: sim.cluster().store.get("pods", "default", "guarded-1") is None, timeout=10)
    with pytest.raises(ApiException) as again:
        evict(core, "guarded-2")
    assert again.value.status == 429
    with pytest.raises(ApiException) as missing:
        evict(core, "nope")
    assert missing.value.status == 404
