"""A Deployment's status conditions (``pkg/controller/deployment/util``, ``progress.go``): Available and
Progressing, the paused/resumed marks, completeness, progress and the progress deadline. Functions on the
status dict; :mod:`aksim.controlplane.workloads` computes the replica counts and writes the object."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from aksim.controlplane.base import now_rfc3339, parse_time
from aksim.controlplane.podutil import Obj
from aksim.controlplane.rollout import MAX_INT32, spec_replicas

AVAILABLE, PROGRESSING = "Available", "Progressing"


def find_condition(status: Obj, kind: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def _replace_condition(status: Obj, kind: str, value: str, reason: str, message: str) -> None:
    """The condition, new (at the end of the list); ``lastTransitionTime`` stays while the status does."""
    current = find_condition(status, kind)
    now = now_rfc3339()
    new = {"type": kind, "status": value, "lastUpdateTime": now,
           "lastTransitionTime": current["lastTransitionTime"] if current and current["status"] == value else now,
           "reason": reason, "message": message}
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != kind] + [new]


def set_deployment_condition(status: Obj, kind: str, value: str, reason: str, message: str) -> None:
    """SetDeploymentCondition: nothing changes while status and reason are the same (the message included)."""
    current = find_condition(status, kind)
    if current and (current["status"], current.get("reason")) == (value, reason):
        return
    _replace_condition(status, kind, value, reason, message)


def without_zeros(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if v != 0}


def has_deadline(spec: Obj) -> bool:
    return spec.get("progressDeadlineSeconds") not in (None, MAX_INT32)


def is_complete(deployment: Obj, status: Obj) -> bool:
    """DeploymentComplete: every replica updated and available, and the latest generation observed."""
    replicas = spec_replicas(deployment)
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
    cond = find_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == "NewReplicaSetAvailable":
        return False
    if cond.get("reason") == "ProgressDeadlineExceeded":
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + timedelta(seconds=spec["progressDeadlineSeconds"]) < \
        datetime.now(timezone.utc)


def paused_condition(status: Obj, spec: Obj) -> None:
    """checkPausedConditions: Progressing Unknown while paused, and once resumed."""
    cond = find_condition(status, PROGRESSING)
    if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
        return
    paused = cond is not None and cond.get("reason") == "DeploymentPaused"
    if spec.get("paused") and not paused:
        set_deployment_condition(status, PROGRESSING, "Unknown", "DeploymentPaused", "Deployment is paused")
    elif not spec.get("paused") and paused:
        set_deployment_condition(status, PROGRESSING, "Unknown", "DeploymentResumed", "Deployment is resumed")


def estimate_progress(deployment: Obj, before: Obj, rs_name: str | None) -> None:
    """syncRolloutStatus' Progressing condition: complete, progressing, or timed out (progressDeadlineSeconds)."""
    status, spec = deployment["status"], deployment["spec"]
    if not has_deadline(spec):
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != PROGRESSING]
        return
    current = find_condition(status, PROGRESSING)
    if (status.get("replicas", 0) == status.get("updatedReplicas", 0) and current is not None
            and current.get("reason") == "NewReplicaSetAvailable"):
        return
    subject = f'ReplicaSet "{rs_name}"' if rs_name else f'Deployment "{deployment["metadata"]["name"]}"'
    if is_complete(deployment, status):
        set_deployment_condition(status, PROGRESSING, "True", "NewReplicaSetAvailable",
                                 f"{subject} has successfully progressed.")
    elif _progressed(before, status):
        _replace_condition(status, PROGRESSING, "True", "ReplicaSetUpdated", f"{subject} is progressing.")
    elif _timed_out(spec, status):
        set_deployment_condition(status, PROGRESSING, "False", "ProgressDeadlineExceeded",
                                 f"{subject} has timed out progressing.")
