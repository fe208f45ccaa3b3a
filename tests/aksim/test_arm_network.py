"""Microsoft.Network in the simulator: address rules, subnet usage rules, LROs, and the real ``az network``."""
from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from aksim.arm import containerinstance, network
from aksim.httpcore import HttpError

SUB = "00000000-0000-0000-0000-000000000001"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/net-rg"
VNET_ID = f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/vnet"
AKS_SUBNET = f"{VNET_ID}/subnets/aks-subnet"
ACI_SUBNET = f"{VNET_ID}/subnets/aci-subnet"
RT_SUBNET = f"{VNET_ID}/subnets/rt-subnet"
TINY_SUBNET = f"{VNET_ID}/subnets/tiny"

SCENARIO: dict[str, Any] = {
    "name": "network",
    "resource_groups": [{
        "name": "net-rg", "location": "westeurope", "route_tables": ["routes"], "nsgs": ["nsg"],
        "vnets": [{"name": "vnet", "address_prefixes": ["10.0.0.0/8"], "subnets": [
            {"name": "aks-subnet", "prefix": "10.240.0.0/16", "ip_configurations": 3},
            {"name": "aci-subnet", "prefix": "10.241.0.0/16"},
            {"name": "rt-subnet", "prefix": "10.242.0.0/24", "route_table": "routes", "nsg": "nsg"},
            {"name": "tiny", "prefix": "10.243.0.0/29"}]}]}],
}
pytestmark = pytest.mark.scenario(SCENARIO)


def nets(*prefixes: str) -> list[Any]:
    return [ipaddress.ip_network(p) for p in prefixes]


def pod(name: str = "web") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "uid": "u-1"},
            "spec": {"nodeName": "virtual-node-aci-linux",
                     "containers": [{"name": "c", "image": "mcr.microsoft.com/azuredocs/aci-helloworld"}]}}


# -- pure address logic -------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix,code", [
    ("10.1.0/24", "InvalidAddressPrefixFormat"),
    ("10.1.0.0", "InvalidAddressPrefixFormat"),
    ("10.1.0.0/33", "InvalidAddressPrefixFormat"),
    ("banana", "InvalidAddressPrefixFormat"),
    ("10.1.0.1/24", "InvalidCIDRNotation"),
])
def test_parse_prefix_rejects_what_the_network_rp_rejects(prefix: str, code: str) -> None:
    with pytest.raises(HttpError) as err:
        network.parse_prefix(prefix, "/x/subnets/s")
    assert err.value.status == 400 and err.value.code == code


def test_parse_prefix_suggests_the_network_address() -> None:
    with pytest.raises(HttpError, match="should be 10.1.0.0/24"):
        network.parse_prefix("10.1.0.1/24", "/x")
    assert network.parse_prefix("10.1.0.0/24", "/x") == ipaddress.ip_network("10.1.0.0/24")


def test_subnet_ranges_inside_and_disjoint_pass() -> None:
    network.check_subnet_ranges("b", "v", nets("10.1.1.0/24"), nets("10.0.0.0/8"),
                                [nets("10.1.0.0/24"), nets("10.1.2.0/24"), nets("fd00::/64")])


@pytest.mark.parametrize("prefixes,code", [
    (["11.0.0.0/24"], "NetcfgSubnetRangeOutsideVnet"),
    (["10.0.0.0/7"], "NetcfgSubnetRangeOutsideVnet"),
    (["10.1.0.128/25"], "NetcfgSubnetRangesOverlap"),
    (["10.0.0.0/8"], "NetcfgSubnetRangesOverlap"),
])
def test_subnet_ranges_errors(prefixes: list[str], code: str) -> None:
    with pytest.raises(HttpError) as err:
        network.check_subnet_ranges("b", "v", nets(*prefixes), nets("10.0.0.0/8"), [nets("10.1.0.0/24")])
    assert err.value.code == code
    assert "Subnet 'b' is not valid because its IP address range" in err.value.message


