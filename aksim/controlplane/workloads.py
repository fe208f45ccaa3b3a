"""Deployment and ReplicaSet controllers.

A Deployment owns one ReplicaSet per pod template (``<deployment>-<pod-template-hash>``) and rolls a new
template out as kube-controller-manager does (``rolling.go``, ``recreate.go``, ``sync.go``): a RollingUpdate
scales the new ReplicaSet up while all replicas stay within ``replicas + maxSurge`` and the old ones down while
``replicas - maxUnavailable`` stay available (unhealthy old replicas first), one step per sync, the next one
when a ReplicaSet's status changes; a Recreate scales every old ReplicaSet to zero and creates (or scales up)
the new one only once no old pod is left. A change of ``spec.replicas`` (or a paused Deployment) only scales:
the one active ReplicaSet, or, mid-rollout, every active one in proportion. ReplicaSets create pods from their
template, delete in the real controller's order (``ActivePodsWithRanks``) when scaling down, and count a pod
available once it has been ready for ``minReadySeconds``. Both keep their ``status`` (and the Deployment its
Available/Progressing conditions, progress deadline included) current, so ``kubectl rollout status`` and
``kubectl wait --for=condition=available`` behave as on a real cluster.
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from functools import cmp_to_key
from typing import TYPE_CHECKING, Any

from aksim.controlplane import events
from aksim.controlplane.podutil import (Obj, condition, controller_of, is_active, is_ready, is_terminated, key_of,
                                        owner_reference, split_key)
from aksim.controlplane.base import WorkQueue, now_rfc3339, parse_time
from aksim.kube.selectors import label_selector_string
from aksim.kube import admission
from aksim.kube.store import DELETED, KubeError, clone

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
_NOT_COPIED = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
               MAX_REPLICAS, "deprecated.deployment.rollback.to"}
_MAX_HISTORY_CHARS = 2000
_MAX_INT32 = 2 ** 31 - 1
AVAILABLE, PROGRESSING = "Available", "Progressing"
_COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")
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


def _is_rolling(deployment: Obj) -> bool:
    return (deployment["spec"].get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def _fenceposts(deployment: Obj) -> tuple[int, int]:
    """ResolveFenceposts: maxSurge rounds up, maxUnavailable down (both 25% unless set); both zero make
    maxUnavailable 1."""
    replicas = _replicas(deployment)
    rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = _fencepost(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _fencepost(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    return surge, 1 if surge == 0 and unavailable == 0 else unavailable


def max_surge(deployment: Obj) -> int:
    return _fenceposts(deployment)[0] if _is_rolling(deployment) else 0


def max_unavailable(deployment: Obj) -> int:
    replicas = _replicas(deployment)
    if not _is_rolling(deployment) or replicas == 0:
        return 0
    return min(_fenceposts(deployment)[1], replicas)


def _replicas(obj: Obj) -> int:
    return obj["spec"].get("replicas", 1)


def _total(rses: list[Obj], field: str | None = None) -> int:
    """Summed ``spec.replicas`` (no field), or a summed ``status`` field."""
    if field is None:
        return sum(_replicas(r) for r in rses)
    return sum((r.get("status") or {}).get(field, 0) for r in rses)


def _active(rses: list[Obj]) -> list[Obj]:
    return [r for r in rses if _replicas(r) > 0]


def _annotation_int(obj: Obj, name: str) -> int | None:
    try:
        return int((obj["metadata"].get("annotations") or {})[name])
    except (KeyError, ValueError):
        return None


def _by_creation(rses: list[Obj], newest_first: bool = False) -> list[Obj]:
    """ReplicaSetsByCreationTimestamp: older first, equal times by name."""
    return sorted(rses, key=lambda r: (r["metadata"].get("creationTimestamp") or "", r["metadata"]["name"]),
                  reverse=newest_first)


def _by_size(rses: list[Obj], newer_first: bool) -> list[Obj]:
    """ReplicaSetsBySizeNewer / BySizeOlder: the largest first; equal sizes newer (or older) first."""
    return sorted(_by_creation(rses, newest_first=newer_first), key=lambda r: -_replicas(r))


def _by_revision(rses: list[Obj]) -> list[Obj]:
    return sorted(_by_creation(rses), key=lambda r: _annotation_int(r, REVISION) or 0)


def _max_revision(rses: list[Obj]) -> int:
    return max((_annotation_int(r, REVISION) or 0 for r in rses), default=0)


def _find_new(deployment: Obj, rses: list[Obj]) -> tuple[Obj | None, list[Obj]]:
    """FindNewReplicaSet: the oldest ReplicaSet of the current pod template; the others are old."""
    template_key = template_hash(deployment["spec"].get("template") or {})
    ordered = _by_creation(rses)
    new = next((r for r in ordered if (r["metadata"].get("labels") or {}).get(HASH_LABEL) == template_key), None)
    return new, [r for r in ordered if r is not new]


def _new_rs_replicas(deployment: Obj, rses: list[Obj], new_replicas: int) -> int:
    """NewRSNewReplicas: Recreate wants every replica; a rolling update adds what maxSurge leaves room for."""
    replicas = _replicas(deployment)
    if not _is_rolling(deployment):
        return replicas
    room = replicas + max_surge(deployment) - _total(rses)
    return new_replicas + min(room, replicas - new_replicas) if room > 0 else new_replicas


def _is_scaling_event(deployment: Obj, rses: list[Obj]) -> bool:
    """isScalingEvent: an active ReplicaSet was sized for another ``spec.replicas`` (desired-replicas)."""
    desired = (_annotation_int(r, DESIRED_REPLICAS) for r in _active(rses))
    return any(d is not None and d != _replicas(deployment) for d in desired)


def _active_or_latest(new: Obj | None, olds: list[Obj]) -> Obj | None:
    """FindActiveOrLatest: the only ReplicaSet with replicas, or the newest when none has any."""
    newest_first = _by_creation(olds, newest_first=True)
    active = _active(newest_first + ([new] if new is not None else []))
    if not active:
        return new if new is not None else (newest_first[0] if newest_first else None)
    return active[0] if len(active) == 1 else None


def _saturated(deployment: Obj, rs: Obj | None) -> bool:
    replicas = _replicas(deployment)
    return (rs is not None and _replicas(rs) == replicas and _annotation_int(rs, DESIRED_REPLICAS) == replicas
            and (rs.get("status") or {}).get("availableReplicas", 0) == replicas)


def _proportion(deployment: Obj, rs: Obj, to_add: int, added: int) -> int:
    """GetReplicaSetProportion: this ReplicaSet's share of a scaling that happens mid-rollout."""
    if _replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(deployment, rs)
    return min(fraction, to_add - added) if to_add > 0 else max(fraction, to_add - added)


