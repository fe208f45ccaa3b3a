"""No lost updates and no Retry-After dependence (issue 9, items 3 and 4): the real az with the wheel vs aksim.

A concurrent writer changes the cluster (tags + a node pool's count) or the subnet (a service endpoint) while
enable's PUT is held by a latency fault, i.e. between enable's read and its write. enable's PUT then carries a
stale If-Match, gets 412, re-reads, re-applies only the add-on/delegation and wins without reverting the change.
"""
from __future__ import annotations

import statistics
import threading
from typing import Any

import pytest

from aksim.scenario import read_raw
from armcall import call
from waiting import wait_for

RG, NAME = "demo-rg", "aks-demo"
IDS = ["-g", RG, "-n", NAME]
SUB = "00000000-0000-0000-0000-000000000001"
MC = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerService/managedClusters/{NAME}"
VNET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/demo-vnet"
HOLD = 2.5       # seconds enable's PUT is held before aksim handles it


def hold_first_put(sim: Any, path_regex: str) -> Any:
    """Delay the next PUT matching ``path_regex`` by HOLD seconds (no error); returns the rule."""
    from aksim.httpcore import FaultRule
    rule = FaultRule(method="PUT", path=path_regex, status=0, latency=HOLD, times=1)
    sim.sim.faults.add(rule)
    return rule


