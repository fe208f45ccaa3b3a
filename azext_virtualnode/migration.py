"""What ``migrate --to v2`` does to each workload, decided from the objects alone (pure; no I/O).

A workload *targets the legacy virtual node* (the add-on's or the legacy chart's) when its pod template
* carries the ``place`` annotation of mode ``addon``/``chart`` (its policy is the annotation's), or
* selects the legacy node's label ``type=virtual-kubelet`` (policy ``only``), or
* tolerates the legacy node's taint (``virtual-kubelet.io/provider`` or ``azure.com/aci``) without selecting
  it (policy ``burst``).

It is re-placed for Virtual Nodes v2 with the same policy through ``placement.plan`` (target ``MODES["v2"]``):
what ``place`` added for the legacy mode goes, what v2 needs comes. A hand-written template has no annotation,
so its legacy entries (the ``type`` selector, tolerations of the two taint keys, the legacy burst preference)
are treated as if ``place`` had added them; afterwards the annotation records the v2 entries, and ``place
--policy off`` removes them.

How the pods move off the legacy node (which ``migrate`` cordons first):
* Deployment: its own rollout (template change, else a restart annotation), paced by ``maxSurge`` /
  ``maxUnavailable``;
* StatefulSet, ReplicaSet: one pod at a time through the Eviction API (PodDisruptionBudgets respected), the next
  only once every replica is Ready again (a StatefulSet's own RollingUpdate is waited for when it reports one);
* Job pods finish where they run; bare pods have no controller to re-create them: neither can move.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from azext_virtualnode._consts import TAINT_KEY
from azext_virtualnode.placement import (KINDS, LEGACY_TAINT_KEY, MODES, PLACEMENT_ANNOTATION, Kind, Managed,
                                         PlacementError, Plan, Scheduling, burst_term, plan, pod_spec,
                                         requirement_holds)
from azext_virtualnode.workload import owner_of

Obj = dict[str, Any]
LEGACY_MODES = ("addon", "chart")
LEGACY_LABEL = ("type", "virtual-kubelet")
V2_LABEL = ("virtualization", "virtualnode2")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
HOW = {"deployment": "rollout", "statefulset": "evict", "replicaset": "evict", "job": "none", "cronjob": "none"}


# -- which policy a workload has on the legacy node --------------------------------------------------------
def _legacy_toleration(t: Obj) -> bool:
    return t.get("key") in (TAINT_KEY, LEGACY_TAINT_KEY)


def _legacy_preference(term: Obj) -> bool:
    return term == burst_term(MODES["addon"]) or any(
        e.get("key") == LEGACY_LABEL[0] and e.get("operator") == "NotIn" and LEGACY_LABEL[1] in (e.get("values") or [])
        for e in (term.get("preference") or {}).get("matchExpressions") or [])


def _requires_legacy_label(spec: Obj) -> bool:
    terms = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
              .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
    return any(e.get("key") == LEGACY_LABEL[0] and e.get("operator") == "In" and LEGACY_LABEL[1] in (e.get("values")
               or []) for t in terms for e in t.get("matchExpressions") or [])


def legacy_policy(obj: Obj, kind: Kind) -> str | None:
    """``only`` / ``burst`` for a workload aimed at the legacy virtual node, None otherwise (v2 or regular
    nodes only). Raises PlacementError for a template that cannot be rewritten automatically."""
    meta, spec = obj.get("metadata") or {}, pod_spec(obj, kind)
    managed = Managed.parse((meta.get("annotations") or {}).get(PLACEMENT_ANNOTATION))
    if managed is not None and managed.mode in (*LEGACY_MODES, MODES["v2"].mode):
        return managed.policy if managed.mode in LEGACY_MODES and managed.policy in ("only", "burst") else None
    selector = spec.get("nodeSelector") or {}
    if selector.get(V2_LABEL[0]) == V2_LABEL[1]:
        return None
    if selector.get(LEGACY_LABEL[0]) == LEGACY_LABEL[1]:
        return "only"
    if _requires_legacy_label(spec):
        raise PlacementError(f"its pod template requires the node label {LEGACY_LABEL[0]}={LEGACY_LABEL[1]} through a "
                             "required node affinity; replace that term with a nodeSelector "
                             f"{V2_LABEL[0]}={V2_LABEL[1]} (or use 'az aks virtual-node place') and re-run")
    preferred = Scheduling.of(spec).preferred
    # a hand-written v2 burst template is not legacy (the two modes share the toleration key)
    v2_burst = burst_term(MODES["v2"]) in preferred and not any(_legacy_preference(t) for t in preferred)
    return "burst" if any(_legacy_toleration(t) for t in spec.get("tolerations") or []) and not v2_burst else None


def legacy_entries(spec: Obj) -> Managed:
    """The legacy entries of a hand-written template, as if ``place`` had added them."""
    s = Scheduling.of(spec)
    return Managed("only", "addon",
                   {k: v for k, v in s.node_selector.items() if (k, v) == LEGACY_LABEL},
                   [t for t in s.tolerations if _legacy_toleration(t)],
                   [t for t in s.preferred if _legacy_preference(t)])


def replan(obj: Obj, kind: Kind, policy: str) -> Plan:
    """The ``place`` plan that puts ``obj`` on Virtual Nodes v2 with ``policy`` (PlacementError: cannot)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    managed = Managed.parse(annotations.get(PLACEMENT_ANNOTATION))
    # Only a template without place's record is read as hand-written: a v2 record (an earlier or interrupted run)
    # already says what place manages, and replacing it with the template's "legacy" entries (the provider
    # toleration, shared by both modes) would drop the v2 selector/preference from it (not idempotent).
    if managed is None or managed.mode not in (*LEGACY_MODES, MODES["v2"].mode):
        obj = copy.deepcopy(obj)
        obj["metadata"] = {**meta, "annotations": {
            **annotations, PLACEMENT_ANNOTATION: legacy_entries(pod_spec(obj, kind)).as_json()}}
        result = plan(obj, kind, policy, MODES["v2"])
        result.managed_before = managed
        return result
    return plan(obj, kind, policy, MODES["v2"])