def _fraction(deployment: Obj, rs: Obj) -> int:
    if _replicas(deployment) == 0:
        return -_replicas(rs)
    before = _annotation_int(rs, MAX_REPLICAS) or (deployment.get("status") or {}).get("replicas", 0)
    if before == 0:
        return 0
    size = _replicas(rs) * (_replicas(deployment) + max_surge(deployment)) / before
    return math.floor(size + 0.5) - _replicas(rs)


def _copy_annotations(deployment: Obj, annotations: dict[str, str], revision: int) -> bool:
    """SetNewReplicaSetAnnotations: the Deployment's annotations (but apply's and the controller's own) and a
    revision raised to ``revision``; a ReplicaSet that gets a new revision (a rollback) keeps its old numbers in
    revision-history. True when something changed."""
    before = dict(annotations)
    for key, value in (deployment["metadata"].get("annotations") or {}).items():
        if key not in _NOT_COPIED:
            annotations[key] = value
    old = annotations.get(REVISION) or ""
    try:
        old_revision = int(old) if old else 0
    except ValueError:
        annotations.clear()
        annotations.update(before)
        return False
    if old_revision < revision:
        annotations[REVISION] = str(revision)
        if old:
            _append_history(annotations, old)
    return annotations != before


def _append_history(annotations: dict[str, str], revision: str) -> None:
    history = annotations.get(REVISION_HISTORY, "")
    if not history:
        annotations[REVISION_HISTORY] = revision
        return
    parts = history.split(",")
    length, start = len(history) + len(revision) + 1, 0
    while length > _MAX_HISTORY_CHARS and start < len(parts):
        length -= len(parts[start]) + 1
        start += 1
    if length <= _MAX_HISTORY_CHARS:
        annotations[REVISION_HISTORY] = ",".join(parts[start:] + [revision])


