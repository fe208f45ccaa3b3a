"""status asks the API servers for exactly what it needs: the same requests on 3 nodes as on 5,000."""
from __future__ import annotations

import pytest

IDS = ["-g", "demo-rg", "-n", "aks-demo"]


def status_requests(vn, sim) -> dict[str, dict[str, int]]:
    vn("aks", "virtual-node", "enable", *IDS, "--timeout", "180")
    sim.reset_logs()
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert st["healthy"] is True, st["problems"]
    return {ep: sim.request_log(ep)["counts"] for ep in ("arm", "kube")}


@pytest.mark.slow
def test_status_request_count_does_not_grow_with_the_cluster(vn, sim):
    small = status_requests(vn, sim)
    sim.load("large")
    assert len(sim.cluster().store.list("nodes")) == 5000
    large = status_requests(vn, sim)
    assert large == small
    entries = sim.requests("kube")
    pod_lists = [e for e in entries if e["path"].endswith("/pods") and e["method"] == "GET"]
    assert len(pod_lists) == 3, pod_lists          # connector pods by label; virtual-node and Pending pods by field
    assert all("fieldSelector=spec.nodeName" in e["query"] or "labelSelector=app" in e["query"]
               or "fieldSelector=status.phase" in e["query"] for e in pod_lists)
    assert not any(e["path"] == "/api/v1/nodes" for e in entries), "never list every node"
    assert {e["path"] for e in entries if e["path"].startswith("/api/v1/nodes/")} == {
        "/api/v1/nodes/virtual-node-aci-linux"}
