"""Bad input: a clear error, exit 1 (2 for usage), and no PUT/PATCH/DELETE reached ARM."""
from __future__ import annotations

import pytest

from aksim.scenario import read_raw
from conftest import ROOT

IDS = ["-g", "demo-rg", "-n", "aks-demo"]


def enable_fails(vn, sim, *extra: str, expect: str, code: int = 1, env: dict[str, str] | None = None) -> str:
    sim.reset_logs()
    res = vn("aks", "virtual-node", "enable", *extra, check=False, env=env)
    assert res.returncode == code, str(res)
    assert expect in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert sim.writes() == [], f"writes reached ARM: {sim.writes()}"
    return res.stderr


def demo_with(**changes) -> dict:
    raw = read_raw("demo")
    raw.update(changes)
    return raw


def test_missing_resource_group(vn, sim):
    enable_fails(vn, sim, "-g", "nope-rg", "-n", "aks-demo", expect="Resource group 'nope-rg' was not found")


def test_missing_cluster(vn, sim):
    err = enable_fails(vn, sim, "-g", "demo-rg", "-n", "nope", expect="Managed cluster 'nope' was not found")
    assert "az aks list -g demo-rg" in err


@pytest.mark.scenario("kubenet")
def test_kubenet(vn, sim):
    enable_fails(vn, sim, *IDS, expect="uses the 'kubenet' network plugin")


@pytest.mark.scenario("overlay")
def test_overlay(vn, sim):
    enable_fails(vn, sim, *IDS, expect="Azure CNI Overlay")


@pytest.mark.scenario("managed-vnet")
def test_no_custom_vnet(vn, sim):
    enable_fails(vn, sim, *IDS, expect="virtual network AKS manages")


@pytest.mark.parametrize("cidr, expect, code", [
    ("10.241.0.0", "not a valid IPv4 CIDR", 1),
    ("10.241.0.0/33", "not a valid IPv4 CIDR", 1),
    ("192.168.0.0/24", "outside the address space", 1),
    ("10.240.128.0/24", "overlaps subnet 'aks-subnet'", 1),
    ("10.0.5.0/24", "service/pod address range 10.0.0.0/16", 1),
    ("10.241.0.0/29", "too small for Azure Container Instances", 1),
])
def test_bad_cidr(vn, sim, cidr, expect, code):
    enable_fails(vn, sim, *IDS, "--subnet-cidr", cidr, expect=expect, code=code)


@pytest.mark.parametrize("name", [
    "/subscriptions/x/resourceGroups/demo-rg/providers/Microsoft.Network/virtualNetworks/demo-vnet/subnets/vn",
    "demo-vnet/vn"])
def test_subnet_name_that_is_an_id_or_path(vn, sim, name):
    enable_fails(vn, sim, *IDS, "--subnet-name", name, expect="expects the subnet's name, not a resource ID")


def test_subnet_used_by_other_resources(vn, sim):
    enable_fails(vn, sim, *IDS, "--subnet-name", "aks-subnet", expect="is used by 3 other resource(s)")


@pytest.mark.scenario("route-table")
def test_subnet_with_route_table(vn, sim):
    enable_fails(vn, sim, *IDS, expect="references the route table")


@pytest.mark.scenario(demo_with(resource_groups=[{"name": "demo-rg", "location": "westeurope", "vnets": [{
    "name": "demo-vnet", "address_prefixes": ["10.0.0.0/8"], "subnets": [
        {"name": "aks-subnet", "prefix": "10.240.0.0/16"},
        {"name": "virtual-node-aci", "prefix": "10.241.0.0/16", "delegation": "Microsoft.Web/serverFarms"}]}]}]))
def test_subnet_delegated_to_another_service(vn, sim):
    enable_fails(vn, sim, *IDS, expect="is delegated to Microsoft.Web/serverFarms")


@pytest.mark.scenario(demo_with(
    resource_groups=[{"name": "demo-rg", "location": "westeurope", "vnets": [{
        "name": "demo-vnet", "address_prefixes": ["10.0.0.0/8"], "subnets": [
            {"name": "aks-subnet", "prefix": "10.240.0.0/16"},
            {"name": "old-aci", "prefix": "10.242.0.0/16",
             "delegation": "Microsoft.ContainerInstance/containerGroups"}]}]}],
    clusters=[{**read_raw("demo")["clusters"][0], "addon": {"subnet": "old-aci"}}]))
def test_addon_enabled_on_another_subnet(vn, sim):
    err = enable_fails(vn, sim, *IDS, "--subnet-name", "virtual-node-aci", expect="already enabled")
    assert "az aks virtual-node disable -g demo-rg -n aks-demo" in err and "old-aci" in err