def _until_available(pod: Obj, min_ready: int, now: datetime) -> float | None:
    """IsPodAvailable for a ready pod: 0 once it has been ready longer than ``minReadySeconds``, else the seconds
    left (None when its ready time is missing, so it never counts)."""
    if min_ready <= 0:
        return 0.0
    since = _ready_time(pod)
    if since is None:
        return None
    left = (since + timedelta(seconds=min_ready) - now).total_seconds()
    return 0.0 if left < 0 else max(left, 0.001)


# -- Deployment status --------------------------------------------------------------------------------
def _find_condition(status: Obj, kind: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def _replace_condition(status: Obj, kind: str, value: str, reason: str, message: str) -> None:
    """The condition, new (at the end of the list); ``lastTransitionTime`` stays while the status does."""
    current = _find_condition(status, kind)
    now = now_rfc3339()
    new = {"type": kind, "status": value, "lastUpdateTime": now,
           "lastTransitionTime": current["lastTransitionTime"] if current and current["status"] == value else now,
           "reason": reason, "message": message}
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != kind] + [new]


def _set_condition(status: Obj, kind: str, value: str, reason: str, message: str) -> None:
    """SetDeploymentCondition: nothing changes while status and reason are the same (the message included)."""
    current = _find_condition(status, kind)
    if current and (current["status"], current.get("reason")) == (value, reason):
        return
    _replace_condition(status, kind, value, reason, message)


def _without_zeros(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if v != 0}


def _has_deadline(spec: Obj) -> bool:
    return spec.get("progressDeadlineSeconds") not in (None, _MAX_INT32)


def _complete(deployment: Obj, status: Obj) -> bool:
    """DeploymentComplete: every replica updated and available, and the latest generation observed."""
    replicas = _replicas(deployment)
    return (status.get("updatedReplicas", 0) == replicas == status.get("replicas", 0)
            and status.get("availableReplicas", 0) == replicas
            and status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1))


def _progressed(before: Obj, after: Obj) -> bool:
    """DeploymentProgressing: more updated, ready or available replicas, or fewer old ones."""
    def old(status: Obj) -> int:
        return status.get("replicas", 0) - status.get("updatedReplicas", 0)
    return (after.get("updatedReplicas", 0) > before.get("updatedReplicas", 0) or old(after) < old(before)
            or after.get("readyReplicas", 0) > before.get("readyReplicas", 0)
            or after.get("availableReplicas", 0) > before.get("availableReplicas", 0))


def _timed_out(spec: Obj, status: Obj) -> bool:
    cond = _find_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == "NewReplicaSetAvailable":
        return False
    if cond.get("reason") == "ProgressDeadlineExceeded":
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + timedelta(seconds=spec["progressDeadlineSeconds"]) < \
        datetime.now(timezone.utc)


def _paused_condition(status: Obj, spec: Obj) -> None:
    """checkPausedConditions: Progressing Unknown while paused, and once resumed."""
    cond = _find_condition(status, PROGRESSING)
    if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
        return
    paused = cond is not None and cond.get("reason") == "DeploymentPaused"
    if spec.get("paused") and not paused:
        _set_condition(status, PROGRESSING, "Unknown", "DeploymentPaused", "Deployment is paused")
    elif not spec.get("paused") and paused:
        _set_condition(status, PROGRESSING, "Unknown", "DeploymentResumed", "Deployment is resumed")


