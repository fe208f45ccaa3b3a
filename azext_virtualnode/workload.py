"""Why a pod will not go to the virtual node, which container groups lost their pod, which nodes lost theirs.

Pure rules (facts -> findings -> problems), in the style of ``health``: ``classify`` gives a Pending pod that
targets the virtual node a reason code, ``orphaned_groups`` finds container groups of the node whose pod no
longer exists, ``ghost_nodes`` finds nodes of a (v2) release without a backing pod. ``pending_pods`` is the one
read status adds: Pending pods not bound to a node, by field selector, whatever the cluster size.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from azext_virtualnode._consts import TAINT_KEY
from azext_virtualnode.placement import LEGACY_TAINT_KEY, MODES, ModeTarget, requirement_holds

Obj = dict[str, Any]
PENDING_SELECTOR = "status.phase=Pending,spec.nodeName="
TOLERATION_MISSING, NODE_NOT_READY, NODE_FULL, SELECTOR_MISMATCH, UNSCHEDULABLE = (
    "TolerationMissing", "NodeNotReady", "NodeFull", "SelectorMismatch", "Unschedulable")
_LIFECYCLE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_VIRTUAL_LABELS = {(k, v) for t in MODES.values() for k, v in t.node_selector.items() if k != "kubernetes.io/os"}
_VIRTUAL_TAINT_KEYS = (TAINT_KEY, LEGACY_TAINT_KEY)
PLACEABLE = ("deployment", "statefulset", "replicaset", "job", "cronjob")


def owner_of(kind: str | None, name: str | None, labels: dict[str, str]) -> tuple[str, str] | None:
    """(kind name, workload name) that ``place`` would edit for a pod whose controller is ``kind``/``name``: the
    Deployment for its ReplicaSets' pods (by the pod-template-hash suffix), else the controller itself."""
    if not kind or not name:
        return None
    if kind == "ReplicaSet":
        digest = labels.get("pod-template-hash")
        if digest and name.endswith(f"-{digest}"):
            return "deployment", name[:-len(digest) - 1]
        return "replicaset", name
    return kind.lower(), name


# -- facts -------------------------------------------------------------------------------------------------
@dataclass
class VirtualNode:
    """A virtual node as the rules see it (one for the add-on and the chart, one per replica for v2)."""
    name: str
    labels: dict[str, str]
    taints: list[Obj]
    ready: bool


@dataclass
class PendingPod:  # pylint: disable=too-many-instance-attributes
    namespace: str
    name: str
    owner_kind: str | None
    owner_name: str | None
    node_selector: dict[str, str]
    required: list[Obj] | None          # nodeSelectorTerms of the required node affinity
    preferred: list[Obj]
    tolerations: list[Obj]
    message: str = ""                   # the scheduler's PodScheduled=False message
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, pod: Obj) -> "PendingPod":
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
        affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        cond = next((c for c in (pod.get("status") or {}).get("conditions") or []
                     if c.get("type") == "PodScheduled" and c.get("status") == "False"), None)
        return cls(meta.get("namespace", ""), meta.get("name", ""), owner.get("kind") if owner else None,
                   owner.get("name") if owner else None, dict(spec.get("nodeSelector") or {}),
                   (required or {}).get("nodeSelectorTerms") if required else None,
                   list(affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []),
                   list(spec.get("tolerations") or []), (cond or {}).get("message") or "",
                   dict(meta.get("labels") or {}))

    @property
    def targets_virtual_node(self) -> bool:
        """It asks for a virtual node: by nodeSelector, required affinity, or a toleration of its taint."""
        if any((k, v) in _VIRTUAL_LABELS for k, v in self.node_selector.items()):
            return True
        for term in self.required or []:
            for expr in term.get("matchExpressions") or []:
                if expr.get("operator") == "In" and any((expr.get("key"), v) in _VIRTUAL_LABELS
                                                        for v in expr.get("values") or []):
                    return True
        return any(t.get("key") in _VIRTUAL_TAINT_KEYS for t in self.tolerations)

    @property
    def workload(self) -> str | None:
        """``kind/name`` of the workload ``place`` would edit, from the owner reference (no extra reads)."""
        found = owner_of(self.owner_kind, self.owner_name, self.labels)
        return f"{found[0]}/{found[1]}" if found else None

    @property
    def bursts(self) -> bool:
        return any(expr.get("operator") == "NotIn" and (expr.get("key"), (expr.get("values") or [""])[0])
                   in _VIRTUAL_LABELS for p in self.preferred
                   for expr in (p.get("preference") or {}).get("matchExpressions") or [])


