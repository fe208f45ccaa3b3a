"""The virtual-kubelet ACI connector (azure-aci 1.6.4) as it behaves inside its pod.

Any pod on a regular node whose container runs the virtual-kubelet image is a connector, whether the AKS
add-on or a Helm chart created it. When the kubelet starts it, the connector reads its configuration from
its environment and arguments and checks its prerequisites in the provider's order. On success the subnet is
delegated if needed, the container runs, and after ``timings.node_register`` the node and its Lease appear;
the Lease is renewed every ``timings.lease_renew``. On failure the container crash-loops with the kubelet's
back-off (10 s, 20 s, 40 s ... 300 s, times ``timings.backoff_scale``; :mod:`aksim.controlplane.backoff`); at
each restart it checks again, so a later fix (a role assignment) heals it and no node is registered meanwhile.
When a connector pod goes away its node keeps a stale Lease and, after ``timings.lease_duration``, the
node-lifecycle controller (:mod:`aksim.controlplane.nodelifecycle`) marks it Unknown.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aksim.arm import authorization, network
from aksim.arm.containerservice import agent_pool_vnet_id, is_msi
from aksim.controlplane import events
from aksim.controlplane.backoff import Backoff, go_duration
from aksim.controlplane.nodelifecycle import mark_unknown  # noqa: F401  (re-exported)
from aksim.controlplane.podutil import (Obj, container_id, image_id, key_of, mark_running, set_condition,
                                        split_key, upsert_node)
from aksim.controlplane.base import now_micro, now_rfc3339
from aksim.kube.store import DELETED, NotFound

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime
    from aksim.controlplane.scheduler import NodeInfo
    from aksim.world import Principal

VK_IMAGE_MARK = "virtual-kubelet"
VERSION = "1.6.4"
KUBELET_VERSION = f"v1.25.0-vk-azure-aci-{VERSION}"
DEFAULT_NODE_NAME = "virtual-node-aci-linux"
LOG_ANNOTATION = "aksim.io/log"
ACI_SERVICE = "Microsoft.ContainerInstance/containerGroups"
SUBNET_WRITE = "Microsoft.Network/virtualNetworks/subnets/write"
SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"
GROUP_WRITE = "Microsoft.ContainerInstance/containerGroups/write"
DEFAULT_TAINT = {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}
VIRTUAL_NODE_CAPACITY = {"cpu": "10000", "memory": "4Ti", "pods": "5000"}
NODE_CONDITIONS = (("Ready", "True", "KubeletReady", "kubelet is ready."),
                   ("OutOfDisk", "False", "KubeletHasSufficientDisk", "kubelet has sufficient disk space available"),
                   ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                   ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                   ("NetworkUnavailable", "False", "RouteCreated", "RouteController created a route"))


def is_connector(pod: Obj) -> bool:
    return any(VK_IMAGE_MARK in c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or [])


def authorization_failed(principal: "Principal", action: str, scope: str) -> str:
    return (f"Code=\"AuthorizationFailed\" Message=\"The client '{principal.client_id}' with object id "
            f"'{principal.object_id}' does not have authorization to perform action '{action}' over scope "
            f"'{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.\"")


def log_line(level: str, message: str) -> str:
    return f'time="{now_rfc3339()}" level={level} msg="{message}"'


# -- configuration ------------------------------------------------------------------------------------
@dataclass
class ConnectorConfig:
    node_name: str
    container: Obj
    subscription: str
    aci_resource_group: str
    region: str
    subnet_name: str
    subnet_cidr: str
    vnet_subscription: str
    vnet_resource_group: str
    vnet_name: str
    client_id: str
    managed_identity: bool
    taint: Obj | None

    @property
    def subnet_id(self) -> str:
        return (f"/subscriptions/{self.vnet_subscription}/resourceGroups/{self.vnet_resource_group}/providers/"
                f"Microsoft.Network/virtualNetworks/{self.vnet_name}/subnets/{self.subnet_name}")

    @property
    def aci_resource_group_id(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.aci_resource_group}"


def _container(pod: Obj) -> Obj:
    return next(c for c in pod["spec"]["containers"] if VK_IMAGE_MARK in c.get("image", ""))


def _env(cp: "Runtime", pod: Obj, container: Obj) -> dict[str, str]:
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            secret = cp.store.get_ref("secrets", pod["metadata"]["namespace"], ref.get("name", "")) or {}
            encoded = (secret.get("data") or {}).get(ref.get("key", ""))
            if encoded is not None:
                env[var["name"]] = base64.b64decode(encoded).decode()
        elif var.get("value") not in (None, ""):
            env[var["name"]] = str(var["value"])
    return env


def _flags(container: Obj) -> dict[str, str]:
    """``--name value`` / ``--name=value`` pairs from command and args; a bare flag maps to "true"."""
    words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    flags: dict[str, str] = {}
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        name, sep, value = word[2:].partition("=")
        if not sep:
            following = words[i + 1] if i + 1 < len(words) else ""
            value = following if following and not following.startswith("--") else "true"
        flags[name] = value
    return flags


def _taint(env: dict[str, str], flags: dict[str, str]) -> Obj | None:
    if flags.get("disable-taint", "false").lower() != "false":
        return None
    return {"key": env.get("VKUBELET_TAINT_KEY", DEFAULT_TAINT["key"]),
            "value": env.get("VKUBELET_TAINT_VALUE", DEFAULT_TAINT["value"]),
            "effect": env.get("VKUBELET_TAINT_EFFECT", DEFAULT_TAINT["effect"])}


def _client_id(cp: "Runtime", env: dict[str, str]) -> tuple[str, bool]:
    """The identity the provider authenticates as and whether it is a managed identity.

    ``AZURE_CLIENT_ID`` (a service principal) wins over ``VIRTUALNODE_USER_IDENTITY_CLIENTID``; with neither,
    a chart on AKS uses the node's ``azure.json``: the kubelet identity, or the cluster's service principal.
    """
    if env.get("AZURE_CLIENT_ID"):
        return env["AZURE_CLIENT_ID"], False
    if env.get("VIRTUALNODE_USER_IDENTITY_CLIENTID"):
        return env["VIRTUALNODE_USER_IDENTITY_CLIENTID"], True
    mc = cp.managed_cluster
    if not env.get("AKS_CREDENTIAL_LOCATION") or mc is None:
        return "", False
    if is_msi(mc):
        kubelet = (mc["properties"].get("identityProfile") or {}).get("kubeletidentity") or {}
        return kubelet.get("clientId", ""), True
    return mc["properties"]["servicePrincipalProfile"]["clientId"], False


def read_config(cp: "Runtime", pod: Obj) -> ConnectorConfig:
    container = _container(pod)
    env, flags = _env(cp, pod, container), _flags(container)
    sub = cp.world.scenario.subscription_id
    mc = cp.managed_cluster
    vnet_id = agent_pool_vnet_id(mc, cp.world) if mc else None
    vnet_parts = vnet_id.split("/") if vnet_id else []
    client_id, managed = _client_id(cp, env)
    return ConnectorConfig(
        node_name=flags.get("nodename") or env.get("NODE_NAME") or env.get("VKUBELET_NODE_NAME") or DEFAULT_NODE_NAME,
        container=container, subscription=env.get("AZURE_SUBSCRIPTION_ID", sub),
        aci_resource_group=env.get("ACI_RESOURCE_GROUP", cp.cluster.node_resource_group),
        region=env.get("ACI_REGION", cp.cluster.location),
        subnet_name=env.get("ACI_SUBNET_NAME", ""), subnet_cidr=env.get("ACI_SUBNET_CIDR", ""),
        vnet_subscription=env.get("ACI_VNET_SUBSCRIPTION_ID", vnet_parts[2] if vnet_parts else sub),
        vnet_resource_group=env.get("ACI_VNET_RESOURCE_GROUP", vnet_parts[4] if vnet_parts else ""),
        vnet_name=env.get("ACI_VNET_NAME", vnet_parts[-1] if vnet_parts else ""),
        client_id=client_id, managed_identity=managed, taint=_taint(env, flags))


# -- runtime state ------------------------------------------------------------------------------------
@dataclass
class Connector:
    key: str
    pod_ip: str
    host: "NodeInfo"
    config: ConnectorConfig | None = None
    principal: "Principal | None" = None
    backoff: Backoff = field(default_factory=Backoff)
    healthy: bool = False
    alive: bool = True
    log: list[str] = field(default_factory=list)

    @property
    def node_name(self) -> str:
        return self.config.node_name if self.config else ""


class Connectors:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp
        self._by_pod: dict[str, Connector] = {}
        self.by_node: dict[str, Connector] = {}        # registered, healthy connectors

    # -- events ---------------------------------------------------------------------------------------
    def on_pod(self, event_type: str, pod: Obj) -> None:
        if event_type != DELETED:
            return
        conn = self._by_pod.pop(key_of(pod), None)
        if conn is None:
            return
        conn.alive = False
        if conn.config and self.by_node.get(conn.node_name) is conn:
            del self.by_node[conn.node_name]        # renewals stop: the node-lifecycle controller takes over

    def start(self, pod: Obj, pod_ip: str, host: "NodeInfo") -> None:
        conn = Connector(key_of(pod), pod_ip, host)
        self._by_pod[conn.key] = conn
        self._attempt(conn)

    def forget_node(self, node: str) -> None:
        """Stop every connector serving ``node`` (the add-on is being removed)."""
        for conn in self._by_pod.values():
            if conn.config and conn.node_name == node:
                conn.healthy = False
        self.by_node.pop(node, None)

    # -- one container run ----------------------------------------------------------------------------
    def _attempt(self, conn: Connector) -> None:
        namespace, name = split_key(conn.key)
        pod = self.cp.store.get_ref("pods", namespace, name)
        if not conn.alive or pod is None:
            return
        conn.config = read_config(self.cp, pod)
        conn.log = [log_line("info", f"Starting virtual-kubelet {VERSION} with provider azure"),
                    log_line("info", f"node name: {conn.config.node_name}, ACI region: {conn.config.region}, "
                                     f"resource group: {conn.config.aci_resource_group}")]
        error = self._prerequisites(conn)
        if error is not None:
            conn.log.append(log_line("fatal", f"error initializing provider azure: {error}"))
            self._crash(conn, pod)
            return
        conn.healthy = True
        conn.log.append(log_line("info", "ACI provider initialized"))
        self.cp.store.mutate("pods", namespace, name, lambda p: self._running(p, conn))
        self.cp.later(self.cp.timings.node_register, lambda: self._register(conn))

    def _prerequisites(self, conn: Connector) -> str | None:
        """The provider's start-up checks, in its order; the first error or None (subnet then delegated)."""
        assert conn.config is not None
        config, world = conn.config, self.cp.world
        if not config.client_id:
            return "neither AZURE_CLIENT_ID or VIRTUALNODE_USER_IDENTITY_CLIENTID is being set"
        conn.principal = world.principal_by_client_id(config.client_id)
        if conn.principal is None:
            if config.managed_identity:
                return (f"ManagedIdentityCredential authentication failed. the requested identity "
                        f"'{config.client_id}' isn't assigned to this resource")
            return (f"ClientSecretCredential authentication failed. AADSTS700016: Application with identifier "
                    f"'{config.client_id}' was not found in the directory '{world.scenario.tenant_id}'.")
        conn.log.append(log_line("info", f"using {'managed identity' if config.managed_identity else 'client'} "
                                         f"{config.client_id}"))
        regions = [r.replace(" ", "").lower() for r in world.scenario.aci_regions]
        if config.region.replace(" ", "").lower() not in regions:
            return f"Region {config.region} is invalid. Current supported regions are: {', '.join(regions)}"
        if world.provider_state.get("microsoft.containerinstance", "Registered") != "Registered":
            return ("Code=\"MissingSubscriptionRegistration\" Message=\"The subscription is not registered to use "
                    "namespace 'Microsoft.ContainerInstance'. See https://aka.ms/rps-not-found for how to register "
                    "subscriptions.\"")
        error = self._network(conn) if config.subnet_name else None
        if error is not None:
            return error
        if not authorization.has_permission(world, conn.principal.object_id, GROUP_WRITE,
                                            config.aci_resource_group_id):
            return authorization_failed(conn.principal, GROUP_WRITE, config.aci_resource_group_id)
        return None

    def _network(self, conn: Connector) -> str | None:
        assert conn.config is not None and conn.principal is not None
        config, world = conn.config, self.cp.world
        if not config.vnet_name:
            return "vnet name can not be empty please set ACI_VNET_NAME"
        subnet = world.arm.get(config.subnet_id)
        if subnet is None:
            return (f"subnet '{config.subnet_name}' is not found in vnet '{config.vnet_name}' and subnet CIDR is "
                    f"not specified")
        props = subnet["properties"]
        prefix = props.get("addressPrefix") or (props.get("addressPrefixes") or [""])[0]
        if config.subnet_cidr and config.subnet_cidr != prefix:
            return (f"found subnet '{config.subnet_name}' using different CIDR: '{prefix}'. "
                    f"desired: '{config.subnet_cidr}'")
        if props.get("routeTable"):
            return (f"unable to delegate subnet '{config.subnet_name}' to Azure Container Instance since it "
                    f"references the route table '{props['routeTable']['id']}'.")
        links = [link.get("properties", {}).get("linkedResourceType") for link in props.get("serviceAssociationLinks")
                 or []]
        if any(kind != ACI_SERVICE for kind in links):
            link = next(link for link in props["serviceAssociationLinks"]
                        if link.get("properties", {}).get("linkedResourceType") != ACI_SERVICE)
            return (f"unable to delegate subnet '{config.subnet_name}' to Azure Container Instance as it is used by "
                    f"other Azure resource: '{link.get('id', '')}'.")
        delegated = bool(links) or any((d.get("properties") or {}).get("serviceName") == ACI_SERVICE
                                       for d in props.get("delegations") or [])
        action = SUBNET_JOIN if delegated else SUBNET_WRITE
        if not authorization.has_permission(world, conn.principal.object_id, action, subnet["id"]):
            return authorization_failed(conn.principal, action, subnet["id"])
        if delegated:
            return None
        error = network.delegate_subnet(world, subnet["id"])
        if error is None:
            conn.log.append(log_line("info", f"new subnet {config.subnet_name} has been updated successfully"))
        return error

    def _running(self, pod: Obj, conn: Connector) -> None:
        mark_running(pod, conn.pod_ip, conn.host.host_ip)
        pod["metadata"].setdefault("annotations", {})[LOG_ANNOTATION] = "\n".join(conn.log) + "\n"

    def _crash(self, conn: Connector, pod: Obj) -> None:
        assert conn.config is not None
        conn.healthy = False
        delay = conn.backoff.next_delay(self.cp.timings.backoff_scale)
        container = conn.config.container
        meta = pod["metadata"]
        message = (f"back-off {go_duration(conn.backoff.current)} restarting failed container={container['name']} "
                   f"pod={meta['name']}_{meta['namespace']}({meta['uid']})")

        def apply(p: Obj) -> None:
            now = now_rfc3339()
            if p["status"].get("phase") != "Running":
                mark_running(p, conn.pod_ip, conn.host.host_ip)
            status = next(s for s in p["status"]["containerStatuses"] if s["name"] == container["name"])
            status.update(ready=False, started=False, restartCount=conn.backoff.restarts,
                          state={"waiting": {"reason": "CrashLoopBackOff", "message": message}},
                          lastState={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now,
                                                    "finishedAt": now,
                                                    "containerID": container_id(p, container["name"])}},
                          imageID=image_id(container.get("image", "")))
            unready = f"containers with unready status: [{container['name']}]"
            set_condition(p, "Ready", "False", "ContainersNotReady", unready)
            set_condition(p, "ContainersReady", "False", "ContainersNotReady", unready)
            p["metadata"].setdefault("annotations", {})[LOG_ANNOTATION] = "\n".join(conn.log) + "\n"
        crashed = self.cp.store.mutate("pods", meta["namespace"], meta["name"], apply)
        events.container_started(self.cp, crashed, container, conn.host.name)
        events.record(self.cp, crashed, "BackOff", f"Back-off restarting failed container {container['name']} in pod "
                      f"{meta['name']}_{meta['namespace']}({meta['uid']})", type_=events.WARNING,
                      component="kubelet", host=conn.host.name, field_path=f"spec.containers{{{container['name']}}}")
        self.cp.later(delay, lambda: self._attempt(conn))

    # -- node and lease -------------------------------------------------------------------------------
    def _register(self, conn: Connector) -> None:
        if not (conn.alive and conn.healthy) or conn.config is None:
            return
        node = conn.node_name
        self._put_node(conn)
        self._renew_lease(node)
        self.by_node[node] = conn
        conn.log.append(log_line("info", f"Node {node} registered, lease controller started"))
        namespace, name = split_key(conn.key)
        try:
            self.cp.store.mutate("pods", namespace, name, lambda p: p["metadata"].setdefault("annotations", {})
                                 .update({LOG_ANNOTATION: "\n".join(conn.log) + "\n"}))
        except NotFound:
            return
        self.cp.aci.resync(node)
        self.cp.later(self.cp.timings.lease_renew, lambda: self._renew(conn))

    def node_object(self, conn: Connector) -> Obj:
        assert conn.config is not None
        name, now = conn.node_name, now_rfc3339()
        labels = {"type": "virtual-kubelet", "kubernetes.io/role": "agent", "kubernetes.io/hostname": name,
                  "alpha.service-controller.kubernetes.io/exclude-balancer": "true",
                  "node.kubernetes.io/exclude-from-external-load-balancers": "true",
                  "beta.kubernetes.io/os": "linux", "kubernetes.io/os": "linux",
                  "kubernetes.azure.com/managed": "false"}
        spec: Obj = {"taints": [conn.config.taint]} if conn.config.taint else {}
        conditions = [{"type": t, "status": s, "lastHeartbeatTime": now, "lastTransitionTime": now, "reason": r,
                       "message": m} for t, s, r, m in NODE_CONDITIONS]
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
                "spec": spec,
                "status": {"capacity": dict(VIRTUAL_NODE_CAPACITY), "allocatable": dict(VIRTUAL_NODE_CAPACITY),
                           "conditions": conditions, "addresses": [{"type": "InternalIP", "address": conn.pod_ip}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                           "nodeInfo": {"operatingSystem": "linux", "architecture": "amd64",
                                        "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "", "machineID": "",
                                        "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "",
                                        "containerRuntimeVersion": ""}}}

    def _put_node(self, conn: Connector) -> None:
        upsert_node(self.cp.store, self.node_object(conn))

    def _renew_lease(self, node: str) -> None:
        duration = max(1, round(self.cp.timings.lease_duration))
        if self.cp.store.get_ref("leases.coordination.k8s.io", "kube-node-lease", node) is None:
            owner = self.cp.store.get_ref("nodes", None, node)
            meta: Obj = {"name": node, "namespace": "kube-node-lease"}
            if owner is not None:
                meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node,
                                            "uid": owner["metadata"]["uid"]}]
            self.cp.store.create("leases.coordination.k8s.io", {
                "metadata": meta, "spec": {"holderIdentity": node, "leaseDurationSeconds": duration,
                                           "renewTime": now_micro()}})
            return
        self.cp.store.mutate("leases.coordination.k8s.io", "kube-node-lease", node, lambda lease: lease["spec"].update(
            holderIdentity=node, leaseDurationSeconds=duration, renewTime=now_micro()))

    def _renew(self, conn: Connector) -> None:
        if not (conn.alive and conn.healthy) or self.by_node.get(conn.node_name) is not conn:
            return
        if self.cp.store.get_ref("nodes", None, conn.node_name) is None:
            self._put_node(conn)
        self._renew_lease(conn.node_name)
        self.cp.later(self.cp.timings.lease_renew, lambda: self._renew(conn))