@pytest.mark.scenario(demo_with(caller={"roles": [{"role": "Contributor", "scope": "/subscriptions/{subscription}"}]}))
def test_missing_rights(vn, sim):
    err = enable_fails(vn, sim, *IDS, expect="Microsoft.Authorization/roleAssignments/write")
    assert 'az role assignment create --assignee-object-id 11111111-1111-1111-1111-111111111111' in err
    assert '--role "User Access Administrator" --scope /subscriptions/' in err


def test_cluster_busy_beyond_timeout(vn, sim):
    sim.admin("POST", "/_admin/timings", {"lro": 60})
    vn("aks", "virtual-node", "enable", *IDS, "--no-wait")
    err = enable_fails(vn, sim, *IDS, "--timeout", "2", expect="is busy (provisioningState: Updating)")
    assert "az aks wait -g demo-rg -n aks-demo --updated" in err


def test_usage_error_exits_2(vn, sim):
    sim.reset_logs()
    res = vn("aks", "virtual-node", "enable", "-g", "demo-rg", check=False)
    assert res.returncode == 2 and "--name" in res.stderr
    assert sim.writes() == []


# -- chart mode ----------------------------------------------------------------------------------------------
CHART = str(ROOT / "tests" / "fixtures" / "charts" / "virtual-kubelet-azure-aci")
CHART_MODE = [*IDS, "--mode", "chart", "--chart", CHART]


@pytest.mark.scenario(demo_with(clusters=[{**read_raw("demo")["clusters"][0], "addon": {"subnet": "virtual-node-aci"}}],
                                resource_groups=[{"name": "demo-rg", "location": "westeurope", "vnets": [{
                                    "name": "demo-vnet", "address_prefixes": ["10.0.0.0/8"], "subnets": [
                                        {"name": "aks-subnet", "prefix": "10.240.0.0/16"},
                                        {"name": "virtual-node-aci", "prefix": "10.241.0.0/16",
                                         "delegation": "Microsoft.ContainerInstance/containerGroups"}]}]}]))
def test_chart_refused_while_the_addon_is_on(vn, sim):
    err = enable_fails(vn, sim, *CHART_MODE, expect="The managed ACI connector add-on is enabled")
    assert "az aks virtual-node disable -g demo-rg -n aks-demo" in err


def test_chart_helm_missing(vn, sim):
    err = enable_fails(vn, sim, *CHART_MODE, expect="Helm was not found", env={"PATH": "/usr/bin:/bin"})
    assert "HELM_CLIENT_PATH" in err and "Install Helm 3" in err


def test_chart_helm_2(vn, sim, tmp_path):
    helm2 = tmp_path / "helm"
    helm2.write_text('#!/bin/sh\necho "Client: v2.17.0+ga690bad"\n')
    helm2.chmod(0o755)
    enable_fails(vn, sim, *CHART_MODE, expect="is Helm v2.17.0; chart mode needs Helm 3",
                 env={"HELM_CLIENT_PATH": str(helm2)})


def test_chart_helm_client_path_not_executable(vn, sim, tmp_path):
    enable_fails(vn, sim, *CHART_MODE, expect="which is not an executable file",
                 env={"HELM_CLIENT_PATH": str(tmp_path / "missing-helm")})


def test_chart_unknown_identity(vn, sim):
    uami = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo-rg/providers/"
            "Microsoft.ManagedIdentity/userAssignedIdentities/nope")
    err = enable_fails(vn, sim, *CHART_MODE, "--identity", uami, expect=f"Managed identity '{uami}' was not found")
    assert "az identity list -g demo-rg" in err


def test_chart_identity_that_is_not_a_resource_id(vn, sim):
    enable_fails(vn, sim, *CHART_MODE, "--identity", "my-identity", expect="--identity expects the resource ID")


def test_chart_path_that_does_not_exist(vn, sim, tmp_path):
    enable_fails(vn, sim, *IDS, "--mode", "chart", "--chart", str(tmp_path / "no-chart"), expect="does not exist")


def test_chart_options_without_chart_mode(vn, sim):
    enable_fails(vn, sim, *IDS, "--release", "vk", "--node-name", "n", expect="--release, --node-name only apply "
                 "with --mode chart")


def test_chart_namespace_that_exists_already(vn, sim):
    from kubernetes import client
    client.CoreV1Api(sim.kube_client()).create_namespace({"metadata": {"name": "team"}})
    enable_fails(vn, sim, *CHART_MODE, "--namespace", "team", expect="Namespace 'team' already exists")
    assert sim.writes("kube") == []


@pytest.mark.scenario(demo_with(caller={"roles": [{"role": "Contributor", "scope": "/subscriptions/{subscription}"}]}))
def test_chart_missing_rights_on_both_scopes(vn, sim):
    err = enable_fails(vn, sim, *CHART_MODE, expect="Microsoft.Authorization/roleAssignments/write")
    assert "/virtualNetworks/demo-vnet" in err and "/resourceGroups/MC_demo-rg_aks-demo_westeurope" in err
