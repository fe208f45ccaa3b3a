"""ARM replies as real Azure sends them (issue 7, part C): raw HTTP against aksim, plus the real az on top."""
from __future__ import annotations

import time
from typing import Any

import pytest

from aksim.scenario import read_raw
from armcall import call

SUB = "00000000-0000-0000-0000-000000000001"
RG, NAME = "demo-rg", "aks-demo"
MC = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerService/managedClusters/{NAME}"
VNET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/demo-vnet"
AKS_API, NET_API, ACI_API = "2025-07-01", "2024-05-01", "2023-05-01"
HINT_HEADERS = ("retry-after", "retry-after-ms", "x-ms-retry-after-ms")


def wait_op(sim: Any, url: str, timeout: float = 10, no_hint: bool = True) -> list[dict[str, Any]]:
    """Poll an Azure-AsyncOperation URL until it ends; every poll body, in order (``no_hint``: and check that no
    poll carries a retry hint; tests using the ``az`` fixture have the hint switched on)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, headers, body = call(sim, "GET", url)
        assert status == 200 and not (no_hint and any(h in headers for h in HINT_HEADERS)), headers
        seen.append(body)
        if body["status"] in ("Succeeded", "Failed", "Canceled"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"operation did not end: {seen[-1:]}")


# -- unwrapped AKS resource-provider errors ------------------------------------------------------------
@pytest.mark.scenario("kubenet")
def test_aks_rp_errors_are_unwrapped_arm_errors_wrapped_and_az_shows_them(az, sim):
    _, _, mc = call(sim, "GET", MC, api=AKS_API)
    mc["properties"]["addonProfiles"] = {"aciConnectorLinux": {"enabled": True, "config": {"SubnetName": "x"}}}
    status, _, body = call(sim, "PUT", MC, mc, api=AKS_API)
    assert status == 400
    assert set(body) == {"code", "details", "message", "subcode", "target"} and "error" not in body
    assert body["code"] == "InvalidParameter" and "Azure CNI" in body["message"]
    status, _, body = call(sim, "GET", MC + "-missing", api=AKS_API)       # ARM-level: still wrapped
    assert status == 404 and body["error"]["code"] == "ResourceNotFound"

    az("network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", "demo-vnet", "-n", "vn",
       "--address-prefixes", "10.241.0.0/16")
    res = az("aks", "enable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node", "--subnet-name", "vn",
             check=False)
    assert res.returncode == 1
    assert "(InvalidParameter) Addon 'aciConnectorLinux' is only supported with the Azure CNI network plugin" \
        in res.stderr, res.stderr


# -- long-running operations: no Retry-After, no Location on PUT ---------------------------------------
def test_aks_and_network_lros_send_no_retry_hint_and_no_location_on_put(sim):
    subnet = f"{VNET}/subnets/s1"
    status, headers, _ = call(sim, "PUT", subnet, {"properties": {"addressPrefix": "10.50.0.0/24"}}, api=NET_API)
    assert status == 201 and "azure-asyncoperation" in headers
    assert "location" not in headers and not any(h in headers for h in HINT_HEADERS), headers
    assert wait_op(sim, headers["azure-asyncoperation"])[-1]["status"] == "Succeeded"

    _, _, mc = call(sim, "GET", MC, api=AKS_API)
    status, headers, _ = call(sim, "PUT", MC, mc, api=AKS_API)
    assert status == 200 and "azure-asyncoperation" in headers
    assert "location" not in headers and not any(h in headers for h in HINT_HEADERS), headers
    assert "/providers/Microsoft.ContainerService/locations/westeurope/operations/" in headers["azure-asyncoperation"]
    assert wait_op(sim, headers["azure-asyncoperation"])[-1]["status"] == "Succeeded"

    status, headers, _ = call(sim, "DELETE", subnet, api=NET_API)            # DELETE: 202 + Location
    assert status == 202 and "location" in headers and "azure-asyncoperation" in headers
    assert not any(h in headers for h in HINT_HEADERS)

    sim.admin("POST", "/_admin/timings", {"retry_after_hint": True})      # the switch for az-driving tests
    _, _, mc = call(sim, "GET", MC, api=AKS_API)
    _, headers, _ = call(sim, "PUT", MC, mc, api=AKS_API)
    assert headers.get("retry-after-ms") == "100", headers


# -- NotLatestOperation on AKS operation polls ---------------------------------------------------------
def _not_latest(status: str) -> dict[str, Any]:
    raw = read_raw("demo")
    raw["resource_groups"][0]["vnets"][0]["subnets"].append(
        {"name": "virtual-node-aci", "prefix": "10.241.0.0/16"})
    raw["arm_quirks"] = {"not_latest_operation": status}
    return raw


@pytest.mark.scenario(_not_latest("all"))
def test_not_latest_operation_on_polls_is_tolerated_by_az(az, sim):
    _, _, mc = call(sim, "GET", MC, api=AKS_API)
    _, headers, _ = call(sim, "PUT", MC, mc, api=AKS_API)
    polls = wait_op(sim, headers["azure-asyncoperation"], no_hint=False)
    assert all(p["error"]["code"] == "NotLatestOperation" for p in polls)
    assert polls[0]["status"] == "InProgress" and polls[-1]["status"] == "Succeeded"

    res = az("aks", "enable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node", "--subnet-name",
             "virtual-node-aci", "-o", "json")
    assert res.json()["addonProfiles"]["aciConnectorLinux"]["enabled"] is True
    assert res.json()["provisioningState"] == "Succeeded"


# -- eTags, If-Match / If-None-Match -------------------------------------------------------------------
def test_managed_cluster_etag_changes_on_write_and_stale_if_match_gets_412(sim):
    status, headers, mc = call(sim, "GET", MC, api=AKS_API)
    first = mc["eTag"]
    assert headers["etag"] == f'"{first}"'
    status, headers, body = call(sim, "PUT", MC, mc, {"If-Match": first}, api=AKS_API)
    assert status == 200 and body["eTag"] != first and headers["etag"] == f'"{body["eTag"]}"'
    wait_op(sim, headers["azure-asyncoperation"])
    _, _, now = call(sim, "GET", MC, api=AKS_API)
    assert now["eTag"] not in (first, body["eTag"])          # the operation's completion is a write too

    mc["tags"] = {"lost": "update"}
    status, _, err = call(sim, "PUT", MC, mc, {"If-Match": first}, api=AKS_API)
    assert status == 412 and err["code"] == "PreconditionFailed" and "error" not in err   # AKS: unwrapped
    status, _, err = call(sim, "PUT", MC, mc, {"If-None-Match": "*"}, api=AKS_API)
    assert status == 412 and err["code"] == "PreconditionFailed"
    _, _, after = call(sim, "GET", MC, api=AKS_API)
    assert "lost" not in (after.get("tags") or {}) and after["eTag"] == now["eTag"]


def test_subnet_etag_if_match_and_if_none_match(sim):
    subnet = f"{VNET}/subnets/aks-subnet"
    _, headers, body = call(sim, "GET", subnet, api=NET_API)
    stale = body["etag"]
    assert stale.startswith('W/"') and headers["etag"] == stale
    update = {"properties": {**body["properties"], "serviceEndpoints": [{"service": "Microsoft.Storage"}]}}
    status, headers, written = call(sim, "PUT", subnet, update, {"If-Match": stale}, api=NET_API)
    assert status == 200 and written["etag"] != stale
    status, _, err = call(sim, "PUT", subnet, update, {"If-Match": stale}, api=NET_API)
    assert status == 412 and err["error"]["code"] == "PreconditionFailed"     # Network: wrapped
    status, _, err = call(sim, "PUT", subnet, update, {"If-None-Match": "*"}, api=NET_API)
    assert status == 412
    new = {"properties": {"addressPrefix": "10.60.0.0/24"}}
    status, _, _ = call(sim, "PUT", f"{VNET}/subnets/fresh", new, {"If-None-Match": "*"}, api=NET_API)
    assert status == 201
    status, _, _ = call(sim, "PUT", f"{VNET}/subnets/other", new, {"If-Match": stale}, api=NET_API)
    assert status == 412                                                       # If-Match on a missing subnet


# -- provider GET and PrincipalNotFound ----------------------------------------------------------------
def test_provider_show_has_display_names_all_types_and_newest_api_versions_first(az):
    provider = az("provider", "show", "-n", "Microsoft.ContainerInstance", "-o", "json").json()
    types = {t["resourceType"]: t for t in provider["resourceTypes"]}
    assert {"containerGroups", "locations", "locations/operations", "serviceAssociationLinks"} <= set(types)
    assert "West Europe" in types["containerGroups"]["locations"]
    assert "westeurope" not in types["containerGroups"]["locations"]
    versions = types["containerGroups"]["apiVersions"]
    assert versions == sorted(versions, reverse=True) and len(versions) > 3
    aks = az("provider", "show", "-n", "Microsoft.ContainerService", "-o", "json").json()
    assert "managedClusters/agentPools" in {t["resourceType"] for t in aks["resourceTypes"]}
    locations = az("account", "list-locations", "-o", "json").json()
    assert {"name": "westeurope", "displayName": "West Europe"}.items() <= \
        next(loc for loc in locations if loc["name"] == "westeurope").items()


# -- container groups: PUT -> 201 Pending -> Succeeded -------------------------------------------------
def test_container_group_put_in_a_subnet_is_pending_then_succeeded(sim):
    sim.admin("POST", "/_admin/timings", {"aci_create": 0.5})
    subnet = f"{VNET}/subnets/aci"
    _, headers, _ = call(sim, "PUT", subnet, {"properties": {"addressPrefix": "10.70.0.0/24", "delegations": [
        {"name": "d", "properties": {"serviceName": "Microsoft.ContainerInstance/containerGroups"}}]}}, api=NET_API)
    wait_op(sim, headers["azure-asyncoperation"])
    group = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerInstance/containerGroups/cg1"
    body = {"location": "westeurope", "properties": {
        "osType": "Linux", "subnetIds": [{"id": subnet}],
        "ipAddress": {"type": "Private", "ports": [{"port": 80, "protocol": "TCP"}]},
        "containers": [{"name": "web", "properties": {"image": "mcr.microsoft.com/azuredocs/aci-helloworld",
                                                      "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                                                      "ports": [{"port": 80}]}}]}}
    status, headers, created = call(sim, "PUT", group, body, api=ACI_API)
    assert status == 201 and created["properties"]["provisioningState"] == "Pending"
    assert "location" not in headers and not any(h in headers for h in HINT_HEADERS)
    polls = wait_op(sim, headers["azure-asyncoperation"])
    assert polls[0]["status"] == "Pending" and polls[-1]["status"] == "Succeeded"
    _, _, done = call(sim, "GET", group, api=ACI_API)
    assert done["properties"]["provisioningState"] == "Succeeded"
    assert done["properties"]["ipAddress"]["ip"].startswith("10.70.0.")
    _, _, sub = call(sim, "GET", subnet, api=NET_API)
    assert sub["properties"]["serviceAssociationLinks"]


def test_az_container_create_with_vnet_and_new_subnet(az, sim):
    res = az("container", "create", "-g", RG, "-n", "vnet-cg", "--image", "mcr.microsoft.com/azuredocs/aci-helloworld",
             "--vnet", "demo-vnet", "--subnet", "aci-cg", "--subnet-address-prefix", "10.80.0.0/24",
             "--os-type", "Linux", "--cpu", "1", "--memory", "1.5", "-o", "json")
    group = res.json()
    assert group["provisioningState"] == "Succeeded"
    assert group["ipAddress"]["type"] == "Private" and group["ipAddress"]["ip"].startswith("10.80.0.")
    assert group["subnetIds"][0]["id"].endswith("/virtualNetworks/demo-vnet/subnets/aci-cg")
    puts = [e["status"] for e in sim.requests() if e["method"] == "PUT" and "/containerGroups/" in e["path"]]
    assert puts == [201]
    subnet = az("network", "vnet", "subnet", "show", "-g", RG, "--vnet-name", "demo-vnet", "-n", "aci-cg",
                "-o", "json").json()
    assert subnet["delegations"][0]["serviceName"] == "Microsoft.ContainerInstance/containerGroups"


# -- A9: NAT gateways, authorized IP ranges, kubelet identity, from scenarios and through az ---------------
def _a9_scenario() -> dict[str, Any]:
    raw = read_raw("demo")
    rg = raw["resource_groups"][0]
    rg["nat_gateways"] = [{"name": "egress", "idle_timeout": 10}]
    rg["vnets"][0]["subnets"].append({"name": "cg", "prefix": "10.241.0.0/16", "nat_gateway": "egress"})
    raw["clusters"][0]["authorized_ip_ranges"] = ["203.0.113.0/24"]
    raw["clusters"][0]["kubelet_identity"] = "custom-kubelet"
    return raw


@pytest.mark.scenario(_a9_scenario())
def test_scenario_nat_gateway_authorized_ranges_and_kubelet_identity(az):
    nat = az("network", "nat", "gateway", "show", "-g", RG, "-n", "egress", "-o", "json").json()
    assert nat["sku"]["name"] == "Standard" and nat["idleTimeoutInMinutes"] == 10
    assert [s["id"].rsplit("/", 1)[-1] for s in nat["subnets"]] == ["cg"]
    subnet = az("network", "vnet", "subnet", "show", "-g", RG, "--vnet-name", "demo-vnet", "-n", "cg",
                "-o", "json").json()
    assert subnet["natGateway"]["id"] == nat["id"]
    mc = az("aks", "show", "-g", RG, "-n", NAME, "-o", "json").json()
    assert mc["apiServerAccessProfile"]["authorizedIpRanges"] == ["203.0.113.0/24"]
    kubelet = mc["identityProfile"]["kubeletidentity"]
    assert kubelet["resourceId"].endswith("/resourceGroups/MC_demo-rg_aks-demo_westeurope/providers/"
                                          "Microsoft.ManagedIdentity/userAssignedIdentities/custom-kubelet")
    assert kubelet["clientId"] and kubelet["objectId"]


def test_az_nat_gateway_lifecycle_and_subnet_association(az):
    nat = az("network", "nat", "gateway", "create", "-g", RG, "-n", "natgw", "--idle-timeout", "4",
             "-o", "json").json()
    assert nat["sku"]["name"] == "Standard" and nat["provisioningState"] == "Succeeded"
    subnet = az("network", "vnet", "subnet", "update", "-g", RG, "--vnet-name", "demo-vnet", "-n", "aks-subnet",
                "--nat-gateway", "natgw", "-o", "json").json()
    assert subnet["natGateway"]["id"].lower() == nat["id"].lower()
    assert [n["name"] for n in az("network", "nat", "gateway", "list", "-g", RG, "-o", "json").json()] == ["natgw"]
    res = az("network", "nat", "gateway", "delete", "-g", RG, "-n", "natgw", check=False)
    assert res.returncode == 1 and "InUseNatGatewayCannotBeDeleted" in res.stderr
    az("network", "vnet", "subnet", "update", "-g", RG, "--vnet-name", "demo-vnet", "-n", "aks-subnet",
       "--remove", "natGateway")
    az("network", "nat", "gateway", "delete", "-g", RG, "-n", "natgw")
    assert az("network", "nat", "gateway", "list", "-g", RG, "-o", "json").json() == []


def test_nat_gateway_sku_must_be_standard(sim):
    nat = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/natGateways/basic"
    status, _, body = call(sim, "PUT", nat, {"location": "westeurope", "sku": {"name": "Basic"}}, api=NET_API)
    assert status == 400 and body["error"]["code"] == "InvalidNatGatewaySku"