def _estimate_progress(deployment: Obj, before: Obj, rs_name: str | None) -> None:
    """syncRolloutStatus' Progressing condition: complete, progressing, or timed out (progressDeadlineSeconds)."""
    status, spec = deployment["status"], deployment["spec"]
    if not _has_deadline(spec):
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != PROGRESSING]
        return
    current = _find_condition(status, PROGRESSING)
    if (status.get("replicas", 0) == status.get("updatedReplicas", 0) and current is not None
            and current.get("reason") == "NewReplicaSetAvailable"):
        return
    subject = f'ReplicaSet "{rs_name}"' if rs_name else f'Deployment "{deployment["metadata"]["name"]}"'
    if _complete(deployment, status):
        _set_condition(status, PROGRESSING, "True", "NewReplicaSetAvailable",
                       f"{subject} has successfully progressed.")
    elif _progressed(before, status):
        _replace_condition(status, PROGRESSING, "True", "ReplicaSetUpdated", f"{subject} is progressing.")
    elif _timed_out(spec, status):
        _set_condition(status, PROGRESSING, "False", "ProgressDeadlineExceeded",
                       f"{subject} has timed out progressing.")


def _owned_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == owner["metadata"]["uid"]


class Workloads:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp
        self._deployments: WorkQueue[str] = WorkQueue(cp, lambda: cp.timings.controller, self._sync_deployment)
        self._replicasets: WorkQueue[str] = WorkQueue(cp, lambda: cp.timings.controller, self._sync_replicaset)
        self._progress_checks: dict[str, float] = {}

    # -- events ---------------------------------------------------------------------------------------
    def on_workload(self, event_type: str, resource: str, obj: Obj) -> None:
        if resource == "deployments.apps":
            if event_type != DELETED:
                self._deployments.add(key_of(obj))
            return
        if event_type != DELETED:
            self._replicasets.add(key_of(obj))
        owner = controller_of(obj)
        if owner and owner.get("kind") == "Deployment":
            self._deployments.add(f"{obj['metadata']['namespace']}/{owner['name']}")

    def on_pod(self, event_type: str, pod: Obj) -> None:
        owner = controller_of(pod)
        if not owner or owner.get("kind") != "ReplicaSet":
            return
        namespace = pod["metadata"]["namespace"]
        self._replicasets.add(f"{namespace}/{owner['name']}")
        if event_type == DELETED:       # deletePod: a Recreate rollout waits for the old pods to be gone
            rs = self.cp.store.get_ref("replicasets.apps", namespace, owner["name"])
            deployment_ref = controller_of(rs) if rs else None
            if deployment_ref and deployment_ref.get("kind") == "Deployment":
                deployment = self.cp.store.get_ref("deployments.apps", namespace, deployment_ref["name"])
                if deployment and not _is_rolling(deployment):
                    self._deployments.add(f"{namespace}/{deployment_ref['name']}")

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
        ready = [p for p in pods if is_ready(p)]
        now = datetime.now(timezone.utc)
        waits = [_until_available(p, rs["spec"].get("minReadySeconds") or 0, now) for p in ready]
        pending = [w for w in waits if w]
        if pending:                     # count them once they have been ready for minReadySeconds
            key = key_of(rs)
            self.cp.later(min(pending) + self.cp.timings.controller, lambda: self._replicasets.add(key))
        counts = {"fullyLabeledReplicas": len(pods), "readyReplicas": len(ready),
                  "availableReplicas": sum(1 for w in waits if w == 0),
                  "observedGeneration": rs["metadata"].get("generation", 1)}
        status = {"replicas": len(pods), **_without_zeros(counts)}

        def apply(obj: Obj) -> None:
            obj["status"] = {**status, **{k: v for k, v in (obj.get("status") or {}).items()
                                          if k == "conditions"}}
        self.cp.store.mutate("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"], apply)

    # -- Deployment -----------------------------------------------------------------------------------
    def _sync_deployment(self, key: str) -> None:
        """syncDeployment: a paused Deployment, or one whose ``spec.replicas`` changed, only scales; otherwise its
        strategy rolls the pod template out."""
        namespace, name = split_key(key)
        deployment = self.cp.store.get_ref("deployments.apps", namespace, name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        rses = [r for r in self.cp.store.list_page("replicasets.apps", namespace).items
                if _owned_by(r, deployment)]
        new, olds = _find_new(deployment, rses)
        if new is not None:
            new = self._sync_new_replicaset(deployment, new, olds)
        if deployment["spec"].get("paused") or _is_scaling_event(deployment, olds + ([new] if new else [])):
            self._sync_scaling(deployment, new, olds)
        elif _is_rolling(deployment):
            self._rollout_rolling(deployment, new, olds)
        else:
            self._rollout_recreate(deployment, new, olds)

    def _sync_scaling(self, deployment: Obj, new: Obj | None, olds: list[Obj]) -> None:
        """sync: size the ReplicaSets for ``spec.replicas`` without rolling out (nor creating a ReplicaSet)."""
        self._scale_deployment(deployment, new, olds)
        if deployment["spec"].get("paused"):
            self._cleanup(deployment, olds)
        self._update_deployment_status(deployment, new, progress=False)

    def _rollout_rolling(self, deployment: Obj, new: Obj | None, olds: list[Obj]) -> None:
        """rolloutRolling: scale the new ReplicaSet up as far as maxSurge allows, else the old ones down as far
        as maxUnavailable allows; one step per sync, the next one when a ReplicaSet's status changes."""
        created = new is None
        new = self._create_replicaset(deployment, olds) if new is None else new
        all_rses = olds + [new]
        if not self._reconcile_new(deployment, all_rses, new) and \
                not self._reconcile_old(deployment, all_rses, _active(olds), new) and \
                _complete(deployment, deployment.get("status") or {}):
            self._cleanup(deployment, olds)
        self._update_deployment_status(deployment, new, progress=True, created=created)

    def _reconcile_new(self, deployment: Obj, all_rses: list[Obj], new: Obj) -> bool:
        replicas = _replicas(deployment)
        if _replicas(new) == replicas:
            return False
        if _replicas(new) > replicas:
            return self._scale_and_record(deployment, new, replicas)[0]
        return self._scale_and_record(deployment, new, _new_rs_replicas(deployment, all_rses, _replicas(new)))[0]

    def _reconcile_old(self, deployment: Obj, all_rses: list[Obj], olds: list[Obj], new: Obj) -> bool:
        """reconcileOldReplicaSets: what may go keeps ``replicas - maxUnavailable`` available, counting the new
        ReplicaSet's not yet available replicas as unavailable; unhealthy old replicas go first."""
        if _total(olds) == 0:
            return False
        min_available = _replicas(deployment) - max_unavailable(deployment)
        new_unavailable = _replicas(new) - (new.get("status") or {}).get("availableReplicas", 0)
        max_scaled_down = _total(all_rses) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        cleaned = self._cleanup_unhealthy(deployment, olds, max_scaled_down)
        if cleaned is None:
            return False
        olds, count = cleaned
        return count + self._scale_down_old(deployment, olds + [new], olds) > 0

    def _cleanup_unhealthy(self, deployment: Obj, olds: list[Obj], limit: int) -> tuple[list[Obj], int] | None:
        """cleanupUnhealthyReplicas: old ReplicaSets (oldest first) lose their unavailable replicas, up to
        ``limit`` in all (their ReplicaSets delete not-ready pods first). None on a stale status, as the real
        controller's error."""
        result, total = [], 0
        for rs in _by_creation(olds):
            unavailable = _replicas(rs) - (rs.get("status") or {}).get("availableReplicas", 0)
            if total < limit and _replicas(rs) > 0 and unavailable != 0:
                count = min(limit - total, unavailable)
                if count < 0:
                    return None
                rs = self._scale_and_record(deployment, rs, _replicas(rs) - count)[1]
                total += count
            result.append(rs)
        return result, total

    def _scale_down_old(self, deployment: Obj, all_rses: list[Obj], olds: list[Obj]) -> int:
        """scaleDownOldReplicaSetsForRollingUpdate: old ReplicaSets (oldest first) shrink by what is available
        beyond ``replicas - maxUnavailable``."""
        min_available = _replicas(deployment) - max_unavailable(deployment)
        budget = _total(all_rses, "availableReplicas") - min_available
        total = 0
        for rs in _by_creation(olds):
            if total >= budget:
                break
            if _replicas(rs) == 0:
                continue
            count = min(_replicas(rs), budget - total)
            self._scale_and_record(deployment, rs, _replicas(rs) - count)
            total += count
        return total

    def _rollout_recreate(self, deployment: Obj, new: Obj | None, olds: list[Obj]) -> None:
        """rolloutRecreate: every old ReplicaSet to zero; the new one is created (or scaled up) only once no pod
        of an old one is left."""
        scaled = False
        for index, rs in enumerate(olds):
            if _replicas(rs) > 0:
                done, olds[index] = self._scale_and_record(deployment, rs, 0)
                scaled = scaled or done
        if scaled or self._old_pods_running(deployment, new, olds):
            self._update_deployment_status(deployment, new, progress=True)
            return
        created = new is None
        new = self._create_replicaset(deployment, olds) if new is None else new
        self._scale_and_record(deployment, new, _replicas(deployment))
        if _complete(deployment, deployment.get("status") or {}):
            self._cleanup(deployment, olds)
        self._update_deployment_status(deployment, new, progress=True, created=created)

    def _old_pods_running(self, deployment: Obj, new: Obj | None, olds: list[Obj]) -> bool:
        """oldPodsRunning: an old ReplicaSet still reports pods, or owns a pod not Succeeded/Failed (a
        terminating one included)."""
        if _total(olds, "replicas") > 0:
            return True
        uids = {r["metadata"]["uid"] for r in olds} - ({new["metadata"]["uid"]} if new else set())
        selector = label_selector_string(deployment["spec"].get("selector"))
        pods = self.cp.store.list_page("pods", deployment["metadata"]["namespace"], selector).items
        return any((controller_of(p) or {}).get("uid") in uids and not is_terminated(p) for p in pods)

    def _scale_deployment(self, deployment: Obj, new: Obj | None, olds: list[Obj]) -> None:
        """scale: the only active ReplicaSet takes ``spec.replicas``; during a rollout a saturated new one makes
        the old ones go, else (rolling update) every active one scales in proportion."""
        target = _active_or_latest(new, olds)
        if target is not None:
            self._scale_and_record(deployment, target, _replicas(deployment))
        elif _saturated(deployment, new):
            for rs in _active(olds):
                self._scale_and_record(deployment, rs, 0)
        elif _is_rolling(deployment):
            self._scale_proportionally(deployment, _active(olds + ([new] if new else [])))

    def _scale_proportionally(self, deployment: Obj, active: list[Obj]) -> None:
        """The replicas a scaling adds (or removes) mid-rollout, shared by the active ReplicaSets in proportion to
        their size (max-replicas); the largest takes the rounding leftover."""
        replicas = _replicas(deployment)
        allowed = replicas + max_surge(deployment) if replicas > 0 else 0
        to_add = allowed - _total(active)
        direction = "up" if to_add > 0 else "down"
        active = _by_size(active, newer_first=to_add > 0)
        sizes, added = [], 0
        for rs in active:
            share = _proportion(deployment, rs, to_add, added)
            sizes.append(_replicas(rs) + share)
            added += share
        if active and to_add:
            sizes[0] = max(0, sizes[0] + to_add - added)
        for rs, size in zip(active, sizes):
            self._scale(deployment, rs, size, direction)

    def _cleanup(self, deployment: Obj, olds: list[Obj]) -> None:
        """cleanupDeployment: old ReplicaSets beyond revisionHistoryLimit go, the lowest revisions first, once
        they are scaled to zero."""
        limit = deployment["spec"].get("revisionHistoryLimit")
        if limit is None or limit == _MAX_INT32:
            return
        alive = [r for r in olds if not r["metadata"].get("deletionTimestamp")]
        for rs in _by_revision(alive)[:max(0, len(alive) - limit)]:
            status = rs.get("status") or {}
            if status.get("replicas", 0) or _replicas(rs) or \
                    rs["metadata"].get("generation", 1) > status.get("observedGeneration", 0):
                continue
            self.cp.store.delete("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"])

    # -- Deployment: ReplicaSet writes ----------------------------------------------------------------
    def _sync_new_replicaset(self, deployment: Obj, rs: Obj, olds: list[Obj]) -> Obj:
        """getNewReplicaSet for an existing one: annotations, revision (above every old one) and
        minReadySeconds follow the Deployment."""
        annotations = dict(rs["metadata"].get("annotations") or {})
        changed = _copy_annotations(deployment, annotations, _max_revision(olds) + 1)
        min_ready = deployment["spec"].get("minReadySeconds", 0)
        if not changed and rs["spec"].get("minReadySeconds", 0) == min_ready:
            return rs

        def apply(obj: Obj) -> None:
            obj["metadata"]["annotations"] = annotations
            obj["spec"]["minReadySeconds"] = min_ready
        return self.cp.store.mutate("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"], apply)

    def _create_replicaset(self, deployment: Obj, olds: list[Obj]) -> Obj:
        spec = deployment["spec"]
        template_key = template_hash(spec.get("template") or {})
        template = clone(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = template_key
        selector = clone(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = template_key
        replicas = _new_rs_replicas(deployment, olds, 0)
        annotations: dict[str, str] = {}
        _copy_annotations(deployment, annotations, _max_revision(olds) + 1)
        annotations.update({DESIRED_REPLICAS: str(_replicas(deployment)),
                            MAX_REPLICAS: str(_replicas(deployment) + max_surge(deployment))})
        name = f"{deployment['metadata']['name']}-{template_key}"
        rs = self.cp.store.create("replicasets.apps", {
            "metadata": {"name": name, "namespace": deployment["metadata"]["namespace"],
                         "labels": dict(template["metadata"]["labels"]), "annotations": annotations,
                         "ownerReferences": [owner_reference(deployment)]},
            "spec": {"replicas": replicas, "minReadySeconds": spec.get("minReadySeconds", 0), "selector": selector,
                     "template": template}})
        if replicas > 0:
            events.record(self.cp, deployment, "ScalingReplicaSet",
                          f"Scaled up replica set {name} from 0 to {replicas}", component="deployment-controller")
        return rs

    def _scale_and_record(self, deployment: Obj, rs: Obj, replicas: int) -> tuple[bool, Obj]:
        """scaleReplicaSetAndRecordEvent: nothing to do when the size is right already."""
        if _replicas(rs) == replicas:
            return False, rs
        return self._scale(deployment, rs, replicas)

    def _scale(self, deployment: Obj, rs: Obj, replicas: int, direction: str = "") -> tuple[bool, Obj]:
        """scaleReplicaSet: the size and the desired/max-replicas annotations; True when the size changed."""
        before = _replicas(rs)
        desired = str(_replicas(deployment))
        maximum = str(_replicas(deployment) + max_surge(deployment))
        annotations = rs["metadata"].get("annotations") or {}
        if before == replicas and annotations.get(DESIRED_REPLICAS) == desired and \
                annotations.get(MAX_REPLICAS) == maximum:
            return False, rs

        def apply(obj: Obj) -> None:
            obj["spec"]["replicas"] = replicas
            obj["metadata"].setdefault("annotations", {}).update({DESIRED_REPLICAS: desired, MAX_REPLICAS: maximum})
        scaled = self.cp.store.mutate("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"], apply)
        if before != replicas:
            direction = direction or ("up" if replicas > before else "down")
            events.record(self.cp, deployment, "ScalingReplicaSet",
                          f"Scaled {direction} replica set {rs['metadata']['name']} to {replicas} from {before}",
                          component="deployment-controller")
        return before != replicas, scaled

    # -- Deployment: status ---------------------------------------------------------------------------
    def _update_deployment_status(self, deployment: Obj, new: Obj | None, *, progress: bool,
                                  created: bool = False) -> None:
        """calculateStatus plus, in a rollout, syncRolloutStatus' Progressing condition; a status that stays
        the same is checked again when its progress deadline passes (requeueStuckDeployment)."""
        namespace = deployment["metadata"]["namespace"]
        rses = [r for r in self.cp.store.list_page("replicasets.apps", namespace).items if _owned_by(r, deployment)]
        current = next((r for r in rses if new is not None and r["metadata"]["uid"] == new["metadata"]["uid"]), None)
        available = _total(rses, "availableReplicas")
        counts = {"observedGeneration": deployment["metadata"].get("generation", 1),
                  "replicas": _total(rses, "replicas"), "updatedReplicas": _total([current] if current else [],
                                                                                  "replicas"),
                  "readyReplicas": _total(rses, "readyReplicas"), "availableReplicas": available,
                  "unavailableReplicas": max(0, _total(rses) - available)}
        rs_name = current["metadata"]["name"] if current else None
        revision = (current["metadata"].get("annotations") or {}).get(REVISION) if current else None

        def apply(obj: Obj) -> None:
            status, spec = obj.setdefault("status", {}), obj["spec"]
            before = {field: status.get(field, 0) for field in _COUNTS}
            if _has_deadline(spec):
                _paused_condition(status, spec)
                if created:
                    _set_condition(status, PROGRESSING, "True", "NewReplicaSetCreated",
                                   f'Created new replica set "{rs_name}"')
                elif rs_name and _find_condition(status, PROGRESSING) is None:
                    _set_condition(status, PROGRESSING, "True", "FoundNewReplicaSet",
                                   f'Found new replica set "{rs_name}"')
            for field in _COUNTS:
                status.pop(field, None)
            status.update(_without_zeros(counts))
            if available >= _replicas(obj) - max_unavailable(obj):
                _set_condition(status, AVAILABLE, "True", "MinimumReplicasAvailable",
                               "Deployment has minimum availability.")
            else:
                _set_condition(status, AVAILABLE, "False", "MinimumReplicasUnavailable",
                               "Deployment does not have minimum availability.")
            if progress:
                _estimate_progress(obj, before, rs_name)
            if revision:
                obj["metadata"].setdefault("annotations", {})[REVISION] = revision
        updated = self.cp.store.mutate("deployments.apps", namespace, deployment["metadata"]["name"], apply)
        if progress and updated["metadata"]["resourceVersion"] == deployment["metadata"]["resourceVersion"]:
            self._requeue_stuck(updated)

    def _requeue_stuck(self, deployment: Obj) -> None:
        """A rollout without progress is synced again once its Progressing condition's lastUpdateTime plus
        progressDeadlineSeconds has passed (and a second), to time it out."""
        spec, status = deployment["spec"], deployment.get("status") or {}
        cond = _find_condition(status, PROGRESSING)
        if not _has_deadline(spec) or cond is None or _complete(deployment, status) \
                or cond.get("reason") == "ProgressDeadlineExceeded":
            return
        since = parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return
        key, due = key_of(deployment), since.timestamp() + spec["progressDeadlineSeconds"]
        if self._progress_checks.get(key, math.inf) <= due:
            return
        self._progress_checks[key] = due

        def check() -> None:
            if self._progress_checks.get(key) == due:
                del self._progress_checks[key]
            self._deployments.add(key)
        self.cp.later(max(0.0, due - time.time()) + 1.0, check)
