"""Build a World from its Scenario: ARM resources, principals, clusters and their Kubernetes objects."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator

from aksim.arm import authorization, containerservice, identity, network
from aksim.arm.resources import create_resource_group, rg_id
from aksim.httpcore import Endpoint
from aksim.kube.admission import BUILTIN_PRIORITY_CLASSES

if TYPE_CHECKING:
    from aksim.world import Cluster, World

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def build_world(world: "World") -> None:
    sc = world.scenario
    sub = sc.subscription_id
    for rg in sc.resource_groups:
        _build_resource_group(world, rg)
    for sp in sc.service_principals:
        world.add_principal(sp.get("objectId"), sp["appId"], sp.get("name", sp["appId"]), backdate=True,
                            secret=sp.get("secret"))
    for role in sc.caller.get("roles", []):
        authorization.assign(world, role["scope"].replace("{subscription}", sub), role["role"],
                             world.caller.object_id, principal_type="ServicePrincipal")
    for spec in sc.clusters:
        build_cluster(world, spec)


def _build_resource_group(world: "World", spec: dict[str, Any]) -> None:
    location = spec.get("location", "westeurope")
    rg = create_resource_group(world, spec["name"], location)
    for name in spec.get("route_tables", []):
        network.seed_route_table(world, rg["id"], location, name)
    for name in spec.get("nsgs", []):
        network.seed_nsg(world, rg["id"], location, name)
    for nat in spec.get("nat_gateways", []):
        network.seed_nat_gateway(world, rg["id"], location, nat)
    for vnet in spec.get("vnets", []):
        network.seed_vnet(world, rg["id"], location, vnet)


def _short_hash(text: str) -> str:
    return str(int(hashlib.sha256(text.encode()).hexdigest(), 16))[:8]


def _resolve_node_subnet(world: "World", spec: dict[str, Any], node_rg_id: "str", location: str,
                         cluster: "Cluster") -> str:
    net = spec.get("network") or {}
    ref = net.get("vnet_subnet")
    if ref:
        vnet, subnet = ref.split("/")
        rg = net.get("vnet_resource_group", spec["resource_group"])
        subnet_id = f"{rg_id(world, rg)}/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}"
        if world.arm.get(subnet_id) is None:
            raise ValueError(f"scenario: cluster {spec['name']} uses unknown subnet {ref}")
        return subnet_id
    vnet_name = f"aks-vnet-{_short_hash(spec['name'])}"
    vnet = network.seed_vnet(world, node_rg_id, location, {
        "name": vnet_name, "address_prefixes": ["10.224.0.0/12"],
        "subnets": [{"name": "aks-subnet", "prefix": "10.224.0.0/16"}]})
    cluster.extra["managed_vnet_id"] = vnet["id"]
    return f"{vnet['id']}/subnets/aks-subnet"


def build_cluster(world: "World", spec: dict[str, Any]) -> "Cluster":
    from aksim import controlplane
    from aksim.kube import guard
    from aksim.kube.api import build_router, kube_error
    from aksim.kube.store import KubeStore
    from aksim.world import Cluster

    sim = world.sim
    sub = world.scenario.subscription_id
    rg, name = spec["resource_group"], spec["name"]
    location = spec.get("location", "westeurope")
    node_rg = spec.get("node_resource_group", f"MC_{rg}_{name}_{location}")
    mc_id = f"/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"
    node_rg_res = create_resource_group(world, node_rg, location, managed_by=mc_id)
    store = KubeStore(sim.lock)
    store.service_cidr = (spec.get("network") or {}).get("service_cidr", "10.0.0.0/16")
    cluster = Cluster(mc_id, name, rg, location, node_rg, store)
    world.clusters[mc_id.lower()] = cluster

    subnet_id = _resolve_node_subnet(world, spec, node_rg_res["id"], location, cluster)
    custom_vnet = bool((spec.get("network") or {}).get("vnet_subnet"))
    sp_app_id = spec.get("service_principal")
    if sp_app_id and world.principal_by_client_id(sp_app_id) is None:
        raise ValueError(f"scenario: cluster {name} names unknown service principal {sp_app_id}")
    mc = containerservice.seed_cluster_resource(world, spec, rg, node_rg, subnet_id if custom_vnet else None,
                                                sp_app_id)
    if sp_app_id:
        # AKS runs an SP cluster's node resource group with that SP: it holds rights there (ACI included).
        sp = world.principal_by_client_id(sp_app_id)
        authorization.assign(world, node_rg_res["id"], "Contributor", sp.object_id,
                             description="AKS: cluster service principal on the node resource group")
    else:
        system = world.add_principal(name=name, kind="ManagedIdentity", backdate=True)
        mc["identity"] = {"type": "SystemAssigned", "principalId": system.object_id,
                          "tenantId": world.scenario.tenant_id}
    kubelet_name = spec.get("kubelet_identity") or f"{name}-agentpool"
    kubelet = identity.create_user_assigned(world, node_rg_res["id"], kubelet_name, location)
    kubelet.created -= 10 ** 6  # created with the cluster, long replicated
    mc["properties"]["identityProfile"] = {"kubeletidentity": identity.identity_ref(
        world, f"{node_rg_res['id']}/providers/{identity.UAMI_TYPE}/{kubelet_name}")}
    world.arm.put(mc)

    version = str(spec.get("kubernetes_version", "1.33.2"))
    router = build_router(store, version={"major": version.split(".")[0], "minor": version.split(".")[1],
                                          "gitVersion": f"v{version}", "platform": "linux/amd64"})
    guard.register(router, world, cluster)
    cluster.kube_endpoint = Endpoint("kube", router, sim.faults, ssl_context=sim.tls.server_context(),
                                     error_renderer=kube_error,
                                     authenticate=guard.authenticator(world, cluster))
    if not spec.get("api_server_down"):
        cluster.kube_endpoint.start()
    nodes = seed_kube(cluster, spec, subnet_id, world)
    _attach_nics(world, subnet_id, [f"{node_rg_res['id']}/providers/Microsoft.Network/networkInterfaces/"
                                    f"{n}-nic/ipConfigurations/ipconfig1" for n in nodes])
    if spec.get("addon"):
        profiles = mc["properties"].setdefault("addonProfiles", {})
        profiles["aciConnectorLinux"] = {"enabled": True, "config": {"SubnetName": spec["addon"]["subnet"]}}
        if not sp_app_id:
            profiles["aciConnectorLinux"]["identity"] = containerservice.ManagedClusters(sim).create_addon_identity(mc)
    for grant in spec.get("role_assignments", []):
        principal = _principal_for(world, cluster, grant["principal"])
        authorization.assign(world, grant["scope"].replace("{subscription}", sub), grant["role"], principal)
    controlplane.attach(world, cluster)
    controlplane.on_cluster_changed(world, cluster)
    return cluster


def _attach_nics(world: "World", subnet_id: str, ip_configuration_ids: list[str]) -> None:
    """The node NICs' IP configurations make the node subnet 'used by other resources', as in Azure."""
    subnet = world.arm.get(subnet_id)
    if subnet is not None:
        configs = subnet["properties"].setdefault("ipConfigurations", [])
        configs.extend({"id": i} for i in ip_configuration_ids)