def test_azure_reserves_five_addresses_per_prefix() -> None:
    assert len(network.usable_hosts(ipaddress.ip_network("10.0.0.0/29"))) == 3
    assert len(network.usable_hosts(ipaddress.ip_network("10.0.0.0/24"))) == 251


# -- helpers on the world -----------------------------------------------------------------------------
def test_ip_allocation_skips_reserved_and_used_addresses(sim: Any) -> None:
    with sim.lock:
        w = sim.world
        assert network.subnet_ip_available(w, AKS_SUBNET) == 65531 - 3
        assert network.allocate_ip(w, AKS_SUBNET) == "10.240.0.7"
        taken = [network.allocate_ip(w, TINY_SUBNET) for _ in range(4)]
        assert taken == ["10.243.0.4", "10.243.0.5", "10.243.0.6", None]
        network.release_ip(w, TINY_SUBNET, "10.243.0.5")
        assert network.subnet_ip_available(w, TINY_SUBNET) == 1
        assert network.allocate_ip(w, TINY_SUBNET) == "10.243.0.5"


def test_delegate_subnet_refuses_route_table_and_used_subnets(sim: Any) -> None:
    with sim.lock:
        w = sim.world
        assert network.delegate_subnet(w, RT_SUBNET) == (
            "unable to delegate subnet 'rt-subnet' to Azure Container Instance since it references the route "
            f"table '{RG_ID}/providers/Microsoft.Network/routeTables/routes'.")
        message = network.delegate_subnet(w, AKS_SUBNET) or ""
        assert message.startswith("error creating subnet: Delegations of subnet")
        assert "networkInterfaces/aks-subnet-nic-0/ipConfigurations/ipconfig1" in message
        assert network.delegated_services(w.arm.get(AKS_SUBNET)) == []


def test_delegate_subnet_then_link_then_idempotent(sim: Any) -> None:
    with sim.lock:
        w = sim.world
        assert network.delegate_subnet(w, ACI_SUBNET) is None
        subnet = w.arm.get(ACI_SUBNET)
        (delegation,) = subnet["properties"]["delegations"]
        assert delegation["name"] == "aciDelegation"
        assert delegation["properties"]["actions"] == ["Microsoft.Network/virtualNetworks/subnets/action"]
        network.add_service_association_link(w, ACI_SUBNET)
        network.add_service_association_link(w, ACI_SUBNET)
        (link,) = subnet["properties"]["serviceAssociationLinks"]
        assert link["id"] == f"{ACI_SUBNET}/serviceAssociationLinks/acisal"
        assert network.delegate_subnet(w, ACI_SUBNET) is None
        network.remove_service_association_link(w, ACI_SUBNET)
        assert "serviceAssociationLinks" not in subnet["properties"]


def test_delegate_subnet_refuses_other_service(sim: Any) -> None:
    with sim.lock:
        w = sim.world
        w.arm.get(TINY_SUBNET)["properties"]["delegations"] = [
            network._delegation(TINY_SUBNET, 0, {"properties": {"serviceName": "Microsoft.Web/serverFarms"}})]
        assert "delegated to 'Microsoft.Web/serverFarms'" in (network.delegate_subnet(w, TINY_SUBNET) or "")


def test_seed_vnet_rejects_overlapping_scenario(sim: Any) -> None:
    spec = {"name": "bad", "address_prefixes": ["10.0.0.0/16"],
            "subnets": [{"name": "a", "prefix": "10.0.0.0/24"}, {"name": "b", "prefix": "10.0.0.128/25"}]}
    with sim.lock, pytest.raises(ValueError, match="NetcfgSubnetRangesOverlap|overlaps"):
        network.seed_vnet(sim.world, RG_ID, "westeurope", spec)


# -- the real az --------------------------------------------------------------------------------------
def subnet_create(az: Any, name: str, *extra: str, check: bool = True) -> Any:
    return az("network", "vnet", "subnet", "create", "-g", "net-rg", "--vnet-name", "vnet", "-n", name, *extra,
              "-o", "json", check=check)


