"""Put a workload on the virtual node: the pod-template fields each connector mode needs, merged into the
workload without clobbering the user's own, and removed again exactly.

Pure functions on the workload's Kubernetes JSON (camelCase dicts, as the API server returns them); no I/O.

* ``only``: the mode's ``nodeSelector`` and tolerations, so every pod runs on the virtual node.
* ``burst``: the tolerations plus a *preferred* node affinity (weight 100) for the regular nodes, so pods go to
  ACI only when the regular nodes are full.
* ``off``: removes what ``place`` added, and nothing else.

What ``place`` added is recorded in the annotation ``PLACEMENT_ANNOTATION`` on the workload (JSON: the policy,
the mode and exactly the selector entries, tolerations and preferred terms it inserted); an item the workload
already had is never recorded, so ``off`` leaves it. Lists are merged by value (add or remove only ours); the
result is a JSON merge patch (RFC 7386) of the three pod-spec fields and the annotation, or nothing when the
workload already is as asked.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from azext_virtualnode._consts import TAINT_KEY

PLACEMENT_ANNOTATION = "virtual-node.aks.azure.com/placement"
LEGACY_TAINT_KEY = "azure.com/aci"
POLICIES = ("only", "burst", "off")
BURST_WEIGHT = 100

Obj = dict[str, Any]


# -- connector modes ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModeTarget:
    """How pods reach the virtual nodes of one connector mode. A new mode is one more entry in MODES."""
    mode: str
    node_selector: dict[str, str]
    tolerations: tuple[Obj, ...]
    regular_nodes: Obj                  # a node-selector requirement true for regular nodes only (burst)
    taints: tuple[Obj, ...]             # the taints its virtual nodes carry
    unsupported_checks: bool = True     # warn about what the ACI connector (add-on, chart) cannot run
    description: str = ""


_V1_TOLERATIONS = ({"key": TAINT_KEY, "operator": "Exists"},
                   {"key": LEGACY_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"})
_V1 = ModeTarget("addon", {"type": "virtual-kubelet", "kubernetes.io/os": "linux"}, _V1_TOLERATIONS,
                 {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]},
                 ({"key": TAINT_KEY, "value": "azure", "effect": "NoSchedule"},),
                 description="the ACI connector add-on")
V2_NODE_SELECTOR = {"virtualization": "virtualnode2", "kubernetes.io/os": "linux"}
V2_TOLERATIONS = ({"key": TAINT_KEY, "operator": "Exists"},)
MODES: dict[str, ModeTarget] = {
    "addon": _V1,
    "chart": ModeTarget("chart", _V1.node_selector, _V1.tolerations, _V1.regular_nodes, _V1.taints,
                        description="the virtual-kubelet-azure-aci chart"),
    # Virtual Nodes v2 (reference virtual-nodes-v2.md section 4; installed with enable --mode v2).
    "v2": ModeTarget("v2", V2_NODE_SELECTOR, V2_TOLERATIONS,
                     {"key": "virtualization", "operator": "NotIn", "values": ["virtualnode2"]},
                     ({"key": TAINT_KEY, "effect": "NoSchedule"},), unsupported_checks=False,
                     description="Virtual Nodes v2"),
}


# -- workload kinds ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    name: str
    kind: str
    api_version: str
    template_path: tuple[str, ...]      # where the pod template is in the object


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("deployment", "Deployment", "apps/v1", ("spec", "template")),
    Kind("statefulset", "StatefulSet", "apps/v1", ("spec", "template")),
    Kind("replicaset", "ReplicaSet", "apps/v1", ("spec", "template")),
    Kind("job", "Job", "batch/v1", ("spec", "template")),
    Kind("cronjob", "CronJob", "batch/v1", ("spec", "jobTemplate", "spec", "template")),
)}
ALIASES = {"deploy": "deployment", "deployments": "deployment", "sts": "statefulset", "statefulsets": "statefulset",
           "rs": "replicaset", "replicasets": "replicaset", "jobs": "job", "cj": "cronjob", "cronjobs": "cronjob",
           "ds": "daemonset", "daemonsets": "daemonset"}
DAEMONSET_REASON = ("DaemonSets never run on virtual nodes: the virtual node does not run DaemonSet pods (one "
                    "per node is what a DaemonSet is for, and ACI has no node to run them on).")


class PlacementError(ValueError):
    """The request can never work; the message says why and what to do instead."""


def parse_workload(text: str) -> tuple[Kind, str]:
    """``KIND/NAME`` -> (Kind, name). Raises PlacementError for a malformed value, an unknown kind or a DaemonSet."""
    kind_text, sep, name = (text or "").partition("/")
    kind_name = ALIASES.get(kind_text.lower(), kind_text.lower())
    if not sep or not kind_text or not name or "/" in name:
        raise PlacementError(f"--workload expects KIND/NAME, e.g. deployment/web, not '{text}'.")
    if kind_name == "daemonset":
        raise PlacementError(f"Cannot place daemonset/{name}: {DAEMONSET_REASON}")
    if kind_name not in KINDS:
        raise PlacementError(f"--workload kind '{kind_text}' is not supported: use one of "
                             f"{', '.join(KINDS)} (e.g. deployment/{name}).")
    return KINDS[kind_name], name


def _template(obj: Obj, kind: Kind) -> Obj:
    node: Any = obj
    for key in kind.template_path:
        node = (node or {}).get(key) or {}
    return node


def pod_spec(obj: Obj, kind: Kind) -> Obj:
    return _template(obj, kind).get("spec") or {}


# -- items and their equality -------------------------------------------------------------------------------
def _toleration_key(t: Obj) -> tuple[Any, ...]:
    op = t.get("operator") or "Equal"
    return (t.get("key") or "", op, "" if op == "Exists" else (t.get("value") or ""), t.get("effect") or "",
            t.get("tolerationSeconds"))


def _same_toleration(a: Obj, b: Obj) -> bool:
    return _toleration_key(a) == _toleration_key(b)


def burst_term(target: ModeTarget) -> Obj:
    return {"weight": BURST_WEIGHT, "preference": {"matchExpressions": [copy.deepcopy(target.regular_nodes)]}}


@dataclass
class Managed:
    """What ``place`` manages on one workload (the annotation's content)."""
    policy: str = "off"
    mode: str = ""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[Obj] = field(default_factory=list)
    preferred: list[Obj] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps({"policy": self.policy, "mode": self.mode, "nodeSelector": self.node_selector,
                           "tolerations": self.tolerations, "preferred": self.preferred},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str | None) -> "Managed | None":
        if not text:
            return None
        try:
            raw = json.loads(text)
        except ValueError:
            return None
        if not isinstance(raw, dict):
            return None
        return cls(str(raw.get("policy") or "off"), str(raw.get("mode") or ""),
                   {str(k): str(v) for k, v in (raw.get("nodeSelector") or {}).items()},
                   [t for t in raw.get("tolerations") or [] if isinstance(t, dict)],
                   [t for t in raw.get("preferred") or [] if isinstance(t, dict)])

    def summary(self) -> Obj:
        return {"nodeSelector": self.node_selector, "tolerations": self.tolerations, "preferred": self.preferred}


# -- the three pod-spec fields ----------------------------------------------------------------------------
@dataclass
class Scheduling:
    """The pod-spec fields ``place`` touches."""
    node_selector: dict[str, str]
    tolerations: list[Obj]
    affinity: Obj

    @classmethod
    def of(cls, spec: Obj) -> "Scheduling":
        return cls(dict(spec.get("nodeSelector") or {}), copy.deepcopy(list(spec.get("tolerations") or [])),
                   copy.deepcopy(spec.get("affinity") or {}))

    @property
    def preferred(self) -> list[Obj]:
        return ((self.affinity.get("nodeAffinity") or {})
                .get("preferredDuringSchedulingIgnoredDuringExecution") or [])

    def set_preferred(self, terms: list[Obj]) -> None:
        node_affinity = self.affinity.setdefault("nodeAffinity", {})
        if terms:
            node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = terms
        else:
            node_affinity.pop("preferredDuringSchedulingIgnoredDuringExecution", None)
        if not node_affinity:
            self.affinity.pop("nodeAffinity", None)

    def fields(self) -> Obj:
        """The fields as they appear in a pod spec (empty ones left out, as the API server does)."""
        out: Obj = {}
        if self.node_selector:
            out["nodeSelector"] = self.node_selector
        if self.tolerations:
            out["tolerations"] = self.tolerations
        if self.affinity:
            out["affinity"] = self.affinity
        return out


def strip_managed(s: Scheduling, managed: Managed | None) -> Managed:
    """Remove from ``s`` what ``managed`` records (entries the user changed since are left); returns what went."""
    removed = Managed()
    if managed is None:
        return removed
    for key, value in managed.node_selector.items():
        if s.node_selector.get(key) == value:
            del s.node_selector[key]
            removed.node_selector[key] = value
    for ours in managed.tolerations:
        index = next((i for i, t in enumerate(s.tolerations) if _same_toleration(t, ours)), None)
        if index is not None:
            removed.tolerations.append(s.tolerations.pop(index))
    preferred = list(s.preferred)
    for ours in managed.preferred:
        if ours in preferred:
            preferred.remove(ours)
            removed.preferred.append(ours)
    s.set_preferred(preferred)
    return removed


def wanted(target: ModeTarget, policy: str) -> Managed:
    if policy == "only":
        return Managed(policy, target.mode, dict(target.node_selector), [dict(t) for t in target.tolerations])
    if policy == "burst":
        return Managed(policy, target.mode, {}, [dict(t) for t in target.tolerations], [burst_term(target)])
    return Managed()


def add_missing(s: Scheduling, want: Managed) -> Managed:
    """Add to ``s`` what ``want`` lists and ``s`` lacks; returns exactly what was added."""
    added = Managed(want.policy, want.mode)
    for key, value in want.node_selector.items():
        if key not in s.node_selector:
            s.node_selector[key] = value
            added.node_selector[key] = value
    for toleration in want.tolerations:
        if not any(_same_toleration(t, toleration) for t in s.tolerations):
            s.tolerations.append(toleration)
            added.tolerations.append(toleration)
    preferred = list(s.preferred)
    for term in want.preferred:
        if term not in preferred:
            preferred.append(term)
            added.preferred.append(term)
    s.set_preferred(preferred)
    return added


def selector_conflicts(s: Scheduling, want: Managed) -> list[str]:
    """The user's nodeSelector entries that contradict ours: such pods could never reach the virtual node."""
    return [f"{k}={s.node_selector[k]}" for k, v in want.node_selector.items()
            if k in s.node_selector and s.node_selector[k] != v]


def affinity_conflicts(spec: Obj, target: ModeTarget) -> list[str]:
    """Required node-affinity expressions on the virtual node's own label keys that its labels fail, when every
    term has one: then no term can match the virtual node (e.g. the chart-style ``type NotIn virtual-kubelet``)."""
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    labels = target.node_selector
    blocking = []
    for term in required:
        failed = [e for e in term.get("matchExpressions") or [] if e.get("key") in labels
                  and not requirement_holds(e, labels, unknown=True)]
        if not failed:
            return []
        blocking.append(f"{failed[0].get('key')} {failed[0].get('operator')} {failed[0].get('values') or []}")
    return blocking


def requirement_holds(expr: Obj, labels: dict[str, str], unknown: bool = False) -> bool:
    """A label-selector requirement (In, NotIn, Exists, DoesNotExist) on ``labels``; ``unknown`` for any other
    operator (Gt/Lt of node affinity)."""
    key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    return {"In": key in labels and labels[key] in values, "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, unknown)


# -- the plan ---------------------------------------------------------------------------------------------
@dataclass
class Plan:  # pylint: disable=too-many-instance-attributes
    kind: Kind
    name: str
    namespace: str
    policy: str
    mode: str
    before: Scheduling
    after: Scheduling
    managed_before: Managed | None
    managed_after: Managed | None
    added: Managed
    removed: Managed
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.before.fields() != self.after.fields() or _annotation(self.managed_before) != \
            _annotation(self.managed_after)

    def merge_patch(self, resource_version: str | None = None) -> Obj | None:
        """The JSON merge patch that turns the workload into the planned one; None when nothing changes."""
        if not self.changed:
            return None
        spec_patch = merge_diff(self.before.fields(), self.after.fields())
        patch: Obj = {"metadata": {"annotations": {PLACEMENT_ANNOTATION: _annotation(self.managed_after)}}}
        if resource_version:
            patch["metadata"]["resourceVersion"] = resource_version
        if spec_patch:
            _nest(patch, self.kind.template_path + ("spec",), spec_patch)
        return patch

    def fragment(self, obj: Obj) -> Obj:
        """The workload as it would be, ready for ``kubectl apply`` or a GitOps manifest: the whole object (a
        partial manifest would make ``kubectl apply`` drop every field it leaves out of an apply-managed object)
        without what the server fills in, with the resulting pod-template fields (null for a field that was set
        and is now empty) and the ownership annotation."""
        manifest = copy.deepcopy(obj)
        manifest.pop("status", None)
        manifest["apiVersion"], manifest["kind"] = self.kind.api_version, self.kind.kind
        meta = manifest.setdefault("metadata", {})
        for key in _SERVER_FIELDS:
            meta.pop(key, None)
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _SERVER_ANNOTATIONS}
        annotation = _annotation(self.managed_after)
        if annotation is None:
            annotations.pop(PLACEMENT_ANNOTATION, None)
        else:
            annotations[PLACEMENT_ANNOTATION] = annotation
        meta["annotations"] = annotations
        if not annotations:
            del meta["annotations"]
        spec = _template(manifest, self.kind).setdefault("spec", {})
        for key in ("nodeSelector", "tolerations", "affinity"):
            spec.pop(key, None)
        fields: Obj = self.after.fields()
        for key in self.before.fields():
            fields.setdefault(key, None)
        spec.update(fields)
        return manifest

    def result(self, applied: bool) -> Obj:
        return {"workload": f"{self.kind.name}/{self.name}", "namespace": self.namespace, "mode": self.mode,
                "policy": self.policy, "changed": self.changed, "applied": applied,
                "added": self.added.summary(), "removed": self.removed.summary(),
                "warnings": self.warnings, "podTemplate": {"spec": self.after.fields()}}


_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                  "deletionTimestamp", "deletionGracePeriodSeconds")
_SERVER_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision")


