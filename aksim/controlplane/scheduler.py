"""kube-scheduler: binds pending pods to nodes.

Filters in the default plugin order (NodeUnschedulable, TaintToleration, NodeAffinity, NodeResourcesFit) with
the real failure reasons; like kube-scheduler it stops searching once it found enough feasible nodes (all of
them below 100 nodes, 10 % of 5,000), continuing from where the last pass stopped. Feasible nodes are scored
by the weights of matching preferred node-affinity terms (ties: least allocated, then name). Requested
resources per node are kept as running totals updated from pod events, so a pass never rescans the pods.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aksim.controlplane import events
from aksim.controlplane.podutil import (Obj, Requests, condition, is_active, is_terminated, key_of, memory_bytes,
                                        milli_cpu, pod_requests, set_condition, split_key)
from aksim.controlplane.base import WorkQueue
from aksim.kube.store import DELETED

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime

COMPONENT = "default-scheduler"
VIRTUAL_KUBELET_TYPE = "virtual-kubelet"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
MIN_FEASIBLE_NODES = 100


@dataclass
class NodeInfo:
    """What the scheduler and the kubelets need to know about a node."""
    name: str
    labels: dict[str, str]
    taints: list[Obj]          # spec taints plus the one the node-lifecycle controller adds when not Ready
    unschedulable: bool
    cpu: int                   # allocatable milli-CPU
    memory: int                # allocatable bytes
    pods: int
    host_ip: str
    index: int                 # stable per-cluster number (pod address ranges)

    @property
    def virtual(self) -> bool:
        return self.labels.get("type") == VIRTUAL_KUBELET_TYPE

    def signature(self) -> tuple[Any, ...]:
        return (self.labels, self.taints, self.unschedulable, self.cpu, self.memory, self.pods)


@dataclass
class Usage:
    """Requests of the non-terminated pods bound to a node (``scored_*``: with scoring's non-zero defaults)."""
    cpu: int = 0
    memory: int = 0
    pods: int = 0
    scored_cpu: int = 0
    scored_memory: int = 0

    def add(self, sign: int, requests: Requests) -> None:
        self.cpu += sign * requests.cpu
        self.memory += sign * requests.memory
        self.scored_cpu += sign * requests.scored_cpu
        self.scored_memory += sign * requests.scored_memory
        self.pods += sign


_IDLE = Usage()


@dataclass
class PodSpec:
    """The scheduling-relevant parts of one pod, computed once per scheduling attempt."""
    tolerations: list[Obj]
    node_selector: dict[str, str]
    required: list[Obj] | None
    preferred: list[Obj]
    requests: Requests
    daemon: bool = False        # DaemonSet pods never run on virtual nodes (AKS: kube-proxy & co. exclude them)

    @classmethod
    def of(cls, pod: Obj) -> "PodSpec":
        spec = pod.get("spec") or {}
        affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        return cls(spec.get("tolerations") or [], spec.get("nodeSelector") or {},
                   (required or {}).get("nodeSelectorTerms") if required else None,
                   affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or [], pod_requests(pod),
                   any(r.get("kind") == "DaemonSet" for r in pod["metadata"].get("ownerReferences") or []))


@dataclass
class Verdict:
    reasons: list[str] = field(default_factory=list)
    resolvable: bool = False      # preemption could help (resources), as opposed to taints/affinity


# -- predicates --------------------------------------------------------------------------------------
def tolerates(toleration: Obj, taint: Obj) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    if toleration.get("operator") == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(tolerations: list[Obj], taints: list[Obj]) -> Obj | None:
    for taint in taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def expression_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(values) == 1:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: Obj, labels: dict[str, str], name: str) -> bool:
    """A NodeSelectorTerm: all expressions and fields hold; an empty term matches nothing."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    return (all(expression_matches(e, labels) for e in exprs)
            and all(expression_matches(f, {"metadata.name": name}) for f in fields))


def selector_matches(pod: PodSpec, node: NodeInfo) -> bool:
    if any(node.labels.get(k) != v for k, v in pod.node_selector.items()):
        return False
    return pod.required is None or any(term_matches(t, node.labels, node.name) for t in pod.required)


def preference_score(pod: PodSpec, node: NodeInfo) -> int:
    return sum(int(p.get("weight", 0)) for p in pod.preferred
               if term_matches(p.get("preference") or {}, node.labels, node.name))


def _histogram(counts: Counter[str]) -> str:
    return ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))


def fit_error(total: int, reasons: Counter[str], preemption: Counter[str]) -> str:
    """framework.FitError.Error() followed by the default preemption plugin's message."""
    if total == 0:
        return "no nodes available to schedule pods"
    return (f"0/{total} nodes are available: {_histogram(reasons)}. "
            f"preemption: 0/{total} nodes are available: {_histogram(preemption)}.")


