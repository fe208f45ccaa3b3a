"""Virtual Nodes v2 facts (azext_virtualnode.connectors.v2): versions, names, sizes, values, ghost nodes."""
from __future__ import annotations

import pytest

from azext_virtualnode.connectors import v2


@pytest.mark.parametrize("k8s,expected", [
    (29, "1.3012.25080101"),     # 1.29 and 1.30 lines are tested on 1.29: the newer line wins
    (30, "1.3012.25080101"),
    (31, "1.3012.25080101"),     # no 1.31 line; the 1.30 line is tested on 1.31
    (32, "1.3307.26033004"),
    (33, "1.3409.26080501"),
    (34, "1.3409.26080501"),
])
def test_pick_version_newest_tested_line(k8s: int, expected: str) -> None:
    assert v2.pick_version(k8s) == expected
    assert v2.support(expected, k8s) == "Y"


def test_pick_version_none_for_untested_kubernetes() -> None:
    assert v2.pick_version(35) is None
    assert v2.pick_version(28) is None


@pytest.mark.parametrize("version,k8s,verdict", [
    ("1.3409.26080501", 34, "Y"),
    ("1.3409.26080501", 32, "?"),
    ("1.3409.26080501", 30, "-"),
    ("1.3208.25100802", 34, "-"),
    ("1.3307.26033004", 34, "Y"),      # tested on 1.34 from this build on
    ("1.3307.25120101", 34, "-"),      # an older 1.33 build is not
    ("1.2912.25013001", 30, "-"),
    ("0.0.1", 33, "unknown"),
    ("1.29.8+241108.01", 29, "unknown"),
])
def test_support(version: str, k8s: int, verdict: str) -> None:
    assert v2.support(version, k8s) == verdict


def test_chart_version_parse() -> None:
    parsed = v2.ChartVersion.parse("1.3409.26080501")
    assert parsed is not None and (parsed.line, parsed.patch, parsed.build) == (34, 9, (260805, 1))
    assert v2.ChartVersion.parse("1.6.4") is None


def test_kubernetes_minor() -> None:
    assert v2.kubernetes_minor("1.33.2") == 33
    assert v2.kubernetes_minor("v1.34.0") == 34
    with pytest.raises(ValueError):
        v2.kubernetes_minor("banana")


@pytest.mark.parametrize("release,values,expected", [
    ("virtualnode", {}, "virtualnode"),
    ("vn2", {}, "vn2-virtualnode"),
    ("my-virtualnode-x", {}, "my-virtualnode-x"),
    ("vn2", {"nameOverride": "vn"}, "vn2"),          # the release name contains the override
    ("a", {"fullnameOverride": "custom"}, "custom"),
    ("x" * 70, {}, "x" * 63),
])
def test_fullname(release: str, values: dict, expected: str) -> None:
    assert v2.fullname(release, values) == expected


def test_target_namespace_rule() -> None:
    assert v2.target_namespace("default") == "vn2"
    assert v2.target_namespace("default", {"namespace": "other"}) == "other"
    assert v2.target_namespace("vn2-system") == "vn2-system"
    assert v2.target_namespace("vn2-system", chart_version="1.3307.26033004") == "vn2"   # older chart


def test_node_names_and_ghosts() -> None:
    assert v2.node_names("virtualnode", 2) == ["virtualnode-0", "virtualnode-1"]
    nodes = ["virtualnode-0", "virtualnode-1", "virtualnode-10", "aks-nodepool1-1", "virtualnode-x", "other-0"]
    assert v2.ghost_nodes("virtualnode", nodes, ["virtualnode-0"]) == ["virtualnode-1", "virtualnode-10"]


def test_infra_requests_by_version() -> None:
    assert v2.infra_requests("1.3409.26080501") == (2800, 9 * 10 ** 9)
    assert v2.infra_requests("1.3307.26033004") == (3000, 12 * 10 ** 9)
    assert v2.infra_requests(None) == (2800, 9 * 10 ** 9)


def test_capacity() -> None:
    req = v2.infra_requests(None)
    big = v2.NodeRoom("aks-1", 3860, 12 * 10 ** 9)        # a 4 vCPU / 16 GiB node, a few pods on it
    small = v2.NodeRoom("aks-2", 1900, 5 * 10 ** 9)       # 2 vCPU / 8 GiB
    assert v2.infra_pods_that_fit([big, small], req) == 1
    assert v2.capacity_error([big, big], 2, req) is None
    message = v2.capacity_error([small, small, small], 2, req)
    assert message is not None
    assert "need 2.8 CPU / 9G each" in message and "only 0 fit" in message and "1.9 CPU / 5.0G (aks-2)" in message
    assert "az aks nodepool" in message
    assert "no regular Linux node" in (v2.capacity_error([], 1, req) or "")


def test_values_use_chart_keys_only() -> None:
    assert v2.values(2, ["cg"], None, "vn2") == {"replicaCount": 2, "aciSubnetName": "cg", "namespace": "vn2"}
    assert v2.values(1, ["cg", "cg2"], "aci-rg", "vn2")["aciSubnetName"] == "cg,cg2"
    assert v2.values(1, ["cg"], "aci-rg", "vn2")["aciResourceGroupName"] == "aci-rg"
