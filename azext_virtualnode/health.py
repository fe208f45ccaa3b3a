"""Is the virtual node really working? Gather the facts once, then judge them.

``gather`` reads a fixed, small set of things whatever the cluster size — the cluster, the subnet, the
provider, the connector identity's role assignments and the container groups from ARM; the node and its
Lease by name, the connector pods by label, the virtual node's pods by field selector from Kubernetes —
with the ARM and Kubernetes reads running concurrently. ``evaluate`` is a pure function from those facts
to problems with stable codes, and ``build_status`` to the documented status object.
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from azext_virtualnode._consts import (ACI_PROVIDER, ADDON_NODE_NAME, CONNECTOR_NAMESPACE, NETWORK_CONTRIBUTOR,
                                       TAINT_EFFECT, TAINT_KEY, TAINT_VALUE)
from azext_virtualnode import workload
from azext_virtualnode.addon import ClusterView
from azext_virtualnode.kube import ClusterAccessDenied, ClusterUnreachable, NodeFacts, owned_by_daemonset
from azext_virtualnode.network import SubnetFacts, usable_addresses

LEASE_DURATION = 40.0
ERROR, WARNING = "error", "warning"


@dataclass
class Problem:
    code: str
    message: str
    hint: str
    severity: str = ERROR

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity, "message": self.message, "hint": self.hint}


def crash_looping(container: Any) -> bool:
    """In CrashLoopBackOff now, or between two of its restarts (started again, not ready, failed before)."""
    if container.state and container.state.waiting and container.state.waiting.reason == "CrashLoopBackOff":
        return True
    last = container.last_state.terminated if container.last_state else None
    return (container.restart_count or 0) >= 2 and not container.ready and last is not None and \
        (last.exit_code or 0) != 0


@dataclass
class PodFacts:  # pylint: disable=too-many-instance-attributes
    name: str
    namespace: str
    phase: str
    ready: bool
    restarts: int
    reason: str | None
    message: str | None
    node: str | None

    @classmethod
    def of(cls, pod: Any) -> "PodFacts":
        statuses = pod.status.container_statuses or []
        waiting = next((s.state.waiting for s in statuses if s.state and s.state.waiting), None)
        ready = bool(statuses) and all(s.ready for s in statuses)
        reason = (waiting.reason if waiting else None) or pod.status.reason
        message = (waiting.message if waiting else None) or pod.status.message
        return cls(pod.metadata.name, pod.metadata.namespace, pod.status.phase or "Unknown", ready,
                   sum(s.restart_count or 0 for s in statuses), reason, message, pod.spec.node_name)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace, "phase": self.phase, "ready": self.ready,
                "restarts": self.restarts, "reason": self.reason, "node": self.node}


@dataclass
class Facts:  # pylint: disable=too-many-instance-attributes
    """Everything status judges. ``None`` means 'not known' (not read, or unreadable)."""
    cluster: ClusterView
    mode: str = "none"
    subnet_name: str | None = None
    subnet_id: str | None = None
    subnet: SubnetFacts | None = None
    provider_state: str | None = None
    identity: dict[str, str] | None = None
    role: dict[str, Any] | None = None
    container_groups: int | None = None
    kube_error: str | None = None
    kube_error_code: str = "ClusterUnreachable"     # or ApiServerError, ClusterAccessDenied (kube_retry)
    access_denied: list[Any] = field(default_factory=list)   # access.Denial of reads the API server refused
    caller: str | None = None                                  # who we are on the cluster (for the grant hint)
    node_name: str = ADDON_NODE_NAME
    node: NodeFacts | None = None
    connector_pods: list[PodFacts] = field(default_factory=list)
    connector_events: list[str] = field(default_factory=list)
    connector_log: str = ""
    workload: list[PodFacts] = field(default_factory=list)
    connector_namespace: str = CONNECTOR_NAMESPACE
    lease_duration: float = LEASE_DURATION
    chart: dict[str, Any] | None = None
    # workload diagnosis (azext_virtualnode.workload): None = not read
    pending: list[Any] | None = None
    groups: list[dict[str, Any]] | None = None
    node_pods: set[tuple[str, str]] | None = None
    orphaned: list[dict[str, Any]] | None = None

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


# -- judging -------------------------------------------------------------------------------------------
def evaluate(f: Facts) -> list[Problem]:
    c = f.cluster
    ids = f"-g {c.resource_group} -n {c.name}"
    problems: list[Problem] = []
    if c.busy:
        problems.append(Problem("ClusterBusy", f"Cluster operation in progress (provisioningState: "
                                f"{c.provisioning_state}).", f"Wait with 'az aks virtual-node wait {ids} --ready'.",
                                WARNING))
    if not f.enabled:
        problems.append(Problem("NotEnabled", f"Virtual nodes are not enabled on cluster '{c.name}'.",
                                f"Enable them with 'az aks virtual-node enable {ids}'."))
        if f.access_denied:
            problems.append(_denied(f))
        elif f.kube_error is not None:
            problems.append(kube_error_problem(f, ids, "so a chart-installed connector could not be ruled out",
                                               WARNING))
        return problems
    problems += _arm_problems(f, ids)
    problems += _kube_problems(f, ids)
    return problems


def _arm_problems(f: Facts, ids: str) -> list[Problem]:
    out: list[Problem] = []
    if f.provider_state is not None and f.provider_state != "Registered":
        out.append(Problem("ProviderNotRegistered", f"The {ACI_PROVIDER} resource provider is "
                           f"{f.provider_state} in this subscription.",
                           f"Register it: 'az provider register --namespace {ACI_PROVIDER} --wait'."))
    s = f.subnet
    if f.subnet_name and s is None:
        out.append(Problem("SubnetMissing", f"Subnet '{f.subnet_name}' does not exist in the cluster's virtual "
                           "network.", f"Re-run 'az aks virtual-node enable {ids}{_mode(f)} --subnet-name "
                           f"{f.subnet_name}' to create it."))
    elif s is not None:
        if s.route_table:
            out.append(Problem("SubnetRouteTable", f"Subnet '{s.name}' references route table '{s.route_table}', "
                               "so ACI cannot use it.", f"Remove it: 'az network vnet subnet update --ids {s.id} "
                               "--route-table \"\"'."))
        if s.foreign_delegations:
            out.append(Problem("SubnetDelegatedElsewhere", f"Subnet '{s.name}' is delegated to "
                               f"{', '.join(s.foreign_delegations)}.", "Use a dedicated subnet: disable and "
                               f"re-enable with another --subnet-name ('az aks virtual-node disable {ids}')."))
        elif not s.delegated_to_aci:
            out.append(Problem("SubnetNotDelegated", f"Subnet '{s.name}' is not delegated to "
                               "Microsoft.ContainerInstance/containerGroups.",
                               f"Re-run 'az aks virtual-node enable {ids}{_mode(f)}' to delegate it."))
        if s.ip_configurations:
            out.append(Problem("SubnetInUse", f"Subnet '{s.name}' is used by {s.ip_configurations} other "
                               "resource(s); ACI needs a dedicated subnet.", "Move the virtual node to another "
                               f"subnet: 'az aks virtual-node disable {ids}', then enable with --subnet-name."))
        capacity = sum(usable_addresses(p) for p in s.prefixes)
        if f.container_groups is not None and capacity and f.container_groups >= capacity:
            out.append(Problem("SubnetFull", f"Subnet '{s.name}' has no free addresses ({f.container_groups} "
                               f"container groups in {capacity} usable).", "Delete unused pods, or move the "
                               "virtual node to a larger subnet.", WARNING))
    if f.identity is None and f.mode == "chart":
        out.append(Problem("IdentityMissing", "The identity the chart's connector is configured with was not found "
                           "in Microsoft Entra ID.", f"Re-run 'az aks virtual-node enable {ids} --mode chart' with "
                           "--identity set to an existing user-assigned identity, or without it (kubelet identity)."))
    elif f.identity is None:
        out.append(Problem("IdentityMissing", "The cluster reports no identity for the ACI connector.",
                           f"Wait for the add-on operation to finish ('az aks virtual-node wait {ids} --ready')."))
    elif f.role is not None and not f.role.get("present"):
        out.append(Problem("RoleMissing", f"The connector identity {f.identity['objectId']} has no role that lets it "
                           f"use subnet '{f.subnet_name}'.", f"Grant it: 'az role assignment create "
                           f"--assignee-object-id {f.identity['objectId']} --assignee-principal-type "
                           f"ServicePrincipal --role \"{NETWORK_CONTRIBUTOR}\" --scope {f.subnet_id}', or re-run "
                           f"'az aks virtual-node enable {ids}{_mode(f)}'."))
    return out


def _denied(f: Facts) -> Problem:
    from azext_virtualnode.access import authorization_mode, denied_problem
    if authorization_mode(f.cluster.model) != "local":      # Entra ID: name the AKS RBAC role to grant
        return denied_problem(f.access_denied, f.cluster.id, f.caller)
    what = "; ".join(dict.fromkeys(f"{d.status}: {d.message}" for d in f.access_denied))
    return Problem("ClusterAccessDenied", f"The Kubernetes API server denied access ({what}). The Kubernetes part "
                   "of the status is incomplete.", LOCAL_ACCESS_HINT)


def _kube_problems(f: Facts, ids: str) -> list[Problem]:
    if f.access_denied:
        # The other checks only when every denied read is known (a check of what could not be read would lie).
        known = f.kube_error is None and all(d.need is not None for d in f.access_denied)
        return [_denied(f)] + (_kube_checks(f, ids) if known else [])
    if f.kube_error is not None:
        return [kube_error_problem(f, ids)]
    return _kube_checks(f, ids)


def _kube_checks(f: Facts, ids: str) -> list[Problem]:
    unread = {d.need.resource for d in f.access_denied if d.need is not None}
    out: list[Problem] = []
    deploy = "deploy/aci-connector-linux" if f.mode == "addon" else \
        f"deploy/{f.chart['deployment']}" if f.chart else "<connector pod>"
    logs = f"kubectl logs -n {f.connector_namespace} {deploy}"
    if not f.connector_pods and "pods" not in unread:
        who = "the add-on" if f.mode == "addon" else "Helm"
        out.append(Problem("ConnectorMissing", f"No ACI connector pod runs in namespace '{f.connector_namespace}'.",
                           f"Wait for {who} to deploy it ('az aks virtual-node wait {ids} --ready'), or "
                           "re-run enable."))
    for pod in f.connector_pods:
        if pod.reason == "CrashLoopBackOff" or (pod.restarts and not pod.ready):
            detail = _last_line(f.connector_log) or pod.message or pod.reason or "restarting"
            out.append(Problem("ConnectorCrashLoop", f"Connector pod {pod.name} is crash-looping ({pod.restarts} "
                               f"restarts): {detail}", _crash_hint(detail, f, ids, logs)))
        elif not pod.ready:
            out.append(Problem("ConnectorNotReady", f"Connector pod {pod.name} is {pod.phase} and not ready"
                               f"{': ' + pod.reason if pod.reason else ''}.", f"Inspect it: {logs}", WARNING))
    n = f.node
    if "nodes" in unread:
        return out
    if n is None or not n.registered:
        out.append(Problem("NodeNotRegistered", f"Node '{f.node_name}' is not registered.",
                           f"The connector registers it once it starts; see '{logs}'."))
        return out
    if not n.ready:
        out.append(Problem("NodeNotReady", f"Node '{f.node_name}' is not Ready (Ready={n.ready_status}).",
                           f"Check the connector: '{logs}'."))
    if not n.lease_fresh(f.lease_duration) and "leases" not in unread:
        age = "missing" if n.lease_age is None else f"last renewed {n.lease_age:.0f}s ago"
        out.append(Problem("LeaseStale", f"The node's Lease in kube-node-lease is {age} (limit "
                           f"{f.lease_duration:.0f}s): the connector is not heart-beating.",
                           f"Check the connector pod ('{logs}'); the node is only alive while its Lease is "
                           "renewed."))
    if not n.taint_ok:
        out.append(Problem("TaintMissing", f"Node '{f.node_name}' lacks the taint "
                           f"{TAINT_KEY}={TAINT_VALUE}:{TAINT_EFFECT}, so ordinary pods may land on ACI.",
                           f"Restore it: 'kubectl taint node {f.node_name} {TAINT_KEY}={TAINT_VALUE}:{TAINT_EFFECT}'."))
    if not n.label_ok:
        out.append(Problem("LabelMissing", f"Node '{f.node_name}' lacks the label type=virtual-kubelet that "
                           "workloads select it by.", f"Restore it: 'kubectl label node {f.node_name} "
                           "type=virtual-kubelet'."))
    failed = [p for p in f.workload if p.reason == "ProviderFailed"]
    if failed:
        names = ", ".join(f"{p.namespace}/{p.name}" for p in failed[:5])
        out.append(Problem("PodsProviderFailed", f"{len(failed)} pod(s) on the virtual node failed to start in ACI "
                           f"({names}): {failed[0].message or ''}".rstrip(": "), "ACI does not retry: fix the "
                           "cause (image, subnet size, quota), then delete the pods so they are recreated.",
                           WARNING))
    out += workload.problems(f.pending, f.orphaned, ids)
    return out


LOCAL_ACCESS_HINT = ("Your identity needs to read nodes, leases, pods and events in the cluster: with local "
                     "accounts, the 'Azure Kubernetes Service Cluster User Role' on the cluster; with Kubernetes "
                     "RBAC, a (Cluster)RoleBinding granting 'view' plus nodes and leases.")


def kube_error_problem(f: Facts, ids: str, why: str = "", severity: str = ERROR) -> Problem:
    """ClusterUnreachable (no connection, DNS, TLS), ApiServerError (it answers, but 5xx/429 persisted) or
    ClusterAccessDenied (401/403), each with its own hint."""
    why = f", {why}" if why else ""
    if f.kube_error_code == "ApiServerError":
        return Problem("ApiServerError", f"The Kubernetes API server answers but kept failing{why}: {f.kube_error}.",
                       "Usually temporary (control-plane upgrade or restart, etcd leader change, overload): retry in "
                       f"a few minutes. If it persists, check 'az aks show {ids} --query \"[provisioningState, "
                       "powerState.code]\"' and Azure Service Health, or open a support request.", severity)
    if f.kube_error_code == "ClusterAccessDenied":
        return Problem("ClusterAccessDenied", f"The Kubernetes API server denied access{why}: {f.kube_error}.",
                       LOCAL_ACCESS_HINT, severity)
    return Problem("ClusterUnreachable", f"The Kubernetes API server could not be reached{why}: {f.kube_error}.",
                   "For a private cluster or authorized IP ranges, run from a network that reaches the API "
                   "server; the Azure part of this status is still accurate.", severity)


_DENIED = re.compile(r"perform action '([^']+)' over scope '([^']+)'")


def _crash_hint(detail: str, f: Facts, ids: str, logs: str) -> str:
    denied = _DENIED.search(detail)
    if "AuthorizationFailed" in detail and f.identity:
        action, scope = denied.groups() if denied else ("Microsoft.Network/", f.subnet_id or "")
        if action.startswith("Microsoft.Network/"):
            return (f"The connector identity lacks rights on the subnet: re-run 'az aks virtual-node enable "
                    f"{ids}{_mode(f)}' to grant {NETWORK_CONTRIBUTOR} on it, then wait for the next restart. "
                    f"Logs: {logs}")
        role = "Azure Container Instances Contributor Role" if "ContainerInstance" in action else "Contributor"
        return (f"The connector identity lacks '{action}' on {scope}. Grant it: 'az role assignment create "
                f"--assignee-object-id {f.identity['objectId']} --assignee-principal-type ServicePrincipal "
                f"--role \"{role}\" --scope {scope}'. Logs: {logs}")
    if "route table" in detail:
        return "Remove the route table from the virtual-node subnet, or move to another subnet."
    return f"Read the connector log: '{logs}'."


def _mode(f: Facts) -> str:
    """The flag that makes a suggested 'enable' keep the installed connector's mode."""
    return " --mode chart" if f.mode == "chart" else ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# -- the status object ---------------------------------------------------------------------------------
