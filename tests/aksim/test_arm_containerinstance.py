"""Container groups in the simulator: pod mapping, subnet side effects, and the real ``az container``."""
from __future__ import annotations

from typing import Any

import pytest

from aksim.arm import containerinstance as aci
from aksim.arm import network
from aksim.httpcore import HttpError

SUB = "00000000-0000-0000-0000-000000000001"
NODE_RG = f"/subscriptions/{SUB}/resourceGroups/MC_demo-rg_aks-demo_westeurope"
SUBNET_ID = f"/subscriptions/{SUB}/resourceGroups/demo-rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci"

pytestmark = pytest.mark.scenario({"name": "aci", "resource_groups": [
    {"name": "demo-rg", "location": "westeurope", "vnets": [
        {"name": "vnet", "address_prefixes": ["10.0.0.0/8"], "subnets": [{"name": "aci", "prefix": "10.241.0.0/16"}]}]},
    {"name": "MC_demo-rg_aks-demo_westeurope", "location": "westeurope"}]})


def pod(name: str, requests: dict[str, str] | None = None, ports: list[int] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "mcr.microsoft.com/azuredocs/aci-helloworld",
                                 "env": [{"name": "MODE", "value": "demo"}], "args": ["--serve"]}
    if requests:
        container["resources"] = {"requests": requests}
    if ports:
        container["ports"] = [{"containerPort": p} for p in ports]
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "virtual-node-aci-linux", "restartPolicy": "Always", "containers": [container]}}


def run_group(sim: Any, name: str, **kwargs: Any) -> tuple[dict[str, Any], str]:
    with sim.lock:
        w = sim.world
        assert network.delegate_subnet(w, SUBNET_ID) is None
        ip = network.allocate_ip(w, SUBNET_ID) or ""
        return aci.create_group(w, NODE_RG, f"default-{name}", "westeurope", pod(name, **kwargs), SUBNET_ID, ip), ip


@pytest.mark.parametrize("text,value", [("250m", 0.25), ("2", 2.0), ("1.5", 1.5), ("512Mi", 536870912.0),
                                        ("1Gi", 1073741824.0), ("128M", 128e6)])
def test_quantity(text: str, value: float) -> None:
    assert aci.quantity(text) == value


def test_group_body_maps_the_pod_like_the_aci_provider() -> None:
    body = aci.group_body(NODE_RG, "default-web", "westeurope", pod("web", {"cpu": "250m", "memory": "512Mi"}, [80]),
                          SUBNET_ID, "10.241.0.4")
    props = body["properties"]
    (container,) = props["containers"]
    assert container["properties"]["resources"]["requests"] == {"cpu": 0.25, "memoryInGB": 0.5}
    assert container["properties"]["command"] == ["--serve"]
    assert container["properties"]["environmentVariables"] == [{"name": "MODE", "value": "demo"}]
    assert props["ipAddress"] == {"type": "Private", "ip": "10.241.0.4", "ports": [{"port": 80, "protocol": "TCP"}]}
    assert props["subnetIds"] == [{"id": SUBNET_ID}] and props["osType"] == "Linux"
    assert body["tags"] == {"PodName": "web", "NodeName": "virtual-node-aci-linux", "Namespace": "default",
                            "UID": "uid-web", "CreationTimestamp": "2026-01-01T00:00:00Z"}
    defaults = aci.group_body(NODE_RG, "d", "westeurope", pod("d"), SUBNET_ID, "10.241.0.5")
    assert defaults["properties"]["containers"][0]["properties"]["resources"]["requests"] == {
        "cpu": 1.0, "memoryInGB": 1.5}


def test_create_group_needs_a_delegated_subnet(sim: Any) -> None:
    with sim.lock, pytest.raises(HttpError) as err:
        aci.create_group(sim.world, NODE_RG, "default-web", "westeurope", pod("web"), SUBNET_ID, "10.241.0.4")
    assert err.value.code == "SubnetMissingRequiredDelegation"


def test_group_links_the_subnet_and_gives_its_ip_back(sim: Any) -> None:
    group, ip = run_group(sim, "web")
    with sim.lock:
        w = sim.world
        assert ip == "10.241.0.4"
        assert [g["name"] for g in aci.groups_in(w, NODE_RG)] == ["default-web"]
        links = w.arm.get(SUBNET_ID)["properties"]["serviceAssociationLinks"]
        assert links[0]["properties"]["linkedResourceType"] == "Microsoft.ContainerInstance/containerGroups"
        free = network.subnet_ip_available(w, SUBNET_ID)
        assert aci.delete_group(w, group["id"]) is not None
        assert network.subnet_ip_available(w, SUBNET_ID) == free + 1
        assert w.arm.get(SUBNET_ID)["properties"]["serviceAssociationLinks"]
        assert aci.groups_in(w, NODE_RG) == []


def test_az_container_list_show_delete(az: Any, sim: Any) -> None:
    run_group(sim, "web", requests={"cpu": "500m", "memory": "1Gi"}, ports=[80])
    run_group(sim, "worker")
    table = az("container", "list", "-g", "MC_demo-rg_aks-demo_westeurope", "-o", "table").stdout
    assert "default-web" in table and "10.241.0.4:80" in table and "Private" in table and "default-worker" in table
    everywhere = az("container", "list", "--query", "[].{n:name, ip:ipAddress.ip, tags:tags.PodName}", "-o", "json")
    assert sorted(everywhere.json(), key=lambda g: g["n"]) == [
        {"n": "default-web", "ip": "10.241.0.4", "tags": "web"},
        {"n": "default-worker", "ip": "10.241.0.5", "tags": "worker"}]
    shown = az("container", "show", "-g", "MC_demo-rg_aks-demo_westeurope", "-n", "default-web", "-o", "json").json()
    assert shown["instanceView"]["state"] == "Running"
    assert shown["containers"][0]["resources"]["requests"] == {"cpu": 0.5, "gpu": None, "memoryInGb": 1.1}
    az("container", "delete", "-g", "MC_demo-rg_aks-demo_westeurope", "-n", "default-web", "--yes")
    left = az("container", "list", "-g", "MC_demo-rg_aks-demo_westeurope", "--query", "[].name", "-o", "json")
    assert left.json() == ["default-worker"]
    missing = az("container", "show", "-g", "MC_demo-rg_aks-demo_westeurope", "-n", "default-web", check=False)
    assert "(ResourceNotFound)" in missing.stderr
