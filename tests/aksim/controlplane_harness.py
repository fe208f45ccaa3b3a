"""Helpers for the control-plane tests: scenarios with tiny timings on the session simulator, polling, ARM pokes."""
from __future__ import annotations

import copy
from typing import Any, Callable, TypeVar

from aksim import controlplane
from aksim.arm import authorization
from aksim.arm.containerservice import ManagedClusters
from aksim.sim import Simulator
from waiting import wait_for

T = TypeVar("T")

SUB = "00000000-0000-0000-0000-000000000001"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/demo-rg"
VNET_ID = f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/demo-vnet"
NODE_RG_ID = f"/subscriptions/{SUB}/resourceGroups/MC_demo-rg_aks-demo_westeurope"
VNODE = "virtual-node-aci-linux"
LEASES = "leases.coordination.k8s.io"
TINY = {"lro": 0.05, "poll": 0.05, "connector_start": 0.05, "connector_restart": 0.15, "node_register": 0.05,
        "lease_renew": 0.1, "lease_duration": 0.5, "aci_create": 0.05, "pod_start": 0.03, "controller": 0.01}
ADDON_NETWORK_ROLE = {"principal": "addon", "role": "Network Contributor", "scope": RG_ID}
DOCS_POD_SPEC = {"nodeSelector": {"kubernetes.io/role": "agent", "beta.kubernetes.io/os": "linux",
                                  "type": "virtual-kubelet"},
                 "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"},
                                 {"key": "azure.com/aci", "effect": "NoSchedule"}]}


def scenario(subnets: list[dict[str, Any]] | None = None, addon: str | None = "vn",
             roles: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """demo-rg/demo-vnet with an Azure CNI cluster aks-demo (3 nodes, 1900m CPU each) and subnet ``vn``."""
    cluster: dict[str, Any] = {
        "name": "aks-demo", "resource_group": "demo-rg", "location": "westeurope",
        "network": {"plugin": "azure", "vnet_subnet": "demo-vnet/aks-subnet"}, "nodes": 3,
        "node_capacity": {"cpu": "2", "allocatable_cpu": "1900m", "memory": "7Gi", "allocatable_memory": "5Gi",
                          "pods": 30},
        "role_assignments": ([ADDON_NETWORK_ROLE] if addon else []) if roles is None else roles}
    if addon:
        cluster["addon"] = {"subnet": addon}
    cluster.update(extra.pop("cluster", {}))
    return {"name": "controlplane-test",
            "resource_groups": [{"name": "demo-rg", "location": "westeurope", "route_tables": ["demo-routes"],
                                 "vnets": [{"name": "demo-vnet", "address_prefixes": ["10.0.0.0/8"],
                                            "subnets": [{"name": "aks-subnet", "prefix": "10.240.0.0/16"}]
                                            + (subnets if subnets is not None
                                               else [{"name": "vn", "prefix": "10.241.0.0/24"}])}]}],
            "clusters": [cluster], "timings": dict(TINY), **extra}


class Harness:
    def __init__(self, simulator: Simulator, raw: dict[str, Any]) -> None:
        simulator.load(copy.deepcopy(raw))
        self.sim = simulator

    @property
    def world(self) -> Any:
        return self.sim.world

    @property
    def cluster(self) -> Any:
        return next(iter(self.world.clusters.values()))

    @property
    def store(self) -> Any:
        return self.cluster.store

    @property
    def cp(self) -> controlplane.ControlPlane:
        return controlplane.control_plane(self.cluster)

    def locked(self, fn: Callable[[], T]) -> T:
        with self.sim.lock:
            return fn()

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.locked(lambda: self.store.get(resource, namespace, name))

    def list(self, resource: str, namespace: str | None = None, labels: str = "", fields: str = "") -> list[Any]:
        return self.locked(lambda: self.store.list(resource, namespace, labels, fields))

    def until(self, fn: Callable[[], T], timeout: float = 8.0, what: str = "") -> T:
        return wait_for(lambda: self.locked(fn), timeout, 0.02, what)

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [e for e in self.list("events", namespace) if e["involvedObject"]["name"] == name]

    # -- ARM side ---------------------------------------------------------------------------------------
    def managed_cluster(self) -> dict[str, Any]:
        return self.world.arm.get(self.cluster.resource_id)

    def addon_principal(self) -> str:
        return self.managed_cluster()["properties"]["addonProfiles"]["aciConnectorLinux"]["identity"]["objectId"]

    def grant(self, role: str, scope: str, principal: str) -> None:
        self.locked(lambda: authorization.assign(self.world, scope, role, principal))

    def set_addon(self, subnet: str | None) -> None:
        """What ``az aks enable-addons`` (subnet) or ``disable-addons`` (None) does: the managed-cluster PUT
        completes, and on enable the CLI grants the add-on identity Contributor on the VNet."""
        def apply() -> None:
            mc = self.managed_cluster()
            profiles = mc["properties"].setdefault("addonProfiles", {})
            if subnet is None:
                profiles["aciConnectorLinux"] = {"enabled": False, "config": None}
            else:
                identity = (profiles.get("aciConnectorLinux") or {}).get("identity") or \
                    ManagedClusters(self.sim).create_addon_identity(mc)
                profiles["aciConnectorLinux"] = {"enabled": True, "config": {"SubnetName": subnet},
                                                 "identity": identity}
                authorization.assign(self.world, VNET_ID, "Contributor", identity["objectId"])
            controlplane.on_cluster_changed(self.world, self.cluster)
        self.locked(apply)

    # -- Kubernetes side --------------------------------------------------------------------------------
    def deployment(self, name: str, replicas: int, pod_spec: dict[str, Any] | None = None,
                   image: str = "mcr.microsoft.com/azuredocs/aci-helloworld", namespace: str = "default",
                   cpu: str | None = None, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        """A Deployment of ``replicas`` pods labelled ``app=<name>``; ``spec`` adds fields (strategy, ...)."""
        container: dict[str, Any] = {"name": name, "image": image}
        if cpu:
            container["resources"] = {"requests": {"cpu": cpu}}
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {**copy.deepcopy(pod_spec or {}), "containers": [container]}},
                         **copy.deepcopy(spec or {})}}
        return self.locked(lambda: self.store.create("deployments.apps", body))

    def scale(self, name: str, replicas: int, namespace: str = "default") -> None:
        self.locked(lambda: self.store.mutate("deployments.apps", namespace, name,
                                              lambda d: d["spec"].update(replicas=replicas)))

    def pods(self, app: str, namespace: str = "default") -> list[dict[str, Any]]:
        return self.list("pods", namespace, f"app={app}")

    def running(self, app: str, count: int, namespace: str = "default") -> list[dict[str, Any]]:
        """Wait until exactly ``count`` pods of ``app`` exist and all run."""
        def check() -> list[dict[str, Any]] | None:
            pods = self.store.list("pods", namespace, f"app={app}")
            ok = len(pods) == count and all(p["status"].get("phase") == "Running" for p in pods)
            return pods if ok else None
        return self.until(check, what=f"{count} running {app} pods")

    def virtual_node(self) -> dict[str, Any]:
        return self.until(lambda: self.store.get("nodes", None, VNODE), what="virtual node registered")

    def connector_pod(self, namespace: str = "kube-system", labels: str = "app=aci-connector-linux") -> dict:
        return self.until(lambda: next(iter(self.store.list("pods", namespace, labels)), None),
                          what="connector pod")