def _principal_for(world: "World", cluster: "Cluster", who: str) -> str:
    mc = world.arm.get(cluster.resource_id) or {}
    if who == "kubelet":
        return mc["properties"]["identityProfile"]["kubeletidentity"]["objectId"]
    if who == "addon":
        return mc["properties"]["addonProfiles"]["aciConnectorLinux"]["identity"]["objectId"]
    p = world.principal_by_client_id(who)
    return p.object_id if p else who


# -- Kubernetes objects ------------------------------------------------------------------------------
VM_SIZES = {"Standard_DS2_v2": (2, 7), "Standard_D2s_v3": (2, 8), "Standard_D4s_v3": (4, 16),
            "Standard_D8s_v3": (8, 32), "Standard_D2s_v5": (2, 8), "Standard_D4s_v5": (4, 16),
            "Standard_D8s_v5": (8, 32), "Standard_D16s_v5": (16, 64)}        # vCPUs, GiB


def vm_capacity(cap: dict[str, Any]) -> dict[str, Any]:
    """``node_capacity`` with what a known ``vm_size`` implies filled in: capacity, and allocatable after the AKS
    reservations (CPU: 60m for the first core, 40m the second, 20m each of the next two, 10m each of the next
    four, 10m each beyond; memory: 20 MiB per max pod + 50 MiB, plus the 100 MiB eviction threshold). Explicit
    keys win."""
    size = VM_SIZES.get(cap.get("vm_size", ""))
    if size is None:
        return cap
    cores, gib = size
    reserved_cpu = sum((60, 40, 20, 20, 10, 10, 10, 10)[:cores]) + 10 * max(0, cores - 8)
    pods = int(cap.get("pods", 30))
    derived = {"cpu": str(cores), "allocatable_cpu": f"{cores * 1000 - reserved_cpu}m", "memory": f"{gib}Gi",
               "allocatable_memory": f"{gib * 1024 - 20 * pods - 50 - 100}Mi"}
    return {**derived, **cap}