# -- availability ------------------------------------------------------------------------------------------
def _fencepost(value: Any, total: int, round_up: bool) -> int:
    """An int-or-percent value of ``total`` (Kubernetes' GetScaledValueFromIntOrPercent)."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def rollout_floor(deployment: Obj) -> int:
    """The fewest available replicas a Deployment's rollout allows (the controller's resolved fenceposts)."""
    spec = deployment.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _fencepost(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _fencepost(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return max(replicas - min(unavailable, replicas), 0)


def _selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    if not selector:
        return True          # policy/v1: an empty selector selects every pod of the namespace
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(requirement_holds(e, labels) for e in selector.get("matchExpressions") or [])


def pdb_floor(pdbs: list[Obj], namespace: str, labels: dict[str, str], replicas: int) -> tuple[int, str] | None:
    """The most available pods any PodDisruptionBudget over these pods demands, with its name."""
    demands: list[tuple[int, str]] = []
    for pdb in pdbs:
        meta, spec = pdb.get("metadata") or {}, pdb.get("spec") or {}
        if meta.get("namespace") != namespace or not _selects(spec.get("selector"), labels):
            continue
        name = meta.get("name", "")
        if spec.get("minAvailable") is not None:
            demands.append((_fencepost(spec["minAvailable"], replicas, round_up=True), name))
        elif spec.get("maxUnavailable") is not None:
            demands.append((replicas - _fencepost(spec["maxUnavailable"], replicas, round_up=True), name))
    return max(demands, key=lambda d: d[0]) if demands else None


def _deployment_risk(obj: Obj, replicas: int, budget: tuple[int, str] | None) -> str | None:
    floor = rollout_floor(obj)
    if ((obj.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
        return f"its strategy is Recreate: the rollout that moves it stops all {replicas} pod(s) first"
    if budget is not None and floor < budget[0]:
        return (f"its rollout may go down to {floor} available pod(s) (maxUnavailable), below the {budget[0]} "
                f"PodDisruptionBudget '{budget[1]}' demands")
    return f"its rollout may stop all {replicas} pod(s) (maxUnavailable)" if floor == 0 else None


def _eviction_risk(kind: Kind, replicas: int, budget: tuple[int, str] | None) -> str | None:
    floor = replicas - 1
    if budget is not None and floor < budget[0]:
        return (f"moving a pod leaves {floor} available, below the {budget[0]} PodDisruptionBudget '{budget[1]}' "
                "demands, so the eviction would never be allowed")
    if floor == 0:
        return f"its only pod must stop before its replacement starts on the new node ({kind.kind}, 1 replica)"
    return None


def availability_risk(kind: Kind, obj: Obj, pdbs: list[Obj], moves_pods: bool) -> str | None:
    """Why moving this workload would take it below what it (or a PodDisruptionBudget) promises; None: safe."""
    spec = obj.get("spec") or {}
    replicas = int(spec.get("replicas", 1) if kind.name != "job" else 0)
    if replicas <= 0 or (kind.name != "deployment" and not moves_pods):
        return None
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    budget = pdb_floor(pdbs, (obj.get("metadata") or {}).get("namespace", ""), labels, replicas)
    if kind.name == "deployment":
        return _deployment_risk(obj, replicas, budget)
    return _eviction_risk(kind, replicas, budget)


# -- the plan ----------------------------------------------------------------------------------------------
@dataclass
class Move:  # pylint: disable=too-many-instance-attributes
    """One workload to re-place (and whose pods to move off the legacy node)."""
    kind: Kind
    name: str
    namespace: str
    policy: str
    plan: Plan | None                  # None: already re-placed (an interrupted run), only its pods move
    pods_on_legacy: int
    risk: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def workload(self) -> str:
        return f"{self.kind.name}/{self.name}"

    def as_json(self) -> Obj:
        return {"workload": self.workload, "namespace": self.namespace, "policy": self.policy,
                "podsOnLegacyNode": self.pods_on_legacy, "how": HOW[self.kind.name],
                "templateChange": bool(self.plan is not None and self.plan.changed),
                **({"availabilityRisk": self.risk} if self.risk else {})}


@dataclass
class Stuck:
    """Something on the legacy node (or aimed at it) that migrate cannot move, and why."""
    workload: str
    namespace: str
    reason: str
    pods: list[str] = field(default_factory=list)

    def as_json(self) -> Obj:
        return {"workload": self.workload, "namespace": self.namespace, "reason": self.reason, "pods": self.pods}


def owner_workload(pod: Obj) -> tuple[str, str] | None:
    """``workload.owner_of`` for a pod as JSON; None for a bare pod."""
    meta = pod.get("metadata") or {}
    owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if owner is None:
        return None
    return owner_of(str(owner.get("kind", "")), str(owner.get("name", "")), meta.get("labels") or {})


def classify(workloads: dict[str, list[Obj]], legacy_pods: list[Obj], pdbs: list[Obj], force: bool = False
             ) -> tuple[list[Move], list[Stuck], int]:
    """``workloads``: the five kinds' objects (by kind name); ``legacy_pods``: the non-DaemonSet pods on the
    legacy node. Returns (moves in a stable order, what cannot move, how many workloads are unaffected)."""
    on_legacy: dict[tuple[str, str, str], list[str]] = {}
    stuck: list[Stuck] = []
    for pod in legacy_pods:
        meta = pod.get("metadata") or {}
        owner = owner_workload(pod)
        if owner is None:
            stuck.append(Stuck(f"pod/{meta.get('name')}", meta.get("namespace", ""),
                               "a bare pod (no controller re-creates it elsewhere): re-create it from a manifest "
                               "aimed at Virtual Nodes v2, or delete it", [meta.get("name", "")]))
            continue
        on_legacy.setdefault((owner[0], meta.get("namespace", ""), owner[1]), []).append(meta.get("name", ""))
    moves: list[Move] = []
    unaffected = 0
    owned_jobs = {(o["metadata"].get("namespace"), o["metadata"].get("name")) for o in workloads.get("job", [])
                  if any(r.get("kind") == "CronJob" for r in o["metadata"].get("ownerReferences") or [])}
    for kind_name in KINDS:
        kind = KINDS[kind_name]
        for obj in sorted(workloads.get(kind_name, []), key=lambda o: (o["metadata"].get("namespace", ""),
                                                                       o["metadata"].get("name", ""))):
            meta = obj["metadata"]
            ns, name = meta.get("namespace", ""), meta.get("name", "")
            pods = on_legacy.pop((kind_name, ns, name), [])
            if kind_name == "replicaset" and any(r.get("kind") == "Deployment" and r.get("controller")
                                                 for r in meta.get("ownerReferences") or []):
                continue                                    # its Deployment is the workload
            try:
                policy = legacy_policy(obj, kind)
            except PlacementError as exc:
                stuck.append(Stuck(f"{kind_name}/{name}", ns, str(exc), pods))
                continue
            if policy is None and not pods:
                unaffected += 1
                continue
            if kind_name == "job" and (pods or (ns, name) in owned_jobs or _started(obj)):
                if pods:
                    stuck.append(Stuck(f"job/{name}", ns, "a started Job's pods finish where they run (its template "
                                       "cannot change): wait for it to complete, or delete it", pods))
                else:
                    unaffected += 1         # it runs (or ran) elsewhere; a CronJob's next Jobs follow the CronJob
                continue
            if kind_name == "deployment" and (obj.get("spec") or {}).get("paused"):
                stuck.append(Stuck(f"deployment/{name}", ns, "its rollouts are paused: resume it ('kubectl rollout "
                                   f"resume deployment/{name} -n {ns}') and re-run", pods))
                continue
            try:
                p = replan(obj, kind, policy) if policy is not None else None
            except PlacementError as exc:
                stuck.append(Stuck(f"{kind_name}/{name}", ns, str(exc), pods))
                continue
            # a changed template rolls a Deployment's pods, and a StatefulSet's (RollingUpdate) too
            rolls = p is not None and p.changed and kind_name in ("deployment", "statefulset")
            risk = availability_risk(kind, obj, pdbs, bool(pods) or rolls) if (pods or rolls) else None
            if risk and force:
                risk = None
            moves.append(Move(kind, name, ns, policy or placed_policy(obj), p, len(pods), risk))
    for (kind_name, ns, name), pods in sorted(on_legacy.items()):
        stuck.append(Stuck(f"{kind_name}/{name}", ns, f"its {kind_name} was not found among the workloads "
                           "migrate moves; move or delete its pods", pods))
    return moves, stuck, unaffected


def placed_policy(obj: Obj) -> str:
    """The policy a workload already re-placed for v2 has (an interrupted run), from its annotation."""
    managed = Managed.parse(((obj.get("metadata") or {}).get("annotations") or {}).get(PLACEMENT_ANNOTATION))
    return managed.policy if managed is not None else "none"


def _started(job: Obj) -> bool:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    return not (spec.get("suspend") and not status.get("startTime"))


def restart_patch(kind: Kind, when: str) -> Obj:
    """The merge patch of ``kubectl rollout restart``: a template annotation that starts a rollout."""
    patch: Obj = {}
    node = patch
    for key in kind.template_path:
        node = node.setdefault(key, {})
    node["metadata"] = {"annotations": {RESTARTED_AT: when}}
    return patch


def deployment_rolled_out(obj: Obj) -> bool:
    """The rollout is complete (``kubectl rollout status``'s test)."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    observed, generation = int(status.get("observedGeneration", 0)), int(meta.get("generation", 1))
    return (observed >= generation and int(status.get("replicas", 0)) <= replicas <= int(
        status.get("updatedReplicas", 0)) and int(status.get("availableReplicas", 0)) >= replicas)


def statefulset_rolling(obj: Obj) -> bool:
    """A StatefulSet RollingUpdate the controller is still doing (it reports update and current revisions)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        return False
    update, current = status.get("updateRevision"), status.get("currentRevision")
    return bool(update and current and update != current)


def all_ready(obj: Obj) -> bool:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return int(status.get("readyReplicas", 0)) >= int(spec.get("replicas", 1))
