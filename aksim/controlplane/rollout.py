"""Deployment rollout arithmetic on plain Deployment and ReplicaSet objects (``pkg/controller/deployment/util``).

The fenceposts (``maxSurge``, ``maxUnavailable``), replica totals and ReplicaSet orderings, the new ReplicaSet
and its size in a rolling update, each ReplicaSet's share of a scaling mid-rollout, and the revision annotations
a ReplicaSet takes from its Deployment. No controller state: :mod:`aksim.controlplane.workloads` reads the
objects from the store and writes the results back.
"""
from __future__ import annotations

import math
from typing import Any

from aksim.controlplane.podutil import Obj, template_hash

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
_NOT_COPIED = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
               MAX_REPLICAS, "deprecated.deployment.rollback.to"}
_MAX_HISTORY_CHARS = 2000
MAX_INT32 = 2 ** 31 - 1


def _fencepost(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def is_rolling(deployment: Obj) -> bool:
    return (deployment["spec"].get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def _fenceposts(deployment: Obj) -> tuple[int, int]:
    """ResolveFenceposts: maxSurge rounds up, maxUnavailable down (both 25% unless set); both zero make
    maxUnavailable 1."""
    replicas = spec_replicas(deployment)
    rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = _fencepost(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _fencepost(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    return surge, 1 if surge == 0 and unavailable == 0 else unavailable


def max_surge(deployment: Obj) -> int:
    return _fenceposts(deployment)[0] if is_rolling(deployment) else 0


def max_unavailable(deployment: Obj) -> int:
    replicas = spec_replicas(deployment)
    if not is_rolling(deployment) or replicas == 0:
        return 0
    return min(_fenceposts(deployment)[1], replicas)


def spec_replicas(obj: Obj) -> int:
    return obj["spec"].get("replicas", 1)


def count_replicas(rses: list[Obj], field: str | None = None) -> int:
    """Summed ``spec.replicas`` (no field), or a summed ``status`` field."""
    if field is None:
        return sum(spec_replicas(r) for r in rses)
    return sum((r.get("status") or {}).get(field, 0) for r in rses)


def filter_active(rses: list[Obj]) -> list[Obj]:
    return [r for r in rses if spec_replicas(r) > 0]


def _annotation_int(obj: Obj, name: str) -> int | None:
    try:
        return int((obj["metadata"].get("annotations") or {})[name])
    except (KeyError, ValueError):
        return None


def by_creation(rses: list[Obj], newest_first: bool = False) -> list[Obj]:
    """ReplicaSetsByCreationTimestamp: older first, equal times by name."""
    return sorted(rses, key=lambda r: (r["metadata"].get("creationTimestamp") or "", r["metadata"]["name"]),
                  reverse=newest_first)


def by_size(rses: list[Obj], newer_first: bool) -> list[Obj]:
    """ReplicaSetsBySizeNewer / BySizeOlder: the largest first; equal sizes newer (or older) first."""
    return sorted(by_creation(rses, newest_first=newer_first), key=lambda r: -spec_replicas(r))


def by_revision(rses: list[Obj]) -> list[Obj]:
    return sorted(by_creation(rses), key=lambda r: _annotation_int(r, REVISION) or 0)


def max_revision(rses: list[Obj]) -> int:
    return max((_annotation_int(r, REVISION) or 0 for r in rses), default=0)


def find_new(deployment: Obj, rses: list[Obj]) -> tuple[Obj | None, list[Obj]]:
    """FindNewReplicaSet: the oldest ReplicaSet of the current pod template; the others are old."""
    template_key = template_hash(deployment["spec"].get("template") or {})
    ordered = by_creation(rses)
    new = next((r for r in ordered if (r["metadata"].get("labels") or {}).get(HASH_LABEL) == template_key), None)
    return new, [r for r in ordered if r is not new]


def new_rs_replicas(deployment: Obj, rses: list[Obj], new_replicas: int) -> int:
    """NewRSNewReplicas: Recreate wants every replica; a rolling update adds what maxSurge leaves room for."""
    replicas = spec_replicas(deployment)
    if not is_rolling(deployment):
        return replicas
    room = replicas + max_surge(deployment) - count_replicas(rses)
    return new_replicas + min(room, replicas - new_replicas) if room > 0 else new_replicas


def is_scaling_event(deployment: Obj, rses: list[Obj]) -> bool:
    """isScalingEvent: an active ReplicaSet was sized for another ``spec.replicas`` (desired-replicas)."""
    desired = (_annotation_int(r, DESIRED_REPLICAS) for r in filter_active(rses))
    return any(d is not None and d != spec_replicas(deployment) for d in desired)


def active_or_latest(new: Obj | None, olds: list[Obj]) -> Obj | None:
    """FindActiveOrLatest: the only ReplicaSet with replicas, or the newest when none has any."""
    newest_first = by_creation(olds, newest_first=True)
    active = filter_active(newest_first + ([new] if new is not None else []))
    if not active:
        return new if new is not None else (newest_first[0] if newest_first else None)
    return active[0] if len(active) == 1 else None


def saturated(deployment: Obj, rs: Obj | None) -> bool:
    replicas = spec_replicas(deployment)
    return (rs is not None and spec_replicas(rs) == replicas and _annotation_int(rs, DESIRED_REPLICAS) == replicas
            and (rs.get("status") or {}).get("availableReplicas", 0) == replicas)


def proportion(deployment: Obj, rs: Obj, to_add: int, added: int) -> int:
    """GetReplicaSetProportion: this ReplicaSet's share of a scaling that happens mid-rollout."""
    if spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(deployment, rs)
    return min(fraction, to_add - added) if to_add > 0 else max(fraction, to_add - added)


def _fraction(deployment: Obj, rs: Obj) -> int:
    if spec_replicas(deployment) == 0:
        return -spec_replicas(rs)
    before = _annotation_int(rs, MAX_REPLICAS) or (deployment.get("status") or {}).get("replicas", 0)
    if before == 0:
        return 0
    size = spec_replicas(rs) * (spec_replicas(deployment) + max_surge(deployment)) / before
    return math.floor(size + 0.5) - spec_replicas(rs)


def copy_annotations(deployment: Obj, annotations: dict[str, str], revision: int) -> bool:
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