def build_status(f: Facts, problems: list[Problem]) -> dict[str, Any]:
    c = f.cluster
    s = f.subnet
    subnet = None
    if f.subnet_name:
        subnet = {"id": f.subnet_id, "name": f.subnet_name, "exists": s is not None,
                  "prefix": ", ".join(map(str, s.prefixes)) if s else None,
                  "delegated": s.delegated_to_aci if s else False,
                  "ipUsage": _ip_usage(s, f.container_groups)}
    node = None
    if f.node is not None:
        n = f.node
        node = {"name": n.name, "registered": n.registered, "ready": n.ready,
                "leaseAgeSeconds": round(n.lease_age, 1) if n.lease_age is not None else None,
                "kubeletVersion": n.kubelet_version, "labels": n.labels or {}, "taints": n.taints or [],
                "taintsOk": n.taint_ok}
    by_phase: dict[str, int] = {}
    for pod in f.workload:
        by_phase[pod.phase] = by_phase.get(pod.phase, 0) + 1
    return {
        "cluster": {"id": c.id, "name": c.name, "location": c.location, "provisioningState": c.provisioning_state,
                    "networkPlugin": c.network_plugin, "networkPluginMode": c.network_plugin_mode},
        "mode": f.mode,
        "enabled": f.enabled,
        "chart": f.chart,
        "subnet": subnet,
        "identity": f.identity,
        "roleAssignment": f.role,
        "connector": None if f.kube_error is not None else {
            "namespace": f.connector_namespace, "pods": [p.as_dict() for p in f.connector_pods],
            "events": f.connector_events},
        "node": node,
        "workload": None if f.kube_error is not None else {
            "pods": len(f.workload), "byPhase": by_phase,
            "providerFailed": [{"namespace": p.namespace, "name": p.name, "message": p.message}
                               for p in f.workload if p.reason == "ProviderFailed"],
            "pending": [x.as_dict() for x in f.pending or []]},
        "containerGroups": {"count": f.container_groups, "orphaned": f.orphaned},
        "healthy": f.enabled and not any(p.severity == ERROR for p in problems),
        "problems": [p.as_dict() for p in problems],
    }


