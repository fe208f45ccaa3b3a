"""The order in which a ReplicaSet deletes its pods when scaling down (``ActivePodsWithRanks`` of
kube-controller-manager's ``pkg/controller/controller_utils.go``, with LogarithmicScaleDown)."""
from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timezone
from functools import cmp_to_key

from aksim.controlplane.base import parse_time
from aksim.controlplane.podutil import Obj, is_ready, key_of, ready_time

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def _deletion_cost(pod: Obj) -> int:
    try:
        return int((pod["metadata"].get("annotations") or {}).get(DELETION_COST, 0))
    except ValueError:
        return 0


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
    if is_ready(a) and is_ready(b) and ready_time(a) != ready_time(b):
        return _newer_first(a, b, ready_time(a), ready_time(b), now)
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