# -- scheduling predicates (kube-scheduler's, for the few fields that matter here) ------------------------
def tolerates(toleration: Obj, taint: Obj) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    if toleration.get("operator") == "Exists":
        return True
    if not toleration.get("key"):
        return False
    return (toleration.get("value") or "") == (taint.get("value") or "")


def selects(pod: PendingPod, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in pod.node_selector.items()):
        return False
    if pod.required is None:
        return True
    return any((term.get("matchExpressions") or [])
               and all(requirement_holds(e, labels) for e in term["matchExpressions"]) for term in pod.required)


# -- the rule --------------------------------------------------------------------------------------------
@dataclass
class Finding:
    pod: PendingPod
    code: str
    detail: str

    def as_dict(self) -> Obj:
        return {"namespace": self.pod.namespace, "name": self.pod.name, "workload": self.pod.workload,
                "reason": self.code, "detail": self.detail, "message": self.pod.message}


def expected_nodes(target: ModeTarget) -> list[VirtualNode]:
    """What a virtual node of ``target`` looks like, when none is registered to look at."""
    return [VirtualNode("", dict(target.node_selector), [dict(t) for t in target.taints], False)]


def _fmt(selector: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in selector.items())


def classify(pod: PendingPod, target: ModeTarget, nodes: list[VirtualNode]) -> Finding:
    """Why ``pod`` (Pending, targeting a virtual node) is not on one. ``nodes``: the installed mode's virtual
    nodes (empty when none is registered)."""
    candidates = nodes or expected_nodes(target)
    matching = [n for n in candidates if selects(pod, n.labels)]
    if not matching:
        other = next((m for m in MODES.values() if m.node_selector != target.node_selector
                      and selects(pod, m.node_selector)), None)
        extra = f" (that is the selector of {other.description})" if other else ""
        return Finding(pod, SELECTOR_MISMATCH, f"its node selector{extra} matches no virtual node of "
                       f"{target.description}, whose nodes are labelled {_fmt(target.node_selector)}")
    node = matching[0]
    untolerated = [t for t in node.taints if t.get("effect") in ("NoSchedule", "NoExecute")
                   and t.get("key") not in _LIFECYCLE_TAINTS
                   and not any(tolerates(tol, t) for tol in pod.tolerations)]
    if untolerated:
        taint = untolerated[0]
        shown = f"{taint.get('key')}{'=' + taint['value'] if taint.get('value') else ''}:{taint.get('effect')}"
        if any(t.get("key") == LEGACY_TAINT_KEY for t in pod.tolerations):
            detail = (f"it tolerates only the old key {LEGACY_TAINT_KEY}; the virtual node's taint is now {shown} "
                      f"(the key changed from {LEGACY_TAINT_KEY} to {TAINT_KEY})")
        else:
            detail = f"it does not tolerate the virtual node's taint {shown}"
        return Finding(pod, TOLERATION_MISSING, detail)
    if not nodes or not any(n.ready for n in matching):
        which = ", ".join(n.name for n in matching if n.name) or "no virtual node is registered"
        return Finding(pod, NODE_NOT_READY, f"the virtual node is not Ready ({which})" if nodes else
                       f"the virtual node is not registered ({which})")
    if re.search(r"Too many pods|Insufficient ", pod.message):
        return Finding(pod, NODE_FULL, "the virtual node has no room left (pods capacity or resources)")
    return Finding(pod, UNSCHEDULABLE, "the scheduler has not placed it yet, or refused it for another reason")


def pending_findings(pods: list[Obj], target: ModeTarget, nodes: list[VirtualNode]) -> list[Finding]:
    facts = [PendingPod.of(p) for p in pods]
    return [classify(p, target, nodes) for p in facts if p.targets_virtual_node]


def place_command(ids: str, finding: Finding) -> str | None:
    workload = finding.pod.workload
    if workload is None or workload.split("/")[0] not in PLACEABLE:
        return None
    policy = "burst" if finding.pod.bursts else "only"
    return (f"az aks virtual-node place {ids} --workload {workload} --namespace {finding.pod.namespace} "
            f"--policy {policy}")


