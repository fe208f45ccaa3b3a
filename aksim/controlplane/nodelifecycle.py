"""Node-lifecycle controller: a node whose kubelet stopped renewing its Lease becomes Unknown.

Every Lease write in ``kube-node-lease`` counts as a renewal. ``timings.lease_duration`` after the last one,
if the node still exists, its Ready (and pressure) conditions turn ``Unknown`` (``NodeStatusUnknown``,
"Kubelet stopped posting node status.") and it gets the ``node.kubernetes.io/unreachable`` NoSchedule and
NoExecute taints, with a ``NodeNotReady`` event. A renewal later on lets the agent that renews put its
status back. The seeded VM nodes' kubelets are taken to be always alive: their Leases are seeded without
events and never renewed, so they are not watched (no per-node timers on large scenarios). Agents that
renew Leases: the ACI connector (:mod:`aksim.controlplane.connector`) and the VN2 agent
(:mod:`aksim.controlplane.vn2`), which also renews its ghost nodes' Leases.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aksim.controlplane import events
from aksim.controlplane.podutil import Obj
from aksim.controlplane.base import now_rfc3339
from aksim.kube.store import DELETED

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime

LEASE_NAMESPACE = "kube-node-lease"
LIFECYCLE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
UNREACHABLE = "node.kubernetes.io/unreachable"


def mark_unknown(node: Obj) -> None:
    """What the node-lifecycle controller does to a node whose kubelet stopped renewing its Lease."""
    now = now_rfc3339()
    for cond in node.get("status", {}).get("conditions") or []:
        if cond["type"] in LIFECYCLE_CONDITIONS and cond["status"] != "Unknown":
            cond.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                        lastTransitionTime=now)
    taints = node.setdefault("spec", {}).setdefault("taints", [])
    for effect in ("NoSchedule", "NoExecute"):
        if not any(t.get("key") == UNREACHABLE and t.get("effect") == effect for t in taints):
            taints.append({"key": UNREACHABLE, "effect": effect, "timeAdded": now})


class NodeLifecycle:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp
        self._renewed: dict[str, float] = {}       # node -> monotonic time of the last Lease write
        self._checking: set[str] = set()

    def on_lease(self, event_type: str, lease: Obj) -> None:
        if lease["metadata"].get("namespace") != LEASE_NAMESPACE:
            return
        node = lease["metadata"]["name"]
        if event_type == DELETED:
            self._renewed.pop(node, None)
            return
        self._renewed[node] = time.monotonic()
        if node not in self._checking:
            self._checking.add(node)
            self.cp.later(self.cp.timings.lease_duration, lambda: self._check(node))

    def _check(self, node: str) -> None:
        self._checking.discard(node)
        if node not in self._renewed:
            return
        age = time.monotonic() - self._renewed[node]
        if age < self.cp.timings.lease_duration:
            self._checking.add(node)
            self.cp.later(self.cp.timings.lease_duration - age, lambda: self._check(node))
            return
        current = self.cp.store.get_ref("nodes", None, node)
        ready = next((c for c in (current or {}).get("status", {}).get("conditions") or [] if c["type"] == "Ready"),
                     None)
        if current is None or (ready is not None and ready["status"] == "Unknown"):
            return
        marked = self.cp.store.mutate("nodes", None, node, mark_unknown)
        events.record(self.cp, marked, "NodeNotReady", f"Node {node} status is now: NodeNotReady",
                      component="node-controller")
