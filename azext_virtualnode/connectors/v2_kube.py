"""The Kubernetes reads and writes of Virtual Nodes v2, each a GET by name or a selector-scoped list (so the
number of requests follows the number of replicas, never the size of the cluster), plus the two writes
``scale`` needs: cordoning a node (a merge patch) and evicting a pod (the Eviction API, which honours
PodDisruptionBudgets).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from azext_virtualnode.connectors import v2

REGULAR_NODES = "kubernetes.io/os=linux,kubernetes.azure.com/cluster,type!=virtual-kubelet"
VN2_NODES = f"{v2.NODE_LABEL[0]}={v2.NODE_LABEL[1]}"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
MERGE_PATCH = "application/merge-patch+json"
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30,
           "Ti": 2 ** 40}


def quantity(text: Any) -> float:
    """A Kubernetes quantity ('3860m', '4', '13Gi', '9G') as a number (cores, bytes); 0 when absent."""
    if text is None or text == "":
        return 0.0
    m = _QUANTITY.match(str(text))
    if not m or m.group(2) not in _SUFFIX:
        return 0.0
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def infra_selector(release: str) -> str:
    """The release's StatefulSet pods (the VDS manager carries the same name/instance labels, not pod-name)."""
    return v2.INFRA_SELECTOR.format(release=release) + ",statefulset.kubernetes.io/pod-name"


def items(listing: Any) -> list[Any]:
    return list(listing.items or []) if listing is not None else []


def infra_pods(kube: Any, namespace: str, release: str) -> list[Any]:
    return items(kube.get(f"/api/v1/namespaces/{quote(namespace)}/pods", labelSelector=infra_selector(release)))


def vn2_nodes(kube: Any) -> list[Any]:
    return items(kube.get("/api/v1/nodes", labelSelector=VN2_NODES))


def release_nodes(kube: Any, full: str) -> list[Any]:
    pattern = re.compile(rf"^{re.escape(full)}-\d+$")
    return [n for n in vn2_nodes(kube) if pattern.match(n.metadata.name)]


def webhook(kube: Any) -> Any | None:
    return kube.get(f"{WEBHOOKS}/{v2.ADMISSION_NAME}")


def admission_deployment(kube: Any, namespace: str) -> Any | None:
    return kube.get(f"/apis/apps/v1/namespaces/{quote(namespace)}/deployments/{v2.ADMISSION_NAME}")


def priority_class(kube: Any, name: str) -> Any | None:
    return kube.get(f"/apis/scheduling.k8s.io/v1/priorityclasses/{quote(name)}")


def named(kube: Any, kind: str, namespace: str, name: str) -> Any | None:
    """A namespaced core object (secrets, services) by name."""
    return kube.get(f"/api/v1/namespaces/{quote(namespace)}/{kind}/{quote(name)}")


def live(pod: Any) -> bool:
    return (pod.status.phase or "") not in ("Succeeded", "Failed")


# -- capacity ------------------------------------------------------------------------------------------------
@dataclass
class CapacityRead:
    rooms: list[v2.NodeRoom]
    nodes_listed: int


def _schedulable(node: Any) -> bool:
    if node.spec.unschedulable:
        return False
    if any(t.effect in ("NoSchedule", "NoExecute") for t in node.spec.taints or []):
        return False
    cond = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
    return bool(cond and cond.status == "True")


def pod_requests(pod: Any) -> tuple[float, float]:
    """(cores, bytes) a pod requests: the sum of its containers, or its largest init container if bigger."""
    def total(containers: list[Any]) -> tuple[float, float]:
        cpu = mem = 0.0
        for c in containers:
            req = getattr(c.resources.requests, "raw", None) if c.resources and c.resources.requests else None
            req = req or {}
            cpu, mem = cpu + quantity(req.get("cpu")), mem + quantity(req.get("memory"))
        return cpu, mem
    app = total(pod.spec.containers or [])
    inits = [total([c]) for c in pod.spec.init_containers or []]
    return (max([app[0]] + [i[0] for i in inits]), max([app[1]] + [i[1] for i in inits]))


def node_rooms(kube: Any, needed: int, requests: tuple[int, int]) -> CapacityRead:
    """Free room on the regular Linux nodes: one node list (label selector), then the pods of one node after
    another — those with the most allocatable CPU first — one field-selector list each, until ``needed`` infra
    pods of ``requests`` fit (so a cluster with room costs a few reads, whatever its size; only a cluster
    without room is read node by node)."""
    nodes = [n for n in items(kube.get("/api/v1/nodes", labelSelector=REGULAR_NODES)) if _schedulable(n)]
    nodes.sort(key=lambda n: (quantity((n.status.allocatable or {}).get("cpu")),
                              quantity((n.status.allocatable or {}).get("memory"))), reverse=True)
    rooms: list[v2.NodeRoom] = []
    for node in nodes:
        if needed <= 0 or v2.infra_pods_that_fit(rooms, requests) >= needed:
            break
        alloc = node.status.allocatable or {}
        cpu, mem = quantity(alloc.get("cpu")), quantity(alloc.get("memory"))
        for pod in kube.pods_on_node(node.metadata.name):
            if live(pod):
                used = pod_requests(pod)
                cpu, mem = cpu - used[0], mem - used[1]
        rooms.append(v2.NodeRoom(node.metadata.name, int(round(cpu * 1000)), int(mem)))
    return CapacityRead(rooms, len(nodes))


# -- writes ----------------------------------------------------------------------------------------------------
def cordon(kube: Any, name: str) -> bool:
    return kube.write("PATCH", f"/api/v1/nodes/{quote(name)}", {"spec": {"unschedulable": True}},
                      MERGE_PATCH) is not None


def evict(kube: Any, namespace: str, name: str) -> str | None:
    """Ask the Eviction API to evict a pod: None when evicted (or already gone), else why it was refused
    (429: a PodDisruptionBudget does not allow it now)."""
    from kubernetes.client.exceptions import ApiException
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
    try:
        kube.rest.write("POST", f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/eviction", body,
                        timeout=15)
    except ApiException as exc:
        if exc.status == 404:
            return None
        if exc.status == 429:
            return _message(exc) or "a PodDisruptionBudget does not allow it now"
        raise
    return None


def _message(exc: Any) -> str:
    import json
    try:
        body = json.loads(exc.body)
    except (TypeError, ValueError):
        return ""
    causes = ((body.get("details") or {}).get("causes") or [])
    return "; ".join([body.get("message") or ""] + [c.get("message", "") for c in causes if c.get("message")])