def _ip_usage(s: SubnetFacts | None, used: int | None) -> dict[str, int | None] | None:
    if s is None:
        return None
    total = sum(usable_addresses(p) for p in s.prefixes)
    return {"usable": total, "used": used, "available": None if used is None else max(0, total - used)}


# -- gathering -----------------------------------------------------------------------------------------
@dataclass
class Sources:
    """Read functions, injected so the gathering order and concurrency are testable without Azure."""
    subnet: Callable[[str], dict[str, Any] | None]
    provider_state: Callable[[], str | None]
    identity: Callable[[ClusterView], dict[str, str] | None]
    role: Callable[[dict[str, str], str], dict[str, Any]]
    container_groups: Callable[[ClusterView], list[dict[str, Any]] | None]   # the node resource group's
    kube: Callable[[], Any]          # context manager yielding a Kube


# pylint: disable-next=too-many-positional-arguments
def gather(cluster: ClusterView, src: Sources, mode: str, subnet_name: str | None,
           node_name: str = ADDON_NODE_NAME, connector_namespace: str = CONNECTOR_NAMESPACE,
           connector_selector: str = "app=aci-connector-linux") -> Facts:
    f = Facts(cluster=cluster, mode=mode, subnet_name=subnet_name, node_name=node_name,
              connector_namespace=connector_namespace)
    if mode == "none":
        return f
    f.subnet_id = f"{cluster.vnet_id}/subnets/{subnet_name}" if cluster.vnet_id and subnet_name else None
    with ThreadPoolExecutor(max_workers=3) as pool:
        kube_future = pool.submit(_gather_kube, f, src, connector_selector)
        subnet_future = pool.submit(src.subnet, f.subnet_id) if f.subnet_id else None
        provider_future = pool.submit(src.provider_state)
        f.identity = src.identity(cluster)
        if f.identity and f.subnet_id:
            f.role = src.role(f.identity, f.subnet_id)
        f.groups = src.container_groups(cluster)
        f.container_groups = None if f.groups is None else sum(
            1 for g in f.groups if (g.get("tags") or {}).get("NodeName") in (None, node_name))
        raw_subnet = subnet_future.result() if subnet_future else None
        f.subnet = SubnetFacts.of(raw_subnet) if raw_subnet else None
        f.provider_state = provider_future.result()
        kube_future.result()
    if f.groups is not None and f.node_pods is not None:
        f.orphaned = workload.orphaned_groups(f.groups, node_name, f.node_pods)
    return f


