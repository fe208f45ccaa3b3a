"""Deployment and ReplicaSet controllers.

A Deployment owns one ReplicaSet per pod template (``<deployment>-<pod-template-hash>``); the current one is
scaled to ``spec.replicas`` and older ones to zero at once (a rollout without surge pacing). ReplicaSets
create pods from their template and, when scaling down, delete in the real controller's order
(``ActivePodsWithRanks``). Both keep their ``status`` current, so ``kubectl rollout status`` and
``kubectl wait --for=condition=available`` behave as on a real cluster.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime, timezone
from functools import cmp_to_key
from typing import TYPE_CHECKING, Any

from aksim.controlplane import events
from aksim.controlplane.podutil import (Obj, condition, controller_of, is_active, is_ready, key_of, owner_reference,
                                       split_key)
from aksim.controlplane.base import WorkQueue, now_rfc3339, parse_time
from aksim.kube.selectors import label_selector_string
from aksim.kube import admission
from aksim.kube.store import DELETED, KubeError, clone

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def template_hash(template: Obj) -> str:
    """controller.ComputeHash: FNV-32a of the template, rendered with rand.SafeEncodeString."""
    value = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True, separators=(",", ":")).encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHANUMS[ord(c) % len(_SAFE_ALPHANUMS)] for c in str(value))


# -- scale-down order ---------------------------------------------------------------------------------
def _deletion_cost(pod: Obj) -> int:
    try:
        return int((pod["metadata"].get("annotations") or {}).get(DELETION_COST, 0))
    except ValueError:
        return 0


def _ready_time(pod: Obj) -> datetime | None:
    """podReadyTime: when a ready pod became ready; None (zero) when not ready or not recorded."""
    cond = condition(pod, "Ready")
    if not cond or cond.get("status") != "True" or not cond.get("lastTransitionTime"):
        return None
    return parse_time(cond["lastTransitionTime"])


def _max_restarts(pod: Obj) -> tuple[int, int]:
    """maxContainerRestarts: the most restarts of a regular container, then of a sidecar (an init container
    with restartPolicy Always); the regular count decides first."""
    status = pod.get("status") or {}
    sidecars = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []
                if c.get("restartPolicy") == "Always"}
    regular = max((c.get("restartCount", 0) for c in status.get("containerStatuses") or []), default=0)
    sidecar = max((c.get("restartCount", 0) for c in status.get("initContainerStatuses") or []
                   if c.get("name") in sidecars), default=0)
    return regular, sidecar


def _log_rank(when: datetime, now: datetime) -> int:
    nanos = (now - when).total_seconds() * 1e9
    return int(math.log2(nanos)) if nanos > 0 else -1


def _newer_first(a: Obj, b: Obj, ta: datetime | None, tb: datetime | None, now: datetime) -> int:
    """LogarithmicScaleDown: the more recent time bucket goes first; equal buckets compare by UID. A missing
    (zero) time goes before any other (afterOrZero)."""
    if ta is None or tb is None:
        return -1 if ta is None else 1
    diff = _log_rank(ta, now) - _log_rank(tb, now)
    if diff == 0:
        ua, ub = a["metadata"].get("uid", ""), b["metadata"].get("uid", "")
        return -1 if ua < ub else 1 if ua > ub else 0
    return -1 if diff < 0 else 1


def _compare(a: Obj, b: Obj, ranks: dict[str, int], now: datetime) -> int:
    """ActivePodsWithRanks.Less as a comparison: negative when ``a`` should be deleted before ``b``."""
    node_a, node_b = a["spec"].get("nodeName") or "", b["spec"].get("nodeName") or ""
    if node_a != node_b and (not node_a or not node_b):
        return -1 if not node_a else 1
    phase_a = _PHASE_ORDER.get((a.get("status") or {}).get("phase", ""), 0)
    phase_b = _PHASE_ORDER.get((b.get("status") or {}).get("phase", ""), 0)
    if phase_a != phase_b:
        return phase_a - phase_b
    if is_ready(a) != is_ready(b):
        return 1 if is_ready(a) else -1
    if _deletion_cost(a) != _deletion_cost(b):
        return _deletion_cost(a) - _deletion_cost(b)
    if ranks[key_of(a)] != ranks[key_of(b)]:
        return ranks[key_of(b)] - ranks[key_of(a)]
    if is_ready(a) and is_ready(b) and _ready_time(a) != _ready_time(b):
        return _newer_first(a, b, _ready_time(a), _ready_time(b), now)
    for restarts_a, restarts_b in zip(_max_restarts(a), _max_restarts(b)):
        if restarts_a != restarts_b:
            return restarts_b - restarts_a
    created_a = parse_time(a["metadata"].get("creationTimestamp"))
    created_b = parse_time(b["metadata"].get("creationTimestamp"))
    if created_a != created_b:
        return _newer_first(a, b, created_a, created_b, now)
    return 0


def deletion_order(pods: list[Obj], related: list[Obj]) -> list[Obj]:
    """``pods`` sorted so that the first ones are those a real ReplicaSet deletes first when scaling down.

    ``related`` are the active pods of every ReplicaSet of the same owner; a pod ranks higher (goes earlier)
    the more of them share its node.
    """
    per_node = Counter((p["spec"].get("nodeName") or "") for p in related)
    ranks = {key_of(p): per_node[p["spec"].get("nodeName") or ""] for p in pods}
    now = datetime.now(timezone.utc)
    return sorted(pods, key=cmp_to_key(lambda a, b: _compare(a, b, ranks, now)))


# -- helpers ------------------------------------------------------------------------------------------
def _fencepost(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def max_unavailable(deployment: Obj) -> int:
    spec = deployment["spec"]
    replicas = spec.get("replicas", 1)
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _fencepost(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _fencepost(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return min(unavailable, replicas)


def _set_condition(status: Obj, kind: str, value: str, reason: str, message: str) -> None:
    conditions = status.setdefault("conditions", [])
    current = next((c for c in conditions if c["type"] == kind), None)
    if current and (current["status"], current.get("reason"), current.get("message")) == (value, reason, message):
        return
    now = now_rfc3339()
    new = {"type": kind, "status": value, "lastUpdateTime": now,
           "lastTransitionTime": current["lastTransitionTime"] if current and current["status"] == value else now,
           "reason": reason, "message": message}
    if current is None:
        conditions.append(new)
    else:
        current.clear()
        current.update(new)


def _without_zeros(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if v != 0}


def _owned_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == owner["metadata"]["uid"]


class Workloads:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp
        self._deployments: WorkQueue[str] = WorkQueue(cp, lambda: cp.timings.controller, self._sync_deployment)
        self._replicasets: WorkQueue[str] = WorkQueue(cp, lambda: cp.timings.controller, self._sync_replicaset)

    # -- events ---------------------------------------------------------------------------------------
    def on_workload(self, event_type: str, resource: str, obj: Obj) -> None:
        if event_type == DELETED:
            return
        if resource == "deployments.apps":
            self._deployments.add(key_of(obj))
            return
        self._replicasets.add(key_of(obj))
        owner = controller_of(obj)
        if owner and owner.get("kind") == "Deployment":
            self._deployments.add(f"{obj['metadata']['namespace']}/{owner['name']}")

    def on_pod(self, pod: Obj) -> None:
        owner = controller_of(pod)
        if owner and owner.get("kind") == "ReplicaSet":
            self._replicasets.add(f"{pod['metadata']['namespace']}/{owner['name']}")

    # -- ReplicaSet -----------------------------------------------------------------------------------
    def _active_pods(self, rs: Obj) -> list[Obj]:
        selector = label_selector_string(rs["spec"].get("selector"))
        pods = self.cp.store.list_page("pods", rs["metadata"]["namespace"], selector).items
        return [p for p in pods if _owned_by(p, rs) and is_active(p)]

    def _siblings(self, rs: Obj) -> list[Obj]:
        owner = controller_of(rs)
        if owner is None:
            return [rs]
        rses = self.cp.store.list_page("replicasets.apps", rs["metadata"]["namespace"]).items
        return [r for r in rses if (controller_of(r) or {}).get("uid") == owner.get("uid")]

    def _sync_replicaset(self, key: str) -> None:
        namespace, name = split_key(key)
        rs = self.cp.store.get_ref("replicasets.apps", namespace, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = self._active_pods(rs)
        diff = len(pods) - rs["spec"].get("replicas", 1)
        if diff < 0:
            for _ in range(-diff):
                self._create_pod(rs)
        elif diff > 0:
            related = [p for sibling in self._siblings(rs) for p in self._active_pods(sibling)]
            for victim in deletion_order(pods, related)[:diff]:
                self.cp.store.delete("pods", namespace, victim["metadata"]["name"])
                events.record(self.cp, rs, "SuccessfulDelete", f"Deleted pod: {victim['metadata']['name']}",
                              component="replicaset-controller")
        self._update_replicaset_status(rs)

    def _create_pod(self, rs: Obj) -> None:
        template = rs["spec"].get("template") or {}
        meta = clone(template.get("metadata") or {})
        meta.update(generateName=f"{rs['metadata']['name']}-", namespace=rs["metadata"]["namespace"],
                    ownerReferences=[owner_reference(rs)])
        meta.pop("name", None)
        pod = {"metadata": meta, "spec": clone(template.get("spec") or {})}
        try:
            admission.admit(self.cp.store, "create", "pods", pod, None)
        except KubeError as err:        # the API server refused it (PriorityClass missing, webhook failing)
            events.record(self.cp, rs, "FailedCreate", f"Error creating: {err.message}", type_=events.WARNING,
                          component="replicaset-controller")
            return
        pod = self.cp.store.create("pods", pod)
        events.record(self.cp, rs, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                      component="replicaset-controller")

    def _update_replicaset_status(self, rs: Obj) -> None:
        pods = self._active_pods(rs)
        ready = sum(1 for p in pods if is_ready(p))
        counts = {"fullyLabeledReplicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
                  "observedGeneration": rs["metadata"].get("generation", 1)}
        status = {"replicas": len(pods), **_without_zeros(counts)}

        def apply(obj: Obj) -> None:
            obj["status"] = {**status, **{k: v for k, v in (obj.get("status") or {}).items()
                                          if k == "conditions"}}
        self.cp.store.mutate("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"], apply)

    # -- Deployment -----------------------------------------------------------------------------------
    def _sync_deployment(self, key: str) -> None:
        namespace, name = split_key(key)
        deployment = self.cp.store.get_ref("deployments.apps", namespace, name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        template_key = template_hash(deployment["spec"].get("template") or {})
        rses = [r for r in self.cp.store.list_page("replicasets.apps", namespace).items
                if _owned_by(r, deployment)]
        desired = deployment["spec"].get("replicas", 1)
        new = next((r for r in rses if r["metadata"].get("labels", {}).get(HASH_LABEL) == template_key), None)
        if new is None:
            new = self._create_replicaset(deployment, template_key, desired, rses)
        elif new["spec"].get("replicas", 1) != desired:
            new = self._scale(deployment, new, desired)
        for old in rses:
            if old["metadata"]["uid"] != new["metadata"]["uid"] and old["spec"].get("replicas", 1) > 0:
                self._scale(deployment, old, 0)
        self._update_deployment_status(deployment, new)

    def _create_replicaset(self, deployment: Obj, template_key: str, replicas: int, rses: list[Obj]) -> Obj:
        spec = deployment["spec"]
        template = clone(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = template_key
        selector = clone(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = template_key
        revision = 1 + max((int((r["metadata"].get("annotations") or {}).get(REVISION, 0)) for r in rses), default=0)
        name = f"{deployment['metadata']['name']}-{template_key}"
        rs = self.cp.store.create("replicasets.apps", {
            "metadata": {"name": name, "namespace": deployment["metadata"]["namespace"],
                         "labels": dict(template["metadata"]["labels"]),
                         "annotations": {"deployment.kubernetes.io/desired-replicas": str(replicas),
                                         "deployment.kubernetes.io/max-replicas": str(replicas),
                                         REVISION: str(revision)},
                         "ownerReferences": [owner_reference(deployment)]},
            "spec": {"replicas": replicas, "minReadySeconds": spec.get("minReadySeconds", 0), "selector": selector,
                     "template": template}})
        events.record(self.cp, deployment, "ScalingReplicaSet", f"Scaled up replica set {name} to {replicas}",
                      component="deployment-controller")
        return rs

    def _scale(self, deployment: Obj, rs: Obj, replicas: int) -> Obj:
        before = rs["spec"].get("replicas", 1)

        def apply(obj: Obj) -> None:
            obj["spec"]["replicas"] = replicas
            obj["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = \
                str(deployment["spec"].get("replicas", 1))
        scaled = self.cp.store.mutate("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"], apply)
        direction = "up" if replicas > before else "down"
        events.record(self.cp, deployment, "ScalingReplicaSet",
                      f"Scaled {direction} replica set {rs['metadata']['name']} to {replicas} from {before}",
                      component="deployment-controller")
        return scaled

    def _update_deployment_status(self, deployment: Obj, new: Obj) -> None:
        namespace = deployment["metadata"]["namespace"]
        rses = [r for r in self.cp.store.list_page("replicasets.apps", namespace).items if _owned_by(r, deployment)]
        current = self.cp.store.get_ref("replicasets.apps", namespace, new["metadata"]["name"]) or new

        def total(field: str, of: list[Obj]) -> int:
            return sum((r.get("status") or {}).get(field, 0) for r in of)
        desired = deployment["spec"].get("replicas", 1)
        available = total("availableReplicas", rses)
        replicas, updated = total("replicas", rses), total("replicas", [current])
        counts = {"observedGeneration": deployment["metadata"].get("generation", 1), "replicas": replicas,
                  "updatedReplicas": updated, "readyReplicas": total("readyReplicas", rses),
                  "availableReplicas": available,
                  "unavailableReplicas": max(0, sum(r["spec"].get("replicas", 1) for r in rses) - available)}
        rs_name = current["metadata"]["name"]
        complete = updated == desired and replicas == desired and available == desired

        def apply(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            for field in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                          "unavailableReplicas"):
                status.pop(field, None)
            status.update(_without_zeros(counts))
            if available >= desired - max_unavailable(obj):
                _set_condition(status, "Available", "True", "MinimumReplicasAvailable",
                               "Deployment has minimum availability.")
            else:
                _set_condition(status, "Available", "False", "MinimumReplicasUnavailable",
                               "Deployment does not have minimum availability.")
            if complete:
                _set_condition(status, "Progressing", "True", "NewReplicaSetAvailable",
                               f'ReplicaSet "{rs_name}" has successfully progressed.')
            else:
                _set_condition(status, "Progressing", "True", "ReplicaSetUpdated",
                               f'ReplicaSet "{rs_name}" is progressing.')
            revision = (current["metadata"].get("annotations") or {}).get(REVISION)
            if revision:
                obj["metadata"].setdefault("annotations", {})[REVISION] = revision
        self.cp.store.mutate("deployments.apps", namespace, deployment["metadata"]["name"], apply)