# -- orphans and ghosts ------------------------------------------------------------------------------------
def orphaned_groups(groups: list[Obj], node_name: str, pods: set[tuple[str, str]]) -> list[Obj]:
    """Container groups the connector placed for ``node_name`` (tag NodeName) whose pod (tags Namespace,
    PodName) is not among ``pods`` (namespace, name) on that node. List the groups BEFORE the pods, so a pod
    created in between cannot make its fresh group look orphaned."""
    out = []
    for g in groups:
        tags = g.get("tags") or {}
        if tags.get("NodeName") != node_name or not tags.get("PodName"):
            continue
        if (tags.get("Namespace", ""), tags["PodName"]) not in pods:
            out.append({"name": g.get("name"), "id": g.get("id"), "namespace": tags.get("Namespace"),
                        "podName": tags["PodName"], "podUid": tags.get("UID")})
    return out


def ghost_nodes(node_names: list[str], pod_names: set[str]) -> list[str]:
    """Virtual Nodes v2 names each node after the StatefulSet pod that runs its kubelet; a node whose pod is
    gone (scale-down, uninstall) stays 'Ready' for ever. Those are the ghosts, oldest names first."""
    return sorted(n for n in node_names if n not in pod_names)


def group_facts(group: Any) -> Obj:
    """A container group (SDK model or dict) as the plain dict the rules read."""
    if isinstance(group, dict):
        return group
    return {"name": group.name, "id": group.id, "tags": dict(group.tags or {})}


# -- problems ----------------------------------------------------------------------------------------------
def problems(findings: list[Finding] | None, orphaned: list[Obj] | None, ids: str) -> list[Any]:
    """PodsCannotSchedule and OrphanContainerGroups (warnings: the virtual node itself works)."""
    from azext_virtualnode.health import WARNING, Problem
    out = []
    if findings:
        listing = "; ".join(f"{f.pod.namespace}/{f.pod.name} ({f.code}: {f.detail})" for f in findings[:5])
        more = f" and {len(findings) - 5} more" if len(findings) > 5 else ""
        fixes = list(dict.fromkeys(cmd for f in findings if f.code in (TOLERATION_MISSING, SELECTOR_MISMATCH)
                                   for cmd in [place_command(ids, f)] if cmd))
        hints = []
        if fixes:
            hints.append("Give them the virtual node's selector and tolerations: " + "; ".join(f"'{c}'" for c in fixes))
        if any(f.code in (TOLERATION_MISSING, SELECTOR_MISMATCH) and not place_command(ids, f) for f in findings):
            hints.append("For pods without a workload, add the tolerations and selector shown by "
                         f"'az aks virtual-node place {ids} --workload deployment/NAME --policy only --dry-run'")
        if any(f.code == NODE_NOT_READY for f in findings):
            hints.append(f"Bring the virtual node back first: 'az aks virtual-node status {ids}' lists why it is "
                         "not Ready")
        if any(f.code == NODE_FULL for f in findings):
            hints.append("The virtual node is full: delete finished pods or scale the workload down")
        if any(f.code == UNSCHEDULABLE for f in findings):
            hints.append("Read the scheduler's message in 'workload.pending' ('kubectl describe pod')")
        out.append(Problem("PodsCannotSchedule", f"{len(findings)} Pending pod(s) target the virtual node but "
                           f"cannot be scheduled there: {listing}{more}.", ". ".join(hints) + ".", WARNING))
    if orphaned:
        names = ", ".join(g["name"] for g in orphaned[:5]) + (f" and {len(orphaned) - 5} more"
                                                              if len(orphaned) > 5 else "")
        out.append(Problem("OrphanContainerGroups", f"{len(orphaned)} container group(s) of the virtual node have "
                           f"no pod any more and keep running (and costing): {names}.",
                           f"Delete them with 'az aks virtual-node prune {ids}' (lists them and asks first).",
                           WARNING))
    return out


# -- reads (status) ----------------------------------------------------------------------------------------
def read_pending(kube: Any) -> list[Obj]:
    """Pending pods not bound to any node, cluster-wide: one list call with a field selector."""
    return kube.list_raw("/api/v1/pods", fieldSelector=PENDING_SELECTOR)


def virtual_nodes(node: Any) -> list[VirtualNode]:
    """The registered virtual node of the add-on or chart (``kube.NodeFacts``) as the rules see it."""
    if node is None or not node.registered:
        return []
    return [VirtualNode(node.name, dict(node.labels or {}), list(node.taints or []), bool(node.ready))]