def _gather_kube(f: Facts, src: Sources, selector: str) -> None:
    def read(fn: Callable[[], Any], default: Any = None) -> Any:
        """One read; a 403 (this read denied) is noted and the others still run."""
        try:
            return fn()
        except ClusterAccessDenied as exc:
            if exc.status == 401:
                raise
            from azext_virtualnode.access import denial_of
            f.access_denied.append(denial_of(exc))
            return default

    try:
        with src.kube() as kube:
            f.node = read(lambda: kube.node_facts(f.node_name))
            f.connector_pods = [PodFacts.of(p) for p in
                                read(lambda: kube.connector_pods(f.connector_namespace, selector), [])]
            on_node = read(lambda: kube.pods_on_node(f.node_name))
            if on_node is not None:
                f.workload = [PodFacts.of(p) for p in on_node if not owned_by_daemonset(p)]
                f.node_pods = {(p.metadata.namespace, p.metadata.name) for p in on_node}
            target = workload.MODES.get(f.mode)
            if target is not None:
                pending = read(lambda: workload.read_pending(kube))
                if pending is not None:
                    f.pending = workload.pending_findings(pending, target, workload.virtual_nodes(f.node))
            sick = next((p for p in f.connector_pods if not p.ready), None)
            if sick is not None:
                f.connector_events = [f"{e.type} {e.reason}: {e.message}"
                                      for e in read(lambda: kube.pod_events(sick.namespace, sick.name), [])]
                f.connector_log = read(lambda: kube.pod_log_tail(sick.namespace, sick.name), "")
    except ClusterAccessDenied as exc:
        from azext_virtualnode.access import denial_of
        f.access_denied.append(denial_of(exc))
        f.kube_error, f.kube_error_code = str(exc), exc.code
    except ClusterUnreachable as exc:
        f.kube_error, f.kube_error_code = str(exc), exc.code