def _ts() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node(name: str, ip: str, version: str, cap: dict[str, str], location: str, index: int,
          node_rg: str = "aksim") -> dict[str, Any]:
    labels = {"agentpool": "nodepool1", "kubernetes.azure.com/agentpool": "nodepool1",
              "kubernetes.azure.com/cluster": node_rg, "kubernetes.azure.com/mode": "system",
              "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "kubernetes.io/role": "agent",
              "node.kubernetes.io/instance-type": cap.get("vm_size", "Standard_DS2_v2"),
              "topology.kubernetes.io/region": location, "topology.kubernetes.io/zone": "0",
              "beta.kubernetes.io/os": "linux"}
    allocatable = {"cpu": cap.get("allocatable_cpu", "1900m"), "memory": cap.get("allocatable_memory", "5Gi"),
                   "pods": str(cap.get("pods", 30))}
    now = _ts()
    conditions = [{"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": now,
                   "lastTransitionTime": now} for t, r, m in (
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                       "lastTransitionTime": now})
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"providerID": f"azure:///subscriptions/aksim/virtualMachineScaleSets/aks-nodepool1/"
                                   f"virtualMachines/{index}"},
            "status": {"capacity": {"cpu": str(cap.get("cpu", "2")), "memory": cap.get("memory", "7Gi"),
                                    "pods": str(cap.get("pods", 30))},
                       "allocatable": allocatable, "conditions": conditions,
                       "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                       "nodeInfo": {"kubeletVersion": f"v{version}", "kubeProxyVersion": f"v{version}",
                                    "operatingSystem": "linux", "architecture": "amd64",
                                    "containerRuntimeVersion": "containerd://1.7.27-1",
                                    "osImage": "Ubuntu 22.04.5 LTS", "kernelVersion": "5.15.0-1089-azure"}}}


def _pod(ns: str, name: str, node: str, ip: str, host_ip: str, labels: dict[str, str],
         owner: dict[str, Any] | None, image: str, cpu: str = "100m") -> dict[str, Any]:
    now = _ts()
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels}
    if owner:
        meta["ownerReferences"] = [owner]
    cname = labels.get("app", "app")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": cname, "image": image, "resources": {
                "requests": {"cpu": cpu, "memory": "64Mi"}}}], "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIP": ip, "hostIP": host_ip, "startTime": now, "qosClass": "Burstable",
                       "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                                      for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                       "containerStatuses": [{"name": cname, "ready": True, "restartCount": 0, "image": image,
                                              "started": True, "state": {"running": {"startedAt": now}}}]}}


