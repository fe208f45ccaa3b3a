"""Is Virtual Nodes v2 really working? Pure rules in ``health.py``'s style: ``V2Facts`` (read by
``v2_mode.gather``) → problems with stable codes → the documented status object.

Codes of their own (on top of the shared ClusterBusy, ProviderNotRegistered, SubnetMissing,
SubnetNotDelegated, RoleMissing, NodeNotReady, NodeNotRegistered, ClusterUnreachable ...):
``InfraPodPending``, ``InfraPodMissing``, ``InfraCrashLoop``, ``WebhookUnavailable``, ``GhostNodes``,
``OutboundMissing`` (warning), ``VersionUnsupported``, ``NodeCapacityLow`` (warning at >= 90 % of a node's
pod capacity, 200 on VN2).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from azext_virtualnode._consts import ACI_CONTRIBUTOR, ACI_PROVIDER, NETWORK_CONTRIBUTOR
from azext_virtualnode.connectors import v2
from azext_virtualnode.health import ERROR, WARNING, Problem
from azext_virtualnode.network import SubnetFacts, usable_addresses

CAPACITY_WARNING = 0.9


@dataclass
class InfraPod:  # pylint: disable=too-many-instance-attributes
    """One StatefulSet pod (= one virtual node's kubelet) as status reports it."""
    name: str
    phase: str
    ready: bool
    containers_ready: str            # "6/6"
    restarts: int
    node: str | None                 # the regular node it runs on
    reason: str | None = None        # CrashLoopBackOff, Unschedulable, ...
    message: str | None = None       # the scheduler's message, the crashing container's last error
    crashing_container: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "phase": self.phase, "ready": self.ready, "containersReady": self.containers_ready,
                "restarts": self.restarts, "runsOn": self.node, "reason": self.reason, "message": self.message}


@dataclass
class V2Node:  # pylint: disable=too-many-instance-attributes
    name: str
    registered: bool
    ready: bool = False
    labelled: bool = False
    tainted: bool = False
    lease_age: float | None = None
    pods: int | None = None
    capacity: int = v2.MAX_PODS_PER_NODE
    unschedulable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "registered": self.registered, "ready": self.ready,
                "leaseAgeSeconds": round(self.lease_age, 1) if self.lease_age is not None else None,
                "labelOk": self.labelled, "taintOk": self.tainted, "pods": self.pods, "capacity": self.capacity,
                "cordoned": self.unschedulable}


@dataclass
class V2Subnet:
    name: str
    id: str
    facts: SubnetFacts | None
    nat_gateway: str | None = None

    def as_dict(self, groups: int | None) -> dict[str, Any]:
        s = self.facts
        usable = sum(usable_addresses(p) for p in s.prefixes) if s else None
        return {"id": self.id, "name": self.name, "exists": s is not None,
                "prefix": ", ".join(map(str, s.prefixes)) if s else None,
                "delegated": s.delegated_to_aci if s else False, "natGateway": self.nat_gateway,
                "ipUsage": None if s is None else {"usable": usable, "used": groups,
                                                   "available": None if groups is None or usable is None
                                                   else max(0, usable - groups)}}


@dataclass
class V2Facts:  # pylint: disable=too-many-instance-attributes
    """Everything v2 status judges; None = not known."""
    cluster: Any                      # ClusterView
    release: Any                      # V2Release
    k8s_minor: int | None = None
    subnets: list[V2Subnet] = field(default_factory=list)
    provider_state: str | None = None
    identity: dict[str, Any] | None = None
    roles: list[dict[str, Any]] = field(default_factory=list)
    container_groups: int | None = None
    kube_error: str | None = None
    kube_error_code: str = "ClusterUnreachable"
    pods: list[InfraPod] = field(default_factory=list)
    nodes: list[V2Node] = field(default_factory=list)       # one per replica (registered or not)
    ghosts: list[str] = field(default_factory=list)
    admission: dict[str, Any] | None = None                 # {"desired", "ready"}; None: no Deployment
    webhook: bool | None = None
    pending: list[Any] | None = None                        # workload.Finding of Pending pods aimed at v2


def _ids(f: V2Facts) -> str:
    return f"-g {f.cluster.resource_group} -n {f.cluster.name}"


def evaluate(f: V2Facts) -> list[Problem]:
    ids, out = _ids(f), []
    c = f.cluster
    if c.busy:
        out.append(Problem("ClusterBusy", f"Cluster operation in progress (provisioningState: "
                           f"{c.provisioning_state}).", f"Wait with 'az aks virtual-node wait {ids} --ready'.",
                           WARNING))
    out += _version(f, ids) + _arm(f, ids)
    if f.kube_error is not None:
        out.append(Problem(f.kube_error_code, f"Could not read the cluster: {f.kube_error}.",
                           "Run from a network that reaches the API server, then re-run 'az aks virtual-node "
                           f"status {ids}'."))
        return out
    from azext_virtualnode import workload
    return out + _infra(f, ids) + _nodes(f, ids) + _admission(f, ids) + workload.problems(f.pending, None, ids)


