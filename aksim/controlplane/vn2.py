"""Virtual Nodes v2: the infra pods of the ``virtualnode`` chart and the nodes they register.

An infra pod is a StatefulSet pod labelled ``app.kubernetes.io/name=virtualnode`` (plus
``statefulset.kubernetes.io/pod-name``) with a ``proxycri`` container. When the kubelet of its (regular) node
starts it, the init container completes, the six containers run, and proxycri checks what the real one needs,
as the identity of the node's ``azure.json`` (the kubelet identity ``<cluster>-agentpool``) or the workload
identity (``AZURE_CLIENT_ID``):

1. ``Microsoft.ContainerInstance`` is registered;
2. the target resource group (``ResourceGroup`` env = ``aciResourceGroupName``, default the node resource
   group) exists and the identity may write container groups there;
3. every subnet of ``Subnets`` (comma list of names in the cluster VNet and/or full IDs) exists, is delegated
   to ``Microsoft.ContainerInstance/containerGroups`` and may be joined.

The first failure makes proxycri exit: it crash-loops with the kubelet's back-off, its log (``kubectl logs
<pod> -c proxycri``) and a Warning event (reason ``ProviderInitFailed``, source ``proxycri``; the real
event's reason is not documented) carry the Azure error text, and every restart checks again, so a later grant
heals it. When all is well, ``timings.vn2_register`` later (real: about 45 s) a node named like the pod is
registered (``virtualization=virtualnode2``, ``type=virtual-kubelet``, standard kubelet labels, the
``CustomNodeLabels`` env, taint ``virtual-kubelet.io/provider:NoSchedule``, 200 pods), its Lease is renewed
every ``timings.lease_renew`` and all containers turn ready. Pods bound to it become container groups in the
target resource group with an address from the least-used configured subnet (the ACI provider of
:mod:`aksim.controlplane.aci`).

Ghost nodes: when an infra pod goes away (scale-down, uninstall, deletion) its node stays and, as the VN2 docs
report, still shows Ready. The simulator models this by keeping the ghost's Lease renewed (so the
node-lifecycle controller never marks it Unknown) until the node is deleted; pods bound to a ghost are not run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aksim.arm import authorization, network
from aksim.arm.containerservice import agent_pool_vnet_id, is_msi
from aksim.controlplane import events
from aksim.controlplane.backoff import Backoff, go_duration
from aksim.controlplane.connector import (ACI_SERVICE, GROUP_WRITE, LOG_ANNOTATION, SUBNET_JOIN, Connector,
                                          ConnectorConfig, _env, authorization_failed, log_line)
from aksim.controlplane.podutil import (Obj, container_id, controller_of, image_id, key_of, mark_running,
                                        set_condition, split_key, upsert_node)
from aksim.controlplane.base import now_micro, now_rfc3339
from aksim.kube.store import DELETED, NotFound

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime
    from aksim.controlplane.scheduler import NodeInfo
    from aksim.world import Principal

NAME_LABEL = "app.kubernetes.io/name"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
FAILING = "proxycri"
TAINT = {"key": "virtual-kubelet.io/provider", "effect": "NoSchedule"}
CAPACITY = {"cpu": "10000", "memory": "4Ti", "pods": "200"}
LEASES = "leases.coordination.k8s.io"
COMPONENT = "proxycri"


def is_infra_pod(pod: Obj) -> bool:
    labels = pod["metadata"].get("labels") or {}
    names = {c.get("name") for c in (pod.get("spec") or {}).get("containers") or []}
    return labels.get(NAME_LABEL) == "virtualnode" and POD_NAME_LABEL in labels and FAILING in names


def kubelet_version(labels: dict[str, str], fallback: str) -> str:
    """``1.3409.26080501`` (the chart's app version label) -> ``v1.34.9``, the bundled Kubernetes version."""
    version = labels.get("app.kubernetes.io/version", "")
    match = re.fullmatch(r"1\.(\d+)(\d\d)\.\d+", version)
    return f"v1.{int(match.group(1))}.{int(match.group(2))}" if match else fallback


@dataclass
class InfraPod:
    key: str
    pod_ip: str
    host: "NodeInfo"
    backoff: Backoff = field(default_factory=Backoff)
    alive: bool = True
    registered: bool = False
    logs: dict[str, list[str]] = field(default_factory=dict)
    connector: Connector | None = None

    @property
    def node_name(self) -> str:
        return split_key(self.key)[1]


class VirtualNodes2:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp
        self._by_pod: dict[str, InfraPod] = {}
        self.live: dict[str, InfraPod] = {}       # node -> the infra pod serving it
        self.ghosts: set[str] = set()             # nodes whose infra pod went
        self._renewing: set[str] = set()

    # -- events ---------------------------------------------------------------------------------------
    def on_pod(self, event_type: str, pod: Obj) -> None:
        if event_type != DELETED:
            return
        infra = self._by_pod.pop(key_of(pod), None)
        if infra is None:
            return
        infra.alive = False
        node = infra.node_name
        if self.live.get(node) is infra:
            del self.live[node]
            if self.cp.connectors.by_node.get(node) is infra.connector:
                del self.cp.connectors.by_node[node]
            self.ghosts.add(node)

    def on_node(self, event_type: str, node: Obj) -> None:
        if event_type == DELETED:
            self.ghosts.discard(node["metadata"]["name"])

    def start(self, pod: Obj, pod_ip: str, host: "NodeInfo") -> None:
        infra = InfraPod(key_of(pod), pod_ip, host)
        self._by_pod[infra.key] = infra
        self._attempt(infra)

    # -- one proxycri run -----------------------------------------------------------------------------
    def _attempt(self, infra: InfraPod) -> None:
        namespace, name = split_key(infra.key)
        pod = self.cp.store.get_ref("pods", namespace, name)
        if not infra.alive or pod is None:
            return
        containers = {c["name"]: c for c in pod["spec"]["containers"]}
        env = _env(self.cp, pod, containers[FAILING])
        infra.logs[FAILING] = [log_line("info", "Starting proxycri"),
                               log_line("info", f"node name: {name}, resource group: {self._target_rg(env)}")]
        error, config, principal = self._prerequisites(infra, pod, env)
        if error is not None:
            infra.logs[FAILING].append(log_line("fatal", f"failed to initialize the ACI sandbox provider: {error}"))
            self._crash(infra, pod, error)
            return
        assert config is not None and principal is not None
        infra.logs[FAILING].append(log_line("info", "ACI sandbox provider initialized"))
        infra.connector = Connector(infra.key, infra.pod_ip, infra.host, config=config, principal=principal,
                                    healthy=True)
        self.cp.store.mutate("pods", namespace, name, lambda p: self._running(p, infra, ready=False))
        self.cp.later(self.cp.timings.vn2_register, lambda: self._register(infra))

    def _target_rg(self, env: dict[str, str]) -> str:
        return env.get("ResourceGroup") or self.cp.cluster.node_resource_group

    def _principal(self, env: dict[str, str]) -> tuple["Principal | None", str]:
        world = self.cp.world
        if env.get("AZURE_CLIENT_ID"):
            client_id, how = env["AZURE_CLIENT_ID"], "WorkloadIdentityCredential"
        else:
            mc = self.cp.managed_cluster or {}
            if mc and not is_msi(mc):
                client_id = mc["properties"]["servicePrincipalProfile"]["clientId"]
            else:
                kubelet = ((mc.get("properties") or {}).get("identityProfile") or {}).get("kubeletidentity") or {}
                client_id = kubelet.get("clientId", "")
            how = "ManagedIdentityCredential"
        principal = world.principal_by_client_id(client_id) if client_id else None
        if principal is None:
            return None, (f"{how} authentication failed. the requested identity '{client_id}' isn't assigned to "
                          f"this resource")
        return principal, ""

    def _subnet_ids(self, env: dict[str, str]) -> list[str]:
        names = [s.strip() for s in (env.get("Subnets") or env.get("Subnet") or "").split(",") if s.strip()]
        mc = self.cp.managed_cluster
        vnet_id = agent_pool_vnet_id(mc, self.cp.world) if mc else None
        return [n if n.startswith("/subscriptions/") else f"{vnet_id}/subnets/{n}" for n in names]

    def _prerequisites(self, infra: InfraPod, pod: Obj, env: dict[str, str]) \
            -> tuple[str | None, ConnectorConfig | None, "Principal | None"]:
        world = self.cp.world
        principal, error = self._principal(env)
        if principal is None:
            return error, None, None
        if world.provider_state.get("microsoft.containerinstance", "Registered") != "Registered":
            return ("Code=\"MissingSubscriptionRegistration\" Message=\"The subscription is not registered to use "
                    "namespace 'Microsoft.ContainerInstance'. See https://aka.ms/rps-not-found for how to register "
                    "subscriptions.\""), None, None
        sub = world.scenario.subscription_id
        rg = self._target_rg(env)
        rg_id = f"/subscriptions/{sub}/resourceGroups/{rg}"
        group_id = f"{rg_id}/providers/Microsoft.ContainerInstance/containerGroups/{infra.node_name}"
        if world.arm.get(rg_id) is None:
            return f"Code=\"ResourceGroupNotFound\" Message=\"Resource group '{rg}' could not be found.\"", None, None
        if not authorization.has_permission(world, principal.object_id, GROUP_WRITE, rg_id):
            return authorization_failed(principal, GROUP_WRITE, rg_id), None, None
        subnet_ids = self._subnet_ids(env)
        if not subnet_ids:
            return "no ACI subnet configured: set aciSubnetName", None, None
        for subnet_id in subnet_ids:
            subnet = world.arm.get(subnet_id)
            if subnet is None:
                return f"Code=\"NotFound\" Message=\"Resource {subnet_id} not found.\"", None, None
            if ACI_SERVICE not in network.delegated_services(subnet):
                return (f"Code=\"SubnetMissingRequiredDelegation\" Message=\"Subnet missing required delegation "
                        f"'Microsoft.ContainerInstance' for container group '{infra.node_name}'.\""), None, None
            if not authorization.has_permission(world, principal.object_id, SUBNET_JOIN, subnet_id):
                return (f"Code=\"LinkedAuthorizationFailed\" Message=\"The client '{principal.client_id}' with object "
                        f"id '{principal.object_id}' has permission to perform action '{GROUP_WRITE}' on scope "
                        f"'{group_id}'; however, it does not have permission to perform action(s) '{SUBNET_JOIN}' "
                        f"on the linked scope(s) '{subnet_id}' (respectively) or the linked scope(s) are "
                        f"invalid.\""), None, None
        chosen = max(subnet_ids, key=lambda s: network.subnet_ip_available(world, s))
        parts = chosen.split("/")
        config = ConnectorConfig(
            node_name=infra.node_name, container=next(c for c in pod["spec"]["containers"] if c["name"] == FAILING),
            subscription=sub, aci_resource_group=rg, region=self.cp.cluster.location, subnet_name=parts[-1],
            subnet_cidr="", vnet_subscription=parts[2], vnet_resource_group=parts[4], vnet_name=parts[8],
            client_id=principal.client_id, managed_identity=not env.get("AZURE_CLIENT_ID"), taint=dict(TAINT))
        return None, config, principal

    # -- pod status -----------------------------------------------------------------------------------
    def _logs(self, pod: Obj, infra: InfraPod) -> None:
        annotations = pod["metadata"].setdefault("annotations", {})
        for container, lines in infra.logs.items():
            annotations[f"{LOG_ANNOTATION}.{container}"] = "\n".join(lines) + "\n"

    def _running(self, pod: Obj, infra: InfraPod, *, ready: bool) -> None:
        mark_running(pod, infra.pod_ip, infra.host.host_ip)
        if not ready:
            names = []
            for status in pod["status"]["containerStatuses"]:
                status["ready"] = False
                names.append(status["name"])
            unready = f"containers with unready status: [{' '.join(names)}]"
            set_condition(pod, "Ready", "False", "ContainersNotReady", unready)
            set_condition(pod, "ContainersReady", "False", "ContainersNotReady", unready)
        self._logs(pod, infra)

    def _crash(self, infra: InfraPod, pod: Obj, error: str) -> None:
        delay = infra.backoff.next_delay(self.cp.timings.backoff_scale)
        meta = pod["metadata"]
        container = next(c for c in pod["spec"]["containers"] if c["name"] == FAILING)
        message = (f"back-off {go_duration(infra.backoff.current)} restarting failed container={FAILING} "
                   f"pod={meta['name']}_{meta['namespace']}({meta['uid']})")

        def apply(p: Obj) -> None:
            now = now_rfc3339()
            if p["status"].get("phase") != "Running":
                mark_running(p, infra.pod_ip, infra.host.host_ip)
            status = next(s for s in p["status"]["containerStatuses"] if s["name"] == FAILING)
            status.update(ready=False, started=False, restartCount=infra.backoff.restarts,
                          state={"waiting": {"reason": "CrashLoopBackOff", "message": message}},
                          lastState={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now,
                                                    "finishedAt": now, "message": error,
                                                    "containerID": container_id(p, FAILING)}},
                          imageID=image_id(container.get("image", "")))
            unready = f"containers with unready status: [{FAILING}]"
            set_condition(p, "Ready", "False", "ContainersNotReady", unready)
            set_condition(p, "ContainersReady", "False", "ContainersNotReady", unready)
            self._logs(p, infra)
        crashed = self.cp.store.mutate("pods", meta["namespace"], meta["name"], apply)
        host = infra.host.name
        path = f"spec.containers{{{FAILING}}}"
        events.container_started(self.cp, crashed, container, host)
        events.record(self.cp, crashed, "ProviderInitFailed", error, type_=events.WARNING, component=COMPONENT,
                      host=host, field_path=path)
        events.record(self.cp, crashed, "BackOff", f"Back-off restarting failed container {FAILING} in pod "
                      f"{meta['name']}_{meta['namespace']}({meta['uid']})", type_=events.WARNING,
                      component="kubelet", host=host, field_path=path)
        self.cp.later(delay, lambda: self._attempt(infra))

    # -- node and lease -------------------------------------------------------------------------------
    def _register(self, infra: InfraPod) -> None:
        if not infra.alive or infra.connector is None:
            return
        namespace, name = split_key(infra.key)
        pod = self.cp.store.get_ref("pods", namespace, name)
        if pod is None:
            return
        node = infra.node_name
        self._put_node(infra, pod)
        infra.registered = True
        self.live[node] = infra
        self.ghosts.discard(node)
        self.cp.connectors.by_node[node] = infra.connector
        infra.logs.setdefault("kubelet", []).append(log_line("info", f"Successfully registered node {node}"))
        try:
            self.cp.store.mutate("pods", namespace, name, lambda p: self._running(p, infra, ready=True))
        except NotFound:
            return
        self._renew(node)
        self.cp.aci.resync(node)

    def node_object(self, infra: InfraPod, pod: Obj) -> Obj:
        name, now = infra.node_name, now_rfc3339()
        labels = {"virtualization": "virtualnode2", "type": "virtual-kubelet", "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "beta.kubernetes.io/os": "linux",
                  "beta.kubernetes.io/arch": "amd64"}
        kubelet = next((c for c in pod["spec"]["containers"] if c["name"] == "kubelet"), None)
        custom = _env(self.cp, pod, kubelet).get("CustomNodeLabels", "") if kubelet else ""
        for pair in custom.split(","):
            key, sep, value = pair.strip().partition("=")
            if sep and key:
                labels[key] = value
        conditions = [{"type": t, "status": s, "lastHeartbeatTime": now, "lastTransitionTime": now, "reason": r,
                       "message": m} for t, s, r, m in (
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"))]
        mc = self.cp.managed_cluster or {}
        fallback = f"v{(mc.get('properties') or {}).get('kubernetesVersion', '1.34.9')}"
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
                "spec": {"taints": [dict(TAINT)]},
                "status": {"capacity": dict(CAPACITY), "allocatable": dict(CAPACITY), "conditions": conditions,
                           "addresses": [{"type": "InternalIP", "address": infra.pod_ip},
                                         {"type": "Hostname", "address": name}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                           "nodeInfo": {"operatingSystem": "linux", "architecture": "amd64",
                                        "kubeletVersion": kubelet_version(self._set_labels(pod), fallback),
                                        "kubeProxyVersion": "",
                                        "containerRuntimeVersion": "remote://proxycri", "osImage": "",
                                        "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}}}

    def _set_labels(self, pod: Obj) -> dict[str, str]:
        """The labels of the pod's StatefulSet (they carry the chart's version), else the pod's own."""
        owner = controller_of(pod)
        sts = self.cp.store.get_ref("statefulsets.apps", pod["metadata"]["namespace"], owner["name"]) \
            if owner else None
        return (sts or pod)["metadata"].get("labels") or {}

    def _put_node(self, infra: InfraPod, pod: Obj) -> None:
        upsert_node(self.cp.store, self.node_object(infra, pod))

    def _renew(self, node: str) -> None:
        """Renew ``node``'s Lease now and every ``lease_renew`` while a live or ghost node is served."""
        if node in self._renewing:
            return
        self._renewing.add(node)
        self._renew_tick(node)

    def _renew_tick(self, node: str) -> None:
        store = self.cp.store
        owner = store.get_ref("nodes", None, node)
        if (node not in self.live and node not in self.ghosts) or owner is None:
            self._renewing.discard(node)
            return
        duration = max(1, round(self.cp.timings.lease_duration))
        if store.get_ref(LEASES, "kube-node-lease", node) is None:
            owner_ref = {"apiVersion": "v1", "kind": "Node", "name": node, "uid": owner["metadata"]["uid"]}
            store.create(LEASES, {"metadata": {"name": node, "namespace": "kube-node-lease",
                                               "ownerReferences": [owner_ref]},
                                  "spec": {"holderIdentity": node, "leaseDurationSeconds": duration,
                                           "renewTime": now_micro()}})
        else:
            store.mutate(LEASES, "kube-node-lease", node, lambda lease: lease["spec"].update(
                holderIdentity=node, leaseDurationSeconds=duration, renewTime=now_micro()))
        self.cp.later(self.cp.timings.lease_renew, lambda: self._renew_tick(node))
