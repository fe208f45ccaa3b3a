"""Scheduler predicates, failure messages and the ReplicaSet scale-down order, without a simulator."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from aksim.controlplane.podranking import deletion_order
from aksim.controlplane.podutil import memory_bytes, milli_cpu, pod_requests, qos_class, template_hash
from aksim.controlplane.rollout import max_surge, max_unavailable
from aksim.controlplane.scheduler import (NodeInfo, PodSpec, Scheduler, Usage, expression_matches,
                                          feasible_nodes_to_find, fit_error, node_info, preference_score,
                                          term_matches, tolerates, untolerated_taint)

VK_TAINT = {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None,
         cpu: int = 2000, memory: int = 8 << 30, pods: int = 30, unschedulable: bool = False) -> NodeInfo:
    return NodeInfo(name, labels or {}, taints or [], unschedulable, cpu, memory, pods, "10.240.0.4", 1)


def pod_spec(**spec: Any) -> PodSpec:
    return PodSpec.of({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], **spec}})


def scheduler(*nodes: NodeInfo, usage: dict[str, Usage] | None = None) -> Scheduler:
    sched = Scheduler(SimpleNamespace(timings=SimpleNamespace(controller=0.01)))   # type: ignore[arg-type]
    sched.nodes = {n.name: n for n in nodes}
    sched.usage = usage or {}
    return sched


# -- tolerations ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("toleration,expected", [
    ({"key": "virtual-kubelet.io/provider", "operator": "Exists"}, True),
    ({"key": "virtual-kubelet.io/provider", "operator": "Equal", "value": "azure"}, True),
    ({"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}, True),
    ({"key": "virtual-kubelet.io/provider", "operator": "Equal", "value": "aws"}, False),
    ({"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoExecute"}, False),
    ({"operator": "Exists"}, True),                                   # empty key + Exists tolerates everything
    ({"key": "azure.com/aci", "effect": "NoSchedule"}, False),
])
def test_tolerates(toleration: dict[str, Any], expected: bool) -> None:
    assert tolerates(toleration, VK_TAINT) is expected


def test_only_noschedule_and_noexecute_taints_filter() -> None:
    soft = {"key": "k", "value": "v", "effect": "PreferNoSchedule"}
    hard = {"key": "k", "value": "v", "effect": "NoExecute"}
    assert untolerated_taint([], [soft]) is None
    assert untolerated_taint([], [soft, hard]) == hard


# -- node affinity --------------------------------------------------------------------------------------
@pytest.mark.parametrize("op,values,labels,expected", [
    ("In", ["a", "b"], {"k": "b"}, True), ("In", ["a"], {}, False),
    ("NotIn", ["virtual-kubelet"], {"k": "virtual-kubelet"}, False), ("NotIn", ["x"], {}, True),
    ("Exists", [], {"k": ""}, True), ("Exists", [], {}, False),
    ("DoesNotExist", [], {}, True), ("DoesNotExist", [], {"k": "1"}, False),
    ("Gt", ["3"], {"k": "4"}, True), ("Gt", ["3"], {"k": "3"}, False), ("Gt", ["3"], {"k": "x"}, False),
    ("Lt", ["3"], {"k": "2"}, True), ("Lt", ["3"], {}, False),
])
def test_node_selector_operators(op: str, values: list[str], labels: dict[str, str], expected: bool) -> None:
    assert expression_matches({"key": "k", "operator": op, "values": values}, labels) is expected


def test_node_selector_terms() -> None:
    assert term_matches({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}, {}, "n1")
    assert not term_matches({}, {"a": "b"}, "n1")          # an empty term selects nothing
    both = {"matchExpressions": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "In", "values": ["1"]}]}
    assert term_matches(both, {"a": "x", "b": "1"}, "n") and not term_matches(both, {"a": "x"}, "n")


def test_preferred_terms_sum_matching_weights() -> None:
    spec = pod_spec(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [{"key": "type", "operator": "NotIn",
                                                           "values": ["virtual-kubelet"]}]}},
        {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["1"]}]}}]}})
    assert preference_score(spec, node("a", {"zone": "1"})) == 6
    assert preference_score(spec, node("vk", {"type": "virtual-kubelet"})) == 0


# -- filtering ------------------------------------------------------------------------------------------
def test_filter_reasons_follow_the_default_plugin_order() -> None:
    sched = scheduler(usage={"full": Usage(cpu=1900, memory=0, pods=3)})
    spec = pod_spec(nodeSelector={"disk": "ssd"}, containers=[{"name": "c", "resources": {
        "requests": {"cpu": "500m", "memory": "1Gi"}}}])
    assert sched.filter(spec, node("cordoned", {"disk": "ssd"}, [VK_TAINT], unschedulable=True)).reasons == \
        ["node(s) were unschedulable"]
    tainted = sched.filter(spec, node("vk", {"disk": "ssd"}, [VK_TAINT]))
    assert tainted.reasons == ["node(s) had untolerated taint {virtual-kubelet.io/provider: azure}"]
    assert not tainted.resolvable
    assert sched.filter(spec, node("hdd", {"disk": "hdd"})).reasons == \
        ["node(s) didn't match Pod's node affinity/selector"]
    short = sched.filter(spec, node("full", {"disk": "ssd"}, cpu=2000, memory=512 << 20, pods=3))
    assert short.reasons == ["Too many pods", "Insufficient cpu", "Insufficient memory"] and short.resolvable
    assert sched.filter(spec, node("ok", {"disk": "ssd"})) is None


def test_required_affinity_and_tolerated_taint_fit() -> None:
    spec = pod_spec(tolerations=[{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                    affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"key": "type", "operator": "In",
                                                                     "values": ["virtual-kubelet"]}]}]}}})
    sched = scheduler()
    assert sched.filter(spec, node("vk", {"type": "virtual-kubelet"}, [VK_TAINT])) is None
    assert sched.filter(spec, node("vm")) is not None


def test_not_ready_nodes_carry_the_lifecycle_taints() -> None:
    base = {"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "30"}}}
    unknown = {**base, "status": {**base["status"], "conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert node_info(unknown, 1).taints == [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]
    assert node_info(base, 1).taints == [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
    ready = {**base, "status": {**base["status"], "conditions": [{"type": "Ready", "status": "True"}]}}
    info = node_info(ready, 1)
    assert info.taints == [] and (info.cpu, info.memory, info.pods) == (2000, 4 << 30, 30)


def test_large_clusters_are_sampled_like_kube_scheduler() -> None:
    assert [feasible_nodes_to_find(n) for n in (3, 99, 100, 1000, 5000, 50000)] == [3, 99, 100, 420, 500, 2500]


def test_fit_error_has_the_real_message_form() -> None:
    message = fit_error(4, Counter({"Insufficient cpu": 3,
                                    "node(s) had untolerated taint {virtual-kubelet.io/provider: azure}": 1}),
                        Counter({"No preemption victims found for incoming pod": 3,
                                 "Preemption is not helpful for scheduling": 1}))
    assert message == ("0/4 nodes are available: 1 node(s) had untolerated taint {virtual-kubelet.io/provider: "
                       "azure}, 3 Insufficient cpu. preemption: 0/4 nodes are available: 1 Preemption is not "
                       "helpful for scheduling, 3 No preemption victims found for incoming pod.")
    assert fit_error(0, Counter(), Counter()) == "no nodes available to schedule pods"


# -- resources ------------------------------------------------------------------------------------------
def test_quantities_and_requests() -> None:
    assert [milli_cpu(q) for q in ("100m", "1", "0.5", "2.5", 3)] == [100, 1000, 500, 2500, 3000]
    assert [memory_bytes(q) for q in ("64Mi", "1Gi", "1e3", "128M", "4Ti")] == \
        [64 << 20, 1 << 30, 1000, 128_000_000, 4 << 40]
    pod = {"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                                   {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
                    "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
                    "overhead": {"cpu": "10m"}}}
    assert pod_requests(pod) == (2010, (64 << 20) + (1 << 30), 2010, (64 << 20) + (1 << 30))
    assert pod_requests({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}) == (0, 0, 200, 400 << 20)
    assert qos_class(pod) == "Burstable"
    assert qos_class({"spec": {"containers": [{"name": "a"}]}}) == "BestEffort"


# -- ReplicaSet scale-down order ------------------------------------------------------------------------
def _ts(seconds_ago: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rs_pod(name: str, node_name: str = "n1", phase: str = "Running", ready: bool = True, age: float = 1000,
           ready_age: float = 900, cost: int | None = None, restarts: int = 0) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}", "creationTimestamp": _ts(age)}
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    conditions = [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": _ts(ready_age)}]
    return {"metadata": meta, "spec": {"nodeName": node_name},
            "status": {"phase": phase, "conditions": conditions, "containerStatuses": [{"restartCount": restarts}]}}


def order(*pods: dict[str, Any], related: list[dict[str, Any]] | None = None) -> list[str]:
    return [p["metadata"]["name"] for p in deletion_order(list(pods), list(related or pods))]


def test_scale_down_order_matches_active_pods_with_ranks() -> None:
    assert order(rs_pod("running"), rs_pod("unscheduled", node_name="", phase="Pending")) == ["unscheduled", "running"]
    assert order(rs_pod("running"), rs_pod("unknown", phase="Unknown"), rs_pod("pending", phase="Pending")) == \
        ["pending", "unknown", "running"]
    assert order(rs_pod("ready"), rs_pod("unready", ready=False)) == ["unready", "ready"]
    assert order(rs_pod("costly", cost=100), rs_pod("cheap", cost=-5), rs_pod("default")) == \
        ["cheap", "default", "costly"]
    assert order(rs_pod("young", ready_age=2), rs_pod("old", ready_age=5000)) == ["young", "old"]
    assert order(rs_pod("stable"), rs_pod("crashy", restarts=7)) == ["crashy", "stable"]
    assert order(rs_pod("new", age=3, ready_age=900), rs_pod("ancient", age=90000, ready_age=900)) == \
        ["new", "ancient"]


def test_scale_down_prefers_the_most_crowded_node() -> None:
    vm = [rs_pod(f"vm{i}", node_name=f"vm{i % 2}", ready_age=1) for i in range(4)]     # 2 per VM
    vk = [rs_pod(f"vk{i}", node_name="virtual-node-aci-linux", ready_age=5000) for i in range(3)]
    assert order(*vm, *vk)[:3] == ["vk0", "vk1", "vk2"]


# -- Deployment helpers ---------------------------------------------------------------------------------
def test_template_hash_is_stable_and_safe() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    value = template_hash(template)
    assert value == template_hash({"spec": template["spec"], "metadata": template["metadata"]})
    assert value != template_hash({**template, "spec": {"containers": [{"name": "c", "image": "httpd"}]}})
    assert 1 <= len(value) <= 10 and set(value) <= set("bcdfghjklmnpqrstvwxz2456789")


@pytest.mark.parametrize("strategy,replicas,expected", [
    ({}, 4, 1), ({}, 1, 0), ({"type": "Recreate"}, 4, 0),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}, 3, 1),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}, 5, 2),
])
def test_max_unavailable(strategy: dict[str, Any], replicas: int, expected: int) -> None:
    assert max_unavailable({"spec": {"replicas": replicas, "strategy": strategy}}) == expected


@pytest.mark.parametrize("strategy,replicas,expected", [
    ({}, 4, 1), ({}, 1, 1), ({}, 0, 0), ({"type": "Recreate"}, 4, 0),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%"}}, 5, 3),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}, 3, 0),
])
def test_max_surge(strategy: dict[str, Any], replicas: int, expected: int) -> None:
    assert max_surge({"spec": {"replicas": replicas, "strategy": strategy}}) == expected


def test_scale_down_zero_times_and_sidecar_restarts() -> None:
    """afterOrZero: a ready pod without a recorded ready time, or a pod without a creation time, goes first;
    equal regular restarts fall back to sidecar (restartable init container) restarts."""
    no_time = rs_pod("no-ready-time")
    no_time["status"]["conditions"][0].pop("lastTransitionTime")
    assert order(rs_pod("young", ready_age=2), no_time) == ["no-ready-time", "young"]
    unborn = rs_pod("unborn", ready_age=900)
    unborn["metadata"].pop("creationTimestamp")
    assert order(rs_pod("new", age=3, ready_age=900), unborn) == ["unborn", "new"]
    sidecar = rs_pod("sidecar-crashy")
    sidecar["spec"]["initContainers"] = [{"name": "proxy", "restartPolicy": "Always"}]
    sidecar["status"]["initContainerStatuses"] = [{"name": "proxy", "restartCount": 4}]
    assert order(rs_pod("calm"), sidecar) == ["sidecar-crashy", "calm"]


def test_scale_down_of_a_burst_set_with_even_counts_does_not_favour_the_virtual_node() -> None:
    """The real ranking has no notion of virtual nodes: the virtual-node pods go first only while the virtual
    node holds more replicas than any regular node. With even counts the most recently ready pods go first,
    wherever they run (here the regular ones)."""
    vm = [rs_pod(f"vm{i}", node_name=f"vm{i % 2}", ready_age=2) for i in range(4)]               # 2 per VM
    vk = [rs_pod(f"vk{i}", node_name="virtual-node-aci-linux", ready_age=5000) for i in range(2)]  # 2 on ACI
    assert set(order(*vm, *vk)[:4]) == {"vm0", "vm1", "vm2", "vm3"}
