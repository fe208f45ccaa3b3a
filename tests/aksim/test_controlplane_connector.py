"""The add-on manager and the ACI connector runtime: registration, lease, crash loops, healing, teardown."""
from __future__ import annotations

from typing import Any

import pytest

from aksim.arm import containerinstance, network
from aksim.sim import Simulator
from controlplane_harness import (DOCS_POD_SPEC, LEASES, NODE_RG_ID, RG_ID, SUB, VNET_ID, VNODE, Harness,
                                  scenario)

SUBNET_ID = f"{VNET_ID}/subnets/vn"
LABELS = {"type": "virtual-kubelet", "kubernetes.io/role": "agent", "kubernetes.io/hostname": VNODE,
          "alpha.service-controller.kubernetes.io/exclude-balancer": "true",
          "node.kubernetes.io/exclude-from-external-load-balancers": "true", "beta.kubernetes.io/os": "linux",
          "kubernetes.io/os": "linux", "kubernetes.azure.com/managed": "false"}


def log_of(pod: dict[str, Any]) -> str:
    return pod["metadata"].get("annotations", {}).get("aksim.io/log", "")


def crash_looping(h: Harness, min_restarts: int = 1) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        pods = h.store.list("pods", "kube-system", "app=aci-connector-linux")
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        ok = statuses and statuses[0]["restartCount"] >= min_restarts and \
            statuses[0]["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
        return pods[0] if ok else None
    return h.until(check, what=f"connector crash-looping with {min_restarts}+ restarts")


def test_enabled_addon_registers_the_virtual_node(simulator: Simulator) -> None:
    h = Harness(simulator, scenario())
    node = h.virtual_node()
    pod = h.connector_pod()
    assert node["metadata"]["labels"] == LABELS
    assert node["spec"]["taints"] == [{"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}]
    status = node["status"]
    assert status["capacity"] == status["allocatable"] == {"cpu": "10000", "memory": "4Ti", "pods": "5000"}
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Ready", "True", "KubeletReady"), ("OutOfDisk", "False", "KubeletHasSufficientDisk"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("NetworkUnavailable", "False", "RouteCreated")]
    assert status["conditions"][0]["message"] == "kubelet is ready."
    assert status["nodeInfo"]["kubeletVersion"] == "v1.25.0-vk-azure-aci-1.6.4"
    assert status["nodeInfo"]["operatingSystem"] == "linux"
    assert status["addresses"] == [{"type": "InternalIP", "address": pod["status"]["podIP"]}]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}

    assert pod["status"]["phase"] == "Running" and pod["spec"]["nodeName"].startswith("aks-nodepool1-")
    assert pod["metadata"]["name"].startswith("aci-connector-linux-")
    assert "Node virtual-node-aci-linux registered" in log_of(pod)
    subnet = h.locked(lambda: h.world.arm.get(SUBNET_ID))
    assert network.ACI_SERVICE in network.delegated_services(subnet)     # the connector delegated it

    deploy = h.get("deployments.apps", "kube-system", "aci-connector-linux")
    assert deploy["metadata"]["labels"] == {"app": "aci-connector-linux", "kubernetes.azure.com/managedby": "aks"}
    spec = deploy["spec"]["template"]["spec"]
    assert spec["priorityClassName"] == "system-node-critical"
    container = spec["containers"][0]
    assert container["image"] == "mcr.microsoft.com/oss/virtual-kubelet/virtual-kubelet:1.6.4"
    env = {e["name"]: e.get("value") for e in container["env"]}
    identity = h.managed_cluster()["properties"]["addonProfiles"]["aciConnectorLinux"]["identity"]
    assert env["VIRTUALNODE_USER_IDENTITY_CLIENTID"] == identity["clientId"]
    assert (env["ACI_SUBNET_NAME"], env["ACI_VNET_NAME"], env["ACI_VNET_RESOURCE_GROUP"]) == \
        ("vn", "demo-vnet", "demo-rg")
    assert (env["ACI_RESOURCE_GROUP"], env["ACI_REGION"]) == ("MC_demo-rg_aks-demo_westeurope", "westeurope")
    assert (env["ACI_EXTRA_USER_AGENT"], env["KUBE_DNS_IP"], env["CLUSTER_CIDR"]) == \
        ("add-on/aks", "10.0.0.10", "10.240.0.0/16")
    assert env["MASTER_URI"].startswith("https://") and env["MASTER_URI"].endswith(":443")
    assert h.get("secrets", "kube-system", "aci-connector-linux") is not None
    assert deploy["status"]["availableReplicas"] == 1


def test_lease_is_renewed_while_the_connector_runs_then_the_node_goes_unknown(simulator: Simulator) -> None:
    h = Harness(simulator, scenario())
    h.virtual_node()
    first = h.until(lambda: h.store.get(LEASES, "kube-node-lease", VNODE))
    assert first["spec"]["holderIdentity"] == VNODE and first["spec"]["renewTime"].endswith("Z")
    h.until(lambda: h.store.get(LEASES, "kube-node-lease", VNODE)["spec"]["renewTime"] != first["spec"]["renewTime"],
            what="lease renewed")

    pod = h.connector_pod()
    h.locked(lambda: h.store.delete("pods", "kube-system", pod["metadata"]["name"]))   # the RS makes a new one
    h.until(lambda: len(h.store.list("pods", "kube-system", "app=aci-connector-linux")) == 1
            and h.store.list("pods", "kube-system", "app=aci-connector-linux")[0]["metadata"]["name"]
            != pod["metadata"]["name"], what="replacement connector pod")
    replacement = h.connector_pod()
    h.until(lambda: h.store.get("nodes", None, VNODE)["status"]["addresses"][0]["address"]
            == h.store.get("pods", "kube-system", replacement["metadata"]["name"])["status"].get("podIP"),
            what="node re-registered by the replacement")

    h.locked(lambda: h.store.delete("deployments.apps", "kube-system", "aci-connector-linux"))
    stale = h.until(lambda: h.store.get(LEASES, "kube-node-lease", VNODE))["spec"]["renewTime"]
    node = h.until(lambda: (n := h.store.get("nodes", None, VNODE)) and n["status"]["conditions"][0]["status"]
                   == "Unknown" and n, what="node Unknown")
    ready = node["status"]["conditions"][0]
    assert (ready["reason"], ready["message"]) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} >= {
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    assert h.get(LEASES, "kube-node-lease", VNODE)["spec"]["renewTime"] == stale


def test_without_rights_the_connector_crash_loops_and_a_later_grant_heals_it(simulator: Simulator) -> None:
    h = Harness(simulator, scenario(roles=[]))
    crashed = crash_looping(h, min_restarts=2)
    status = crashed["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["state"]["waiting"]["message"].startswith("back-off ")
    assert crashed["status"]["phase"] == "Running" and not status["ready"]
    principal = h.world.principals[h.addon_principal()]
    assert (f"The client '{principal.client_id}' with object id '{principal.object_id}' does not have authorization "
            f"to perform action 'Microsoft.Network/virtualNetworks/subnets/write' over scope '{SUBNET_ID}' or the "
            "scope is invalid.") in log_of(crashed)
    assert "AuthorizationFailed" in log_of(crashed)
    backoff = [e for e in h.events("kube-system", crashed["metadata"]["name"]) if e["reason"] == "BackOff"]
    assert backoff and backoff[0]["type"] == "Warning" and backoff[0]["message"].startswith(
        "Back-off restarting failed container aci-connector-linux in pod aci-connector-linux-")
    more = crash_looping(h, min_restarts=status["restartCount"] + 1)
    assert more["metadata"]["uid"] == crashed["metadata"]["uid"]
    assert h.get("nodes", None, "virtual-node-aci-linux") is None

    h.grant("Network Contributor", VNET_ID, h.addon_principal())
    h.virtual_node()
    healed = h.connector_pod()
    assert healed["status"]["containerStatuses"][0]["ready"]
    assert healed["status"]["containerStatuses"][0]["restartCount"] >= 3


@pytest.mark.parametrize("subnets,expected", [
    ([{"name": "vn", "prefix": "10.241.0.0/24", "route_table": "demo-routes"}],
     f"unable to delegate subnet 'vn' to Azure Container Instance since it references the route table "
     f"'{RG_ID}/providers/Microsoft.Network/routeTables/demo-routes'"),
    ([], "subnet 'vn' is not found in vnet 'demo-vnet'"),
    ([{"name": "vn", "prefix": "10.241.0.0/24", "ip_configurations": 1}],
     "cannot be changed from [] to [Microsoft.ContainerInstance/containerGroups] because it is being used"),
])
def test_subnet_problems_crash_the_connector(simulator: Simulator, subnets: list[dict[str, Any]],
                                             expected: str) -> None:
    h = Harness(simulator, scenario(subnets=subnets))
    assert expected in log_of(crash_looping(h))
    assert h.get("nodes", None, VNODE) is None


def test_delegated_subnet_needs_join_rights_only(simulator: Simulator) -> None:
    raw = scenario(subnets=[{"name": "vn", "prefix": "10.241.0.0/24",
                             "delegation": "Microsoft.ContainerInstance/containerGroups"}], roles=[])
    h = Harness(simulator, raw)
    expected = f"'Microsoft.Network/virtualNetworks/subnets/join/action' over scope '{SUBNET_ID}'"
    assert expected in log_of(crash_looping(h))


def test_unregistered_provider_and_unsupported_region(simulator: Simulator) -> None:
    h = Harness(simulator, scenario(providers={"Microsoft.ContainerInstance": "NotRegistered"}))
    assert "MissingSubscriptionRegistration" in log_of(crash_looping(h))
    h = Harness(simulator, scenario(aci_regions=["eastus"]))
    assert "Region westeurope is invalid. Current supported regions are: eastus" in log_of(crash_looping(h))


def test_disable_removes_connector_node_groups_and_link(simulator: Simulator) -> None:
    h = Harness(simulator, scenario())
    h.virtual_node()
    h.deployment("web", 2, DOCS_POD_SPEC)
    pods = h.running("web", 2)
    assert h.locked(lambda: network.subnet_ip_available(h.world, SUBNET_ID)) == 251 - 2
    h.set_addon(None)
    for resource, namespace, name in (("deployments.apps", "kube-system", "aci-connector-linux"),
                                      ("secrets", "kube-system", "aci-connector-linux"),
                                      ("nodes", None, VNODE), (LEASES, "kube-node-lease", VNODE)):
        assert h.get(resource, namespace, name) is None, name
    assert h.list("replicasets.apps", "kube-system") == []
    assert h.list("pods", "kube-system", "app=aci-connector-linux") == []
    assert h.locked(lambda: containerinstance.groups_in(h.world, NODE_RG_ID)) == []
    subnet = h.locked(lambda: h.world.arm.get(SUBNET_ID))
    assert not subnet["properties"].get("serviceAssociationLinks")
    assert h.locked(lambda: network.subnet_ip_available(h.world, SUBNET_ID)) == 251
    h.until(lambda: not any(p["metadata"]["uid"] in {q["metadata"]["uid"] for q in pods}
                            for p in h.store.list("pods", "default")), what="pods of the deleted node collected")

    h.set_addon(None)          # idempotent
    h.set_addon("vn")
    h.virtual_node()


def test_chart_connector_uses_its_own_node_name_taint_and_the_kubelet_identity(simulator: Simulator) -> None:
    h = Harness(simulator, scenario(addon=None, roles=[
        {"principal": "kubelet", "role": "Network Contributor", "scope": VNET_ID},
        {"principal": "kubelet", "role": "Contributor", "scope": NODE_RG_ID}]))
    env = [{"name": "ACI_SUBNET_NAME", "value": "vn"},
           {"name": "AKS_CREDENTIAL_LOCATION", "value": "/etc/aks/azure.json"},
           {"name": "AZURE_CLIENT_ID", "value": None}, {"name": "VKUBELET_TAINT_KEY", "value": "burst"},
           {"name": "VKUBELET_TAINT_VALUE", "value": "aci"}, {"name": "VKUBELET_TAINT_EFFECT", "value": "NoExecute"}]
    container = {"name": "vk", "image": "mcr.microsoft.com/oss/virtual-kubelet/virtual-kubelet:1.6.4",
                 "command": ["virtual-kubelet"], "env": env,
                 "args": ["--provider", "azure", "--nodename", "virtual-node-aci-linux-helm", "--os", "Linux"]}
    h.locked(lambda: h.store.ensure_namespace("vk-azure-aci"))
    h.locked(lambda: h.store.create("deployments.apps", {
        "metadata": {"name": "vk-virtual-kubelet-azure-aci", "namespace": "vk-azure-aci"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "vk"}},
                 "template": {"metadata": {"labels": {"app": "vk"}}, "spec": {"containers": [container]}}}}))
    node = h.until(lambda: h.store.get("nodes", None, "virtual-node-aci-linux-helm"), what="chart node")
    assert node["spec"]["taints"] == [{"key": "burst", "value": "aci", "effect": "NoExecute"}]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "virtual-node-aci-linux-helm"
    kubelet = h.managed_cluster()["properties"]["identityProfile"]["kubeletidentity"]["clientId"]
    assert f"using managed identity {kubelet}" in log_of(h.connector_pod("vk-azure-aci", "app=vk"))

    container["args"] += ["--disable-taint", "true"]
    container["name"] = "vk2"
    h.locked(lambda: h.store.mutate("deployments.apps", "vk-azure-aci", "vk-virtual-kubelet-azure-aci",
                                    lambda d: d["spec"]["template"]["spec"].update(containers=[container])))
    h.until(lambda: not h.store.get("nodes", None, "virtual-node-aci-linux-helm")["spec"].get("taints"),
            what="node re-registered without a taint")


def test_sp_cluster_connector_authenticates_as_the_service_principal(simulator: Simulator) -> None:
    app = "5e8a9b3c-0000-4000-8000-000000000abc"
    raw = scenario(roles=[{"principal": app, "role": "Contributor", "scope": f"/subscriptions/{SUB}"}],
                   service_principals=[{"name": "aks-sp", "appId": app,
                                        "objectId": "5e8a9b3c-0000-4000-8000-0000000000ff"}],
                   cluster={"service_principal": app})
    h = Harness(simulator, raw)
    h.virtual_node()
    deploy = h.get("deployments.apps", "kube-system", "aci-connector-linux")
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AZURE_CLIENT_ID"] == app and "VIRTUALNODE_USER_IDENTITY_CLIENTID" not in env


def test_moving_the_addon_to_another_subnet_tears_down_the_old_placement(simulator: Simulator) -> None:
    raw = scenario(subnets=[{"name": "vn", "prefix": "10.241.0.0/24"}, {"name": "vn2", "prefix": "10.242.0.0/24"}])
    h = Harness(simulator, raw)
    h.virtual_node()
    h.deployment("web", 1, DOCS_POD_SPEC)
    assert h.running("web", 1)[0]["status"]["podIP"].startswith("10.241.")
    h.set_addon("vn2")
    assert not h.locked(lambda: h.world.arm.get(SUBNET_ID))["properties"].get("serviceAssociationLinks")
    h.until(lambda: (pods := h.store.list("pods", "default", "app=web")) and pods[0]["status"].get("phase") ==
            "Running" and pods[0]["status"]["podIP"].startswith("10.242."), what="pod recreated in the new subnet")
    env = {e["name"]: e.get("value") for e in h.get("deployments.apps", "kube-system", "aci-connector-linux")[
        "spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ACI_SUBNET_NAME"] == "vn2"


def test_connector_without_vnet_places_groups_with_public_addresses(simulator: Simulator) -> None:
    h = Harness(simulator, scenario(addon=None, roles=[
        {"principal": "kubelet", "role": "Contributor", "scope": NODE_RG_ID}]))
    container = {"name": "vk", "image": "mcr.microsoft.com/oss/virtual-kubelet/virtual-kubelet:1.6.4",
                 "env": [{"name": "AKS_CREDENTIAL_LOCATION", "value": "/etc/aks/azure.json"}],
                 "args": ["--nodename", "vk-public"]}
    h.locked(lambda: h.store.create("pods", {"metadata": {"name": "vk", "namespace": "default"},
                                             "spec": {"containers": [container]}}))
    h.until(lambda: h.store.get("nodes", None, "vk-public"), what="node without VNet")
    h.locked(lambda: h.store.create("pods", {"metadata": {"name": "web", "namespace": "default"}, "spec": {
        "nodeName": "vk-public", "containers": [{"name": "web", "image": "nginx"}]}}))
    pod = h.until(lambda: (p := h.store.get("pods", "default", "web"))["status"].get("phase") == "Running" and p)
    (group,) = h.locked(lambda: containerinstance.groups_in(h.world, NODE_RG_ID))
    assert group["properties"]["ipAddress"] == {**group["properties"]["ipAddress"], "type": "Public",
                                                "ip": pod["status"]["podIP"]}
    assert "subnetIds" not in group["properties"]
