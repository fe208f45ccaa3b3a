"""Subnet choice and validation (pure functions)."""
import ipaddress

import pytest
from azure.cli.core.azclierror import InvalidArgumentValueError, ValidationError

from azext_virtualnode.network import (SubnetFacts, check_cidr_fits, check_existing_subnet, first_free_block,
                                       parse_cidr, subnet_body)

VNET = {"name": "v", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/8"]}, "subnets": [
    {"id": "/s/aks", "name": "aks", "properties": {"addressPrefix": "10.240.0.0/16"}},
    {"id": "/s/other", "name": "other", "properties": {"addressPrefixes": ["10.0.0.0/20"]}}]}}


def subnet(**props):
    return {"id": "/vnet/subnets/x", "name": "x", "properties": {"addressPrefix": "10.241.0.0/16", **props}}


@pytest.mark.parametrize("text", ["10.241.0.0", "10.241.0.1/16", "300.1.0.0/16", "fe80::/64", "banana"])
def test_malformed_cidr_rejected(text):
    with pytest.raises(InvalidArgumentValueError):
        parse_cidr(text)


def test_too_small_cidr_rejected_and_28_accepted():
    with pytest.raises(InvalidArgumentValueError, match="too small"):
        parse_cidr("10.241.0.0/29")
    assert parse_cidr("10.241.0.0/28").prefixlen == 28


def test_cidr_outside_vnet_and_overlap():
    with pytest.raises(InvalidArgumentValueError, match="outside the address space"):
        check_cidr_fits(ipaddress.ip_network("192.168.0.0/24"), VNET)
    with pytest.raises(InvalidArgumentValueError, match="overlaps subnet 'aks'"):
        check_cidr_fits(ipaddress.ip_network("10.240.128.0/24"), VNET)
    check_cidr_fits(ipaddress.ip_network("10.241.0.0/16"), VNET)


def test_first_free_block_skips_used_ranges():
    assert str(first_free_block(VNET)) == "10.0.16.0/20"
    tiny = {"name": "t", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/23"]},
                                        "subnets": [{"name": "a", "properties": {"addressPrefix": "10.1.0.0/24"}}]}}
    assert str(first_free_block(tiny)) == "10.1.1.0/24"
    full = {"name": "f", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/24"]},
                                        "subnets": [{"name": "a", "properties": {"addressPrefix": "10.1.0.0/24"}}]}}
    assert first_free_block(full) is None


def test_existing_subnet_rules():
    check_existing_subnet(SubnetFacts.of(subnet()), None, "v")
    with pytest.raises(ValidationError, match="used by 2 other"):
        check_existing_subnet(SubnetFacts.of(subnet(ipConfigurations=[{"id": "a"}, {"id": "b"}])), None, "v")
    with pytest.raises(ValidationError, match="route table"):
        check_existing_subnet(SubnetFacts.of(subnet(routeTable={"id": "/rt"})), None, "v")
    with pytest.raises(ValidationError, match="Microsoft.Web/serverFarms"):
        check_existing_subnet(SubnetFacts.of(subnet(delegations=[
            {"name": "d", "properties": {"serviceName": "Microsoft.Web/serverFarms"}}])), None, "v")
    with pytest.raises(InvalidArgumentValueError, match="already exists with prefix"):
        check_existing_subnet(SubnetFacts.of(subnet()), ipaddress.ip_network("10.242.0.0/16"), "v")


def test_subnet_body_adds_delegation_once_and_drops_read_only_fields():
    body = subnet_body(subnet(ipConfigurations=[], provisioningState="Succeeded",
                              networkSecurityGroup={"id": "/nsg"}), None)
    props = body["properties"]
    assert props["networkSecurityGroup"] == {"id": "/nsg"}
    assert "provisioningState" not in props and "ipConfigurations" not in props
    assert [d["properties"]["serviceName"] for d in props["delegations"]] == [
        "Microsoft.ContainerInstance/containerGroups"]
    again = subnet_body({"id": "x", "name": "x", "properties": props}, None)
    assert len(again["properties"]["delegations"]) == 1
    new = subnet_body(None, ipaddress.ip_network("10.241.0.0/16"))
    assert new["properties"]["addressPrefix"] == "10.241.0.0/16"


def test_cluster_ranges_are_avoided():
    service = [ipaddress.ip_network("10.0.0.0/16")]
    assert str(first_free_block(VNET, reserved=service)) == "10.1.0.0/20"
    with pytest.raises(InvalidArgumentValueError, match="service/pod address range 10.0.0.0/16"):
        check_cidr_fits(ipaddress.ip_network("10.0.128.0/24"), VNET, service)