def _annotation(managed: Managed | None) -> str | None:
    return managed.as_json() if managed is not None else None


def _nest(root: Obj, path: tuple[str, ...], value: Any) -> None:
    node = root
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def merge_diff(old: Any, new: Any) -> Obj:
    """RFC 7386 patch from ``old`` to ``new`` (both objects): removed keys become null, lists are replaced."""
    patch: Obj = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif isinstance(value, dict) and isinstance(old[key], dict):
            sub = merge_diff(old[key], value)
            if sub:
                patch[key] = sub
        elif value != old[key]:
            patch[key] = value
    return patch


def plan(obj: Obj, kind: Kind, policy: str, target: ModeTarget | None) -> Plan:
    """What ``place --policy`` does to ``obj``. ``target`` (the installed mode) may be None only for ``off``."""
    if policy not in POLICIES:
        raise PlacementError(f"--policy must be one of {', '.join(POLICIES)}, not '{policy}'.")
    meta = obj.get("metadata") or {}
    spec = pod_spec(obj, kind)
    managed_before = Managed.parse((meta.get("annotations") or {}).get(PLACEMENT_ANNOTATION))
    before = Scheduling.of(spec)
    after = Scheduling.of(spec)
    removed = strip_managed(after, managed_before)
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    if policy == "off":
        return Plan(kind, name, namespace, policy, managed_before.mode if managed_before else "", before, after,
                    managed_before, None, Managed(), removed)
    assert target is not None
    want = wanted(target, policy)
    conflicts = selector_conflicts(after, want)
    if conflicts:
        raise PlacementError(
            f"{kind.kind} '{name}' selects nodes with {', '.join(conflicts)}, which contradicts the virtual node's "
            f"{', '.join(f'{k}={v}' for k, v in want.node_selector.items())}: its pods could never run there. "
            "Remove that nodeSelector entry first (kubectl edit), or use --policy burst.")
    blocking = affinity_conflicts(spec, target) if policy == "only" else []
    if blocking:
        raise PlacementError(
            f"{kind.kind} '{name}' requires nodes with {'; '.join(blocking)} (required node affinity), which the "
            "virtual node does not have: its pods could never run there. Remove that term first (kubectl edit), "
            "or use --policy burst.")
    added = add_missing(after, want)
    # The annotation records what place manages now: what it just added plus what it had added before and kept.
    kept = Managed(policy, target.mode,
                   {k: v for k, v in removed.node_selector.items() if after.node_selector.get(k) == v},
                   [t for t in removed.tolerations if any(_same_toleration(t, a) for a in after.tolerations)],
                   [t for t in removed.preferred if t in after.preferred])
    managed_after = Managed(policy, target.mode, {**kept.node_selector, **added.node_selector},
                            _ordered_union(kept.tolerations, added.tolerations, want.tolerations, _same_toleration),
                            _ordered_union(kept.preferred, added.preferred, want.preferred, lambda a, b: a == b))
    return Plan(kind, name, namespace, policy, target.mode, before, after, managed_before, managed_after,
                _only_new(added, removed), _only_gone(removed, after), warnings=[])