def run_in_background(fn: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", fn()), daemon=True)
    thread.start()
    out["thread"] = thread
    return out


def statuses(sim: Any, method: str, fragment: str) -> list[int]:
    return [e["status"] for e in sim.requests() if e["method"] == method and e["path"].endswith(fragment)]


def test_enable_does_not_revert_a_concurrent_cluster_change(vn, sim):
    rule = hold_first_put(sim, "/managedClusters/aks-demo$")
    job = run_in_background(lambda: vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120", check=False))
    wait_for(lambda: rule.hits == 1, timeout=60, interval=0.05)     # enable read the cluster and sent its PUT
    # the other writer: read, change tags and the node pool's count, write (while enable's PUT is held)
    _, _, mc = call(sim, "GET", MC, api="2025-07-01")
    mc["tags"] = {"team": "payments"}
    mc["properties"]["agentPoolProfiles"][0]["count"] = 5
    status, _, _ = call(sim, "PUT", MC, mc, api="2025-07-01")
    assert status == 200
    job["thread"].join(180)
    res = job["result"]
    assert res.returncode == 0, res
    assert res.json()["healthy"] is True
    assert "changed by someone else after it was read (412 PreconditionFailed)" in res.stderr
    with sim.lock:
        final = sim.world.arm.get(sim.cluster().resource_id)
        assert final["tags"] == {"team": "payments"}                      # the other change survived
        assert final["properties"]["agentPoolProfiles"][0]["count"] == 5
        assert final["properties"]["addonProfiles"]["aciConnectorLinux"]["enabled"] is True   # and ours
    assert statuses(sim, "PUT", "/managedClusters/aks-demo") == [200, 412, 200]


def _existing_plain_subnet() -> dict[str, Any]:
    raw = read_raw("demo")
    raw["resource_groups"][0]["vnets"][0]["subnets"].append({"name": "virtual-node-aci", "prefix": "10.241.0.0/16"})
    return raw


@pytest.mark.scenario(_existing_plain_subnet())
def test_enable_does_not_revert_a_concurrent_subnet_change(vn, sim):
    rule = hold_first_put(sim, "/subnets/virtual-node-aci$")
    job = run_in_background(lambda: vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120", check=False))
    wait_for(lambda: rule.hits == 1, timeout=60, interval=0.05)
    subnet_id = f"{VNET}/subnets/virtual-node-aci"
    _, _, subnet = call(sim, "GET", subnet_id, api="2024-05-01")
    subnet["properties"]["serviceEndpoints"] = [{"service": "Microsoft.Storage", "locations": ["westeurope"]}]
    status, _, _ = call(sim, "PUT", subnet_id, {"properties": subnet["properties"]}, api="2024-05-01")
    assert status == 200
    job["thread"].join(180)
    res = job["result"]
    assert res.returncode == 0, res
    assert res.json()["healthy"] is True
    assert "Subnet 'virtual-node-aci' was changed by someone else" in res.stderr
    with sim.lock:
        props = sim.world.arm.get(subnet_id)["properties"]
        assert [e["service"] for e in props.get("serviceEndpoints") or []] == ["Microsoft.Storage"]
        assert [d["properties"]["serviceName"] for d in props["delegations"]] == \
            ["Microsoft.ContainerInstance/containerGroups"]
    assert statuses(sim, "PUT", "/subnets/virtual-node-aci") == [200, 412, 200]


def _poll_gaps(sim: Any) -> list[float]:
    times = [e["time"] for e in sim.requests() if e["method"] == "GET" and "/operations/" in e["path"]]
    return [b - a for a, b in zip(times, times[1:])]


def test_lro_polling_needs_no_retry_after_and_honours_one_when_sent(vn, sim):
    assert sim.timings.retry_after_hint is False              # realistic: AKS/Network send no hint
    sim.admin("POST", "/_admin/timings", {"lro": 1.0})
    vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120")
    gaps = _poll_gaps(sim)
    assert len(gaps) >= 4 and statistics.median(gaps) < 0.5, gaps   # the extension's own interval, not 30 s
    sim.sim.reset_logs()
    sim.admin("POST", "/_admin/timings", {"retry_after_hint": True, "poll": 0.8, "lro": 2.0})
    vn("aks", "virtual-node", "disable", *IDS, "--yes", "--timeout", "120")
    gaps = _poll_gaps(sim)
    assert gaps and min(gaps) >= 0.7, gaps                    # retry-after-ms: 800 was honoured


def _not_latest() -> dict[str, Any]:
    raw = read_raw("demo")
    raw["arm_quirks"] = {"not_latest_operation": "all"}
    return raw


@pytest.mark.scenario(_not_latest())
def test_enable_tolerates_not_latest_operation_on_polls(vn, sim):
    st = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120").json()
    assert st["healthy"] is True, st["problems"]


def test_enable_does_not_overwrite_a_subnet_created_concurrently(vn, sim):
    rule = hold_first_put(sim, "/subnets/virtual-node-aci$")
    job = run_in_background(lambda: vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120", check=False))
    wait_for(lambda: rule.hits == 1, timeout=60, interval=0.05)     # enable planned a new subnet, PUT is held
    subnet_id = f"{VNET}/subnets/virtual-node-aci"
    mine = {"properties": {"addressPrefix": "10.250.0.0/24",
                           "serviceEndpoints": [{"service": "Microsoft.Storage", "locations": ["westeurope"]}]}}
    status, _, _ = call(sim, "PUT", subnet_id, mine, api="2024-05-01")
    assert status == 201
    job["thread"].join(180)
    res = job["result"]
    assert res.returncode == 0, res
    assert "Subnet 'virtual-node-aci' was changed by someone else" in res.stderr
    with sim.lock:
        props = sim.world.arm.get(subnet_id)["properties"]
    assert props["addressPrefix"] == "10.250.0.0/24"                   # the other writer's subnet, kept
    assert [e["service"] for e in props["serviceEndpoints"]] == ["Microsoft.Storage"]
    assert [d["properties"]["serviceName"] for d in props["delegations"]] == \
        ["Microsoft.ContainerInstance/containerGroups"]
    assert statuses(sim, "PUT", "/subnets/virtual-node-aci") == [201, 412, 200]   # If-None-Match: * refused


def test_cluster_that_keeps_changing_stops_enable_without_overwriting(vn, sim):
    sim.admin("POST", "/_admin/faults", {"method": "PUT", "path": "/managedClusters/aks-demo$", "status": 412,
                                         "code": "PreconditionFailed", "message": "eTag mismatch", "times": -1})
    res = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "60", check=False)
    assert res.returncode == 1
    assert "kept changing while this command tried to update it" in res.stderr and "Traceback" not in res.stderr
    assert statuses(sim, "PUT", "/managedClusters/aks-demo") == [412, 412, 412]       # bounded: 3 writes