def _version(f: V2Facts, ids: str) -> list[Problem]:
    r = f.release
    if f.k8s_minor is None:
        return []
    verdict = v2.support(r.chart_version, f.k8s_minor)
    if verdict in ("Y", "?"):
        return []
    tested = ", ".join(v2.tested_lines(f.k8s_minor)) or "none"
    pick = v2.pick_version(f.k8s_minor)
    return [Problem("VersionUnsupported", f"Chart {v2.CHART_NAME} {r.chart_version} is "
                    f"{'not compatible' if verdict == '-' else 'not a known version'} with Kubernetes "
                    f"1.{f.k8s_minor} (lines tested with it: {tested}).",
                    f"Install a supported chart: 'az aks virtual-node enable {ids} --mode v2"
                    f"{' --chart-version ' + pick if pick else ''}'.",
                    ERROR if verdict == "-" else WARNING)]


def _arm(f: V2Facts, ids: str) -> list[Problem]:
    out: list[Problem] = []
    if f.provider_state is not None and f.provider_state != "Registered":
        out.append(Problem("ProviderNotRegistered", f"The {ACI_PROVIDER} resource provider is {f.provider_state} "
                           "in this subscription.", f"Register it: 'az provider register --namespace "
                           f"{ACI_PROVIDER} --wait'."))
    for s in f.subnets:
        if s.facts is None:
            out.append(Problem("SubnetMissing", f"ACI subnet '{s.name}' (aciSubnetName) does not exist in the "
                               "cluster's virtual network.", f"Re-run 'az aks virtual-node enable {ids} --mode v2' "
                               "to create it."))
            continue
        if not s.facts.delegated_to_aci:
            out.append(Problem("SubnetNotDelegated", f"Subnet '{s.name}' is not delegated to "
                               "Microsoft.ContainerInstance/containerGroups.",
                               f"Re-run 'az aks virtual-node enable {ids} --mode v2' to delegate it."))
        if not s.nat_gateway:
            out.append(Problem("OutboundMissing", f"Subnet '{s.name}' has no NAT gateway: pods on Virtual Nodes "
                               "v2 get no outbound internet access.", f"Attach one: 'az aks virtual-node enable "
                               f"{ids} --mode v2 --nat-gateway <name-or-id>' (or 'az network vnet subnet update "
                               f"--ids {s.id} --nat-gateway <id>').", WARNING))
    for role in f.roles:
        if f.identity is not None and not role.get("present"):
            out.append(Problem("RoleMissing", f"The identity {f.identity['objectId']} the infra pods run as has no "
                               f"{role['role']} (or a role covering it) on {role['scope']}.",
                               f"Grant it: 'az role assignment create --assignee-object-id {f.identity['objectId']}"
                               f" --assignee-principal-type ServicePrincipal --role \"{role['role']}\" --scope "
                               f"{role['scope']}', or re-run 'az aks virtual-node enable {ids} --mode v2'."))
    return out


def _infra(f: V2Facts, ids: str) -> list[Problem]:
    r, out = f.release, []
    logs = f"kubectl logs -n {r.namespace} {{pod}} --all-containers --prefix"
    by_name = {p.name: p for p in f.pods}
    for name in v2.node_names(r.fullname, r.replicas):
        pod = by_name.get(name)
        if pod is None:
            out.append(Problem("InfraPodMissing", f"Infra pod {name} does not exist (the StatefulSet could not "
                               "create it).", f"See why: 'kubectl describe statefulset {r.fullname} -n "
                               f"{r.namespace}' (a missing PriorityClass gives FailedCreate)."))
        elif pod.phase == "Pending" and not pod.node:
            why = pod.message or pod.reason or "not scheduled"
            out.append(Problem("InfraPodPending", f"Infra pod {name} is Pending: {why}",
                               "Each replica needs 2.8 CPU / 9G free on a regular Linux node: add nodes of at least "
                               "4 vCPU / 16 GiB ('az aks nodepool add ... --node-vm-size Standard_D4s_v5') or "
                               f"scale down: 'az aks virtual-node scale {ids} --replicas <n>'."))
        elif pod.reason == "CrashLoopBackOff":
            out.append(Problem("InfraCrashLoop", f"Infra pod {name} is crash-looping (container "
                               f"{pod.crashing_container}, {pod.restarts} restarts): {pod.message or 'see its logs'}",
                               _crash_hint(pod, ids) + f" Logs: '{logs.format(pod=name)}'."))
    return out