def feasible_nodes_to_find(total: int) -> int:
    """How many feasible nodes a pass looks for before scoring (adaptive percentageOfNodesToScore)."""
    if total < MIN_FEASIBLE_NODES:
        return total
    percentage = max(50 - total // 125, 5)
    return max(total * percentage // 100, MIN_FEASIBLE_NODES)


def node_info(node: Obj, index: int) -> NodeInfo:
    meta, spec, status = node["metadata"], node.get("spec") or {}, node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    taints = list(spec.get("taints") or [])
    ready = condition(node, "Ready")
    implied = None if ready and ready.get("status") == "True" else \
        UNREACHABLE_TAINT if ready and ready.get("status") == "Unknown" else NOT_READY_TAINT
    if implied and not any(t.get("key") == implied for t in taints):
        taints.append({"key": implied, "effect": "NoSchedule"})
    host_ip = next((a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), "")
    return NodeInfo(meta["name"], dict(meta.get("labels") or {}), taints, bool(spec.get("unschedulable")),
                    milli_cpu(alloc.get("cpu", 0)), memory_bytes(alloc.get("memory", 0)), int(alloc.get("pods", 110)),
                    host_ip, index)


class Scheduler:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp
        self.nodes: dict[str, NodeInfo] = {}
        self.usage: dict[str, Usage] = {}
        self._bound: dict[str, tuple[str, Requests]] = {}      # pod key -> (node, its requests)
        self._waiting: set[str] = set()                        # unschedulable until something changes
        self._queue: WorkQueue[str] = WorkQueue(cp, lambda: cp.timings.controller, self._schedule)
        self._indexes = 0
        self._next_start = 0
        self._writing = ""                                     # the pod whose status this scheduler is writing

    # -- state ----------------------------------------------------------------------------------------
    def load(self) -> None:
        """Initial sync (the seeder bulk-loads without events)."""
        for node in self.cp.store.list_page("nodes").items:
            self.on_node("ADDED", node)
        for pod in self.cp.store.list_page("pods").items:
            self.on_pod("ADDED", pod)

    def on_node(self, event_type: str, node: Obj) -> None:
        name = node["metadata"]["name"]
        old = self.nodes.get(name)
        if event_type == DELETED:
            self.nodes.pop(name, None)
            return
        if old is None:
            self._indexes += 1
        info = node_info(node, old.index if old else self._indexes)
        self.nodes[name] = info
        if old is None or old.signature() != info.signature():
            self._retry_waiting()

    def on_pod(self, event_type: str, pod: Obj) -> None:
        key = key_of(pod)
        if event_type == DELETED or is_terminated(pod):
            self._waiting.discard(key)
            self._queue.discard(key)
            if self._release(key):
                self._retry_waiting()
            return
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        if node:
            self._waiting.discard(key)
            self._account(key, node, pod)
        elif is_active(pod) and spec.get("schedulerName", COMPONENT) == COMPONENT and key != self._writing:
            self._waiting.discard(key)          # new, or changed by a user (say, a toleration added): try again
            self._queue.add(key)

    def _account(self, key: str, node: str, pod: Obj) -> None:
        if key in self._bound and self._bound[key][0] == node:
            return
        self._release(key)
        requests = pod_requests(pod)
        self._bound[key] = (node, requests)
        self.usage.setdefault(node, Usage()).add(1, requests)

    def _release(self, key: str) -> bool:
        entry = self._bound.pop(key, None)
        if entry is None:
            return False
        node, requests = entry
        self.usage[node].add(-1, requests)
        return True

    def _retry_waiting(self) -> None:
        for key in self._waiting:
            self._queue.add(key)
        self._waiting.clear()

    # -- one attempt ----------------------------------------------------------------------------------
    def _schedule(self, key: str) -> None:
        namespace, name = split_key(key)
        pod = self.cp.store.get_ref("pods", namespace, name)
        if pod is None or (pod.get("spec") or {}).get("nodeName") or not is_active(pod):
            return
        spec = PodSpec.of(pod)
        feasible: list[NodeInfo] = []
        reasons: Counter[str] = Counter()
        preemption: Counter[str] = Counter()
        nodes = list(self.nodes.values())
        wanted = feasible_nodes_to_find(len(nodes))
        start = self._next_start % len(nodes) if nodes else 0
        for offset in range(len(nodes)):
            node = nodes[(start + offset) % len(nodes)]
            verdict = self.filter(spec, node)
            if verdict is None:
                feasible.append(node)
                if len(feasible) >= wanted:
                    self._next_start = start + offset + 1
                    break
                continue
            reasons.update(verdict.reasons)
            preemption[NO_VICTIMS if verdict.resolvable else NOT_HELPFUL] += 1
        if not feasible:
            self._unschedulable(pod, fit_error(len(self.nodes), reasons, preemption))
            return
        best = min(feasible, key=lambda n: (-preference_score(spec, n), self._allocated(spec, n), n.name))
        self._bind(pod, best.name)

    def filter(self, pod: PodSpec, node: NodeInfo) -> Verdict | None:
        """None when the pod fits the node, else why not."""
        if node.unschedulable and not any(tolerates(t, UNSCHEDULABLE_TAINT) for t in pod.tolerations):
            return Verdict([REASON_UNSCHEDULABLE])
        taint = untolerated_taint(pod.tolerations, node.taints)
        if taint is not None:
            return Verdict([f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"])
        if not selector_matches(pod, node) or (pod.daemon and node.virtual):
            return Verdict([REASON_AFFINITY])
        use = self.usage.get(node.name, _IDLE)
        short = []
        if use.pods + 1 > node.pods:
            short.append("Too many pods")
        cpu, memory = pod.requests.cpu, pod.requests.memory
        if cpu and cpu > node.cpu - use.cpu:
            short.append("Insufficient cpu")
        if memory and memory > node.memory - use.memory:
            short.append("Insufficient memory")
        return Verdict(short, resolvable=True) if short else None

    def _allocated(self, pod: PodSpec, node: NodeInfo) -> float:
        """NodeResourcesFit's LeastAllocated view: the share of the node requested once the pod is on it."""
        use = self.usage.get(node.name, _IDLE)
        cpu = (use.scored_cpu + pod.requests.scored_cpu) / node.cpu if node.cpu else 1.0
        memory = (use.scored_memory + pod.requests.scored_memory) / node.memory if node.memory else 1.0
        return (cpu + memory) / 2

    def _bind(self, pod: Obj, node: str) -> None:
        meta = pod["metadata"]

        def bind(p: Obj) -> None:
            p["spec"]["nodeName"] = node
            set_condition(p, "PodScheduled", "True")
        bound = self.cp.store.mutate("pods", meta["namespace"], meta["name"], bind)
        events.record(self.cp, bound, "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} "
                      f"to {node}", component=COMPONENT)

    def _unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        self._waiting.add(key_of(pod))
        self._writing = key_of(pod)
        try:
            updated = self.cp.store.mutate("pods", meta["namespace"], meta["name"], lambda p: set_condition(
                p, "PodScheduled", "False", "Unschedulable", message))
        finally:
            self._writing = ""
        events.record(self.cp, updated, "FailedScheduling", message, type_=events.WARNING, component=COMPONENT)