def test_az_subnet_create_as_in_the_docs_is_an_lro(az: Any, sim: Any) -> None:
    sim.reset_logs()
    out = subnet_create(az, "myVirtualNodeSubnet", "--address-prefixes", "10.244.0.0/16").json()
    assert out["addressPrefix"] == "10.244.0.0/16" and out["provisioningState"] == "Succeeded"
    assert out["id"] == f"{VNET_ID}/subnets/myVirtualNodeSubnet"
    counts = sim.request_log()["counts"]
    assert counts["PUT " + network.SUBNET] == 1
    assert counts["GET /subscriptions/{sub}/providers/{ns}/locations/{loc}/operations/{opid}"] >= 1
    shown = az("network", "vnet", "show", "-g", "net-rg", "-n", "vnet", "--query", "subnets[].name", "-o", "json")
    assert "myVirtualNodeSubnet" in shown.json()


@pytest.mark.parametrize("prefix,code", [
    ("10.241.128.0/17", "NetcfgSubnetRangesOverlap"),
    ("192.168.0.0/24", "NetcfgSubnetRangeOutsideVnet"),
    ("10.250.0.1/16", "InvalidCIDRNotation"),
])
def test_az_subnet_create_errors(az: Any, prefix: str, code: str) -> None:
    res = subnet_create(az, "bad", "--address-prefixes", prefix, check=False)
    assert res.returncode != 0 and f"({code})" in res.stderr


def test_az_subnet_keeps_route_table_nsg_and_delegation(az: Any) -> None:
    out = subnet_create(az, "full", "--address-prefixes", "10.245.0.0/24", "--route-table", "routes",
                        "--nsg", "nsg", "--delegations", "Microsoft.ContainerInstance/containerGroups").json()
    assert out["routeTable"]["id"].endswith("/routeTables/routes")
    assert out["networkSecurityGroup"]["id"].endswith("/networkSecurityGroups/nsg")
    assert out["delegations"][0]["serviceName"] == "Microsoft.ContainerInstance/containerGroups"
    linked = az("network", "route-table", "show", "-g", "net-rg", "-n", "routes", "--query", "subnets[].id",
                "-o", "json").json()
    assert f"{VNET_ID}/subnets/full" in linked


def test_az_delegating_a_used_subnet_fails(az: Any) -> None:
    res = az("network", "vnet", "subnet", "update", "-g", "net-rg", "--vnet-name", "vnet", "-n", "aks-subnet",
             "--delegations", "Microsoft.ContainerInstance/containerGroups", check=False)
    assert "(SubnetDelegationsCannotChangeWhenSubnetUsedByResource)" in res.stderr


def test_az_subnet_delete_blocked_by_service_association_link_until_docs_teardown(az: Any, sim: Any) -> None:
    with sim.lock:
        assert network.delegate_subnet(sim.world, ACI_SUBNET) is None
        network.add_service_association_link(sim.world, ACI_SUBNET)
    args = ["network", "vnet", "subnet"]
    where = ["-g", "net-rg", "--vnet-name", "vnet", "-n", "aci-subnet"]
    shown = az(*args, "show", *where, "--query", "serviceAssociationLinks[].[name, linkedResourceType]", "-o", "json")
    assert shown.json() == [["acisal", "Microsoft.ContainerInstance/containerGroups"]]
    res = az(*args, "delete", *where, check=False)
    assert "(InUseSubnetCannotBeDeleted) Subnet aci-subnet is in use by " \
           f"{ACI_SUBNET}/serviceAssociationLinks/acisal and cannot be deleted." in res.stderr
    res = az(*args, "update", *where, "--remove", "delegations", check=False)
    assert "(SubnetMissingRequiredDelegation)" in res.stderr
    assert "requires any of the following delegation(s) [Microsoft.ContainerInstance/containerGroups]" in res.stderr
    az("resource", "delete", "--ids", network.aci_sal_id(ACI_SUBNET), "--api-version", "2021-10-01")
    assert az(*args, "update", *where, "--remove", "delegations", "--query", "delegations").json() == []
    az(*args, "delete", *where)
    with sim.lock:
        assert sim.world.arm.get(ACI_SUBNET) is None