def _ordered_union(kept: list[Obj], added: list[Obj], order: list[Obj], same: Any) -> list[Obj]:
    items = kept + added
    return [w for w in order if any(same(w, i) for i in items)]


def _only_new(added: Managed, removed: Managed) -> Managed:
    """Re-adding what was just stripped is no change: report only entries the workload did not have."""
    return Managed(added.policy, added.mode,
                   {k: v for k, v in added.node_selector.items() if removed.node_selector.get(k) != v},
                   [t for t in added.tolerations if not any(_same_toleration(t, r) for r in removed.tolerations)],
                   [t for t in added.preferred if t not in removed.preferred])


def _only_gone(removed: Managed, after: Scheduling) -> Managed:
    return Managed(removed.policy, removed.mode,
                   {k: v for k, v in removed.node_selector.items() if after.node_selector.get(k) != v},
                   [t for t in removed.tolerations if not any(_same_toleration(t, a) for a in after.tolerations)],
                   [t for t in removed.preferred if t not in after.preferred])


# -- what the connector cannot run -----------------------------------------------------------------------
SUPPORTED_VOLUMES = ("emptyDir", "secret", "configMap", "projected", "downwardAPI", "azureFile", "gitRepo")
_VOLUME_FIELDS = ("name",)


def unsupported(spec: Obj, target: ModeTarget) -> list[str]:
    """What the ACI connector (add-on or chart) cannot run, from the virtual-nodes limitations (reference
    virtual-nodes.md section 9): each a warning, since the pods may still run elsewhere (burst) or the
    connector may have gained support."""
    if not target.unsupported_checks:
        return []
    out: list[str] = []
    containers = list(spec.get("containers") or [])
    if spec.get("initContainers"):
        out.append(f"init containers ({', '.join(c.get('name', '?') for c in spec['initContainers'])}): virtual "
                   "nodes do not run init containers")
    if spec.get("hostNetwork"):
        out.append("hostNetwork: ACI container groups have no host network")
    if spec.get("hostAliases"):
        out.append("hostAliases are not supported on virtual nodes")
    for c in containers:
        name = c.get("name", "?")
        if (c.get("securityContext") or {}).get("privileged"):
            out.append(f"container '{name}' is privileged: ACI does not run privileged containers")
        lifecycle = c.get("lifecycle") or {}
        if lifecycle.get("postStart") or lifecycle.get("preStop"):
            out.append(f"container '{name}' has lifecycle hooks (postStart/preStop), which virtual nodes ignore")
        for env in c.get("env") or []:
            ref = ((env.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if ref == "status.podIP":
                out.append(f"container '{name}' reads status.podIP through the downward API (env {env.get('name')}),"
                           " which virtual nodes do not fill in")
    for volume in spec.get("volumes") or []:
        kinds = [k for k in volume if k not in _VOLUME_FIELDS]
        bad = [k for k in kinds if k not in SUPPORTED_VOLUMES]
        if bad:
            out.append(f"volume '{volume.get('name', '?')}' is a {bad[0]} volume: virtual nodes mount only "
                       "emptyDir, secret, configMap, projected, downwardAPI and inline azureFile volumes (no "
                       "PersistentVolumeClaims, no hostPath)")
    return out