def _crash_hint(pod: InfraPod, ids: str) -> str:
    text = pod.message or ""
    if "AuthorizationFailed" in text or "does not have authorization" in text or "LinkedAuthorizationFailed" in text:
        return (f"The identity lacks a role: re-run 'az aks virtual-node enable {ids} --mode v2' to grant "
                f"{ACI_CONTRIBUTOR} on the ACI resource group and {NETWORK_CONTRIBUTOR} on the ACI subnet(s).")
    if "NotFound" in text:
        return f"A resource it needs is missing: re-run 'az aks virtual-node enable {ids} --mode v2'."
    return "Read the crashing container's log for the cause."


def _nodes(f: V2Facts, ids: str) -> list[Problem]:
    out: list[Problem] = []
    ready_pods = {p.name for p in f.pods if p.ready}
    for n in f.nodes:
        if not n.registered:
            if n.name in ready_pods:
                out.append(Problem("NodeNotRegistered", f"Node {n.name} is not registered although its infra pod "
                                   "is ready.", f"Wait ('az aks virtual-node wait {ids} --ready'), then read the "
                                   "kubelet container's log."))
            continue
        if not n.ready:
            out.append(Problem("NodeNotReady", f"Node {n.name} is not Ready.",
                               f"Read its infra pod's kubelet log: 'kubectl logs -n {f.release.namespace} {n.name} "
                               "-c kubelet'."))
        if n.pods is not None and n.capacity and n.pods >= CAPACITY_WARNING * n.capacity:
            out.append(Problem("NodeCapacityLow", f"Node {n.name} runs {n.pods} of its {n.capacity} pods.",
                               f"Add a replica: 'az aks virtual-node scale {ids} --replicas "
                               f"{f.release.replicas + 1}'.", WARNING))
    if f.ghosts:
        out.append(Problem("GhostNodes", f"{len(f.ghosts)} node(s) of release '{f.release.name}' have no infra pod "
                           f"but still show Ready (left by a scale-down or uninstall): {', '.join(f.ghosts)}. Pods "
                           "scheduled there never start.",
                           f"Delete them: 'kubectl delete node {' '.join(f.ghosts)}' (or 'az aks virtual-node prune "
                           f"{ids}'); scale with 'az aks virtual-node scale {ids} --replicas N', which removes them."))
    return out


def _admission(f: V2Facts, ids: str) -> list[Problem]:
    adm, ns = f.admission, f.release.namespace
    if f.release.admission_replicas == 0:       # the release asks for none (and then renders no webhook)
        return []
    why = []
    if adm is None:
        why.append(f"its Deployment {ns}/{v2.ADMISSION_NAME} does not exist")
    elif adm["desired"] == 0:
        why.append(f"its Deployment {ns}/{v2.ADMISSION_NAME} is scaled to 0 (the release asks for "
                   f"{f.release.admission_replicas})")
    elif adm["ready"] < 1:
        why.append(f"0 of {adm['desired']} admission controller pod(s) are ready")
    if f.webhook is False:
        why.append(f"the MutatingWebhookConfiguration {v2.ADMISSION_NAME} is missing")
    if not why:
        return []
    return [Problem("WebhookUnavailable", "The VN2 admission controller is unavailable: " + "; ".join(why) +
                    ". Its webhook fails open (failurePolicy Ignore), so pods and nodes are admitted unmodified.",
                    f"Bring it back: 'kubectl scale deployment {v2.ADMISSION_NAME} -n {ns} --replicas 1', or re-run "
                    f"'az aks virtual-node enable {ids} --mode v2'; check 'kubectl get pods -n {ns}'.")]


def build_status(f: V2Facts, problems: list[Problem]) -> dict[str, Any]:
    c, r = f.cluster, f.release
    subnets = [s.as_dict(f.container_groups) for s in f.subnets]
    return {
        "cluster": {"id": c.id, "name": c.name, "location": c.location, "provisioningState": c.provisioning_state,
                    "networkPlugin": c.network_plugin, "networkPluginMode": c.network_plugin_mode},
        "mode": "v2",
        "enabled": True,
        "chart": r.as_status(),
        "subnet": subnets[0] if subnets else None,
        "subnets": subnets,
        "identity": f.identity,
        "roleAssignment": f.roles[0] if f.roles else None,
        "roleAssignments": f.roles,
        "connector": None if f.kube_error is not None else {
            "namespace": r.namespace, "pods": [p.as_dict() for p in f.pods], "events": []},
        "infraPods": [p.as_dict() for p in f.pods],
        "node": f.nodes[0].as_dict() if f.nodes else None,
        "nodes": [n.as_dict() for n in f.nodes],
        "ghostNodes": f.ghosts,
        "admissionController": None if f.kube_error is not None else {
            "deployment": f.admission, "webhookConfigured": f.webhook},
        "workload": None if f.kube_error is not None else {
            "pods": sum(n.pods or 0 for n in f.nodes), "pending": [x.as_dict() for x in f.pending or []]},
        "containerGroups": {"count": f.container_groups},
        "healthy": not any(p.severity == ERROR for p in problems),
        "problems": [p.as_dict() for p in problems],
    }