def seed_kube(cluster: "Cluster", spec: dict[str, Any], node_subnet_id: str, world: "World") -> list[str]:
    """Seed namespaces, nodes, leases, system pods, services and ``pods`` app pods; returns node names."""
    store = cluster.store
    for ns in SYSTEM_NAMESPACES + tuple(spec.get("namespaces", [])):
        store.ensure_namespace(ns)
    version = str(spec.get("kubernetes_version", "1.33.2"))
    cap = vm_capacity(spec.get("node_capacity") or {})
    count = int(spec.get("nodes", 3))
    prefix = f"aks-nodepool1-{_short_hash(cluster.name)}-vmss"
    names = [f"{prefix}{i:06x}" for i in range(count)]
    node_ips = [network.allocate_ip(world, node_subnet_id) for _ in names]
    if None in node_ips:
        raise ValueError(f"scenario: subnet {node_subnet_id} is too small for {count} nodes")
    store.bulk_load("nodes", (_node(n, ip, version, cap, cluster.location, i, cluster.node_resource_group)
                              for i, (n, ip) in enumerate(zip(names, node_ips))))
    store.bulk_load("priorityclasses.scheduling.k8s.io", BUILTIN_PRIORITY_CLASSES)
    now_micro = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    store.bulk_load("leases.coordination.k8s.io", (
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": n, "namespace": "kube-node-lease"},
         "spec": {"holderIdentity": n, "leaseDurationSeconds": 40, "renewTime": now_micro}} for n in names))
    proxy = {"component": "kube-proxy"}
    proxy_image = "mcr.microsoft.com/oss/kubernetes/kube-proxy"
    store.bulk_load("daemonsets.apps", [{
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": dict(proxy)},
        "spec": {"selector": {"matchLabels": dict(proxy)},
                 "template": {"metadata": {"labels": dict(proxy)},
                              "spec": {"containers": [{"name": "kube-proxy", "image": proxy_image}]}}}}])
    ds = store.get("daemonsets.apps", "kube-system", "kube-proxy")
    ds_owner = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-proxy", "uid": ds["metadata"]["uid"],
                "controller": True, "blockOwnerDeletion": True}
    store.bulk_load("pods", (_pod("kube-system", f"kube-proxy-{i:05x}", n, node_ips[i], node_ips[i],
                                  dict(proxy), ds_owner, proxy_image, "10m")
                             for i, n in enumerate(names)))
    if spec.get("pods"):
        for k in range(int(spec.get("app_namespaces", 1))):
            store.ensure_namespace(f"apps-{k}")
    store.bulk_load("pods", _app_pods(int(spec.get("pods", 0)), names, node_ips, spec))
    https = {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}
    dns_ip = (spec.get("network") or {}).get("dns_service_ip", "10.0.0.10")
    store.bulk_load("services", [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver"}},
         "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.1", "ports": [https]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
         "spec": {"type": "ClusterIP", "clusterIP": dns_ip,
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]}}])
    return names


def _app_pods(total: int, names: list[str], node_ips: list[str], spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Plain application pods spread round-robin over the nodes, in ``app_namespaces`` namespaces."""
    if not total or not names:
        return
    namespaces = int(spec.get("app_namespaces", 1))
    template = json.dumps(_pod("NS", "NAME", "NODE", "PODIP", "HOSTIP", {"app": "APP"}, None,
                               "mcr.microsoft.com/azuredocs/aci-helloworld"))
    for i in range(total):
        n = i % len(names)
        octets = 16 + (i >> 16) % 200, (i >> 8) & 255, i & 255
        pod = json.loads(template.replace("\"NS\"", f"\"apps-{i % namespaces}\"")
                         .replace("NAME", f"app-{i // 20}-{i:06x}").replace("NODE", names[n])
                         .replace("PODIP", f"10.{octets[0]}.{octets[1]}.{octets[2]}")
                         .replace("HOSTIP", node_ips[n]).replace("APP", f"app-{i // 20}"))
        yield pod