def test_az_service_association_link_delete_refused_while_groups_run(az: Any, sim: Any) -> None:
    with sim.lock:
        w = sim.world
        assert network.delegate_subnet(w, ACI_SUBNET) is None
        containerinstance.create_group(w, RG_ID, "default-web", "westeurope", pod(), ACI_SUBNET,
                                       network.allocate_ip(w, ACI_SUBNET) or "")
    res = az("resource", "delete", "--ids", network.aci_sal_id(ACI_SUBNET), "--api-version", "2021-10-01",
             "--verbose", check=False)
    assert res.returncode != 0 and "(ServiceAssociationLinkInUse)" in res.stderr and "default-web" in res.stderr


def test_az_vnet_update_keeps_subnets_and_checks_them(az: Any) -> None:
    out = az("network", "vnet", "update", "-g", "net-rg", "-n", "vnet", "--address-prefixes", "10.0.0.0/8",
             "172.16.0.0/16", "-o", "json").json()
    assert out["addressSpace"]["addressPrefixes"] == ["10.0.0.0/8", "172.16.0.0/16"]
    assert len(out["subnets"]) == 4
    res = az("network", "vnet", "update", "-g", "net-rg", "-n", "vnet", "--address-prefixes", "172.16.0.0/16",
             check=False)
    assert "(NetcfgSubnetRangeOutsideVnet)" in res.stderr


def test_az_vnet_create_with_subnet_then_delete(az: Any, sim: Any) -> None:
    out = az("network", "vnet", "create", "-g", "net-rg", "-n", "myVnet", "--address-prefixes", "192.168.0.0/16",
             "--subnet-name", "myAKSSubnet", "--subnet-prefix", "192.168.1.0/24", "-o", "json").json()["newVNet"]
    assert [s["name"] for s in out["subnets"]] == ["myAKSSubnet"]
    listed = az("network", "vnet", "list", "-g", "net-rg", "--query", "[].name", "-o", "json").json()
    assert sorted(listed) == ["myVnet", "vnet"]
    az("network", "vnet", "delete", "-g", "net-rg", "-n", "myVnet")
    with sim.lock:
        assert sim.world.arm.get(f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/myVnet/subnets/myAKSSubnet") \
            is None


def test_az_subnet_with_two_prefixes(az: Any, sim: Any) -> None:
    out = subnet_create(az, "twin", "--address-prefixes", "10.246.0.0/24", "10.247.0.0/24").json()
    assert out["addressPrefixes"] == ["10.246.0.0/24", "10.247.0.0/24"] and "addressPrefix" not in out
    with sim.lock:
        assert network.subnet_ip_available(sim.world, f"{VNET_ID}/subnets/twin") == 2 * 251


def test_arm_conventions_api_version_and_path_case(az: Any) -> None:
    res = az("rest", "--method", "get", "--url", VNET_ID, check=False)
    assert '"code":"MissingApiVersionParameter"' in res.stderr
    url = f"{RG_ID.lower()}/PROVIDERS/microsoft.network/VIRTUALNETWORKS/vnet/subnets/ACI-SUBNET?api-version=2024-05-01"
    assert az("rest", "--method", "get", "--url", url).json()["id"] == ACI_SUBNET
    res = az("rest", "--method", "get", "--url", f"{VNET_ID}/subnets/nope?api-version=2024-05-01", check=False)
    assert '"code":"NotFound"' in res.stderr
    res = az("network", "vnet", "show", "-g", "no-such-rg", "-n", "vnet", check=False)
    assert "(ResourceGroupNotFound)" in res.stderr


@pytest.mark.scenario({**SCENARIO, "caller": {"roles": [{"role": "Reader", "scope": "/subscriptions/{subscription}"}]}})
def test_az_reader_cannot_write_subnets(az: Any) -> None:
    res = subnet_create(az, "nope", "--address-prefixes", "10.248.0.0/24", check=False)
    assert "(AuthorizationFailed)" in res.stderr
    assert "'Microsoft.Network/virtualNetworks/subnets/write' over scope " \
           f"'{VNET_ID}/subnets/nope'" in res.stderr
