"""az aks virtual-node, add-on mode, end to end: the real az with the installed wheel against aksim."""
from __future__ import annotations


import pytest

from waiting import wait_for

RG, NAME = "demo-rg", "aks-demo"
IDS = ["-g", RG, "-n", NAME]
SUB = "00000000-0000-0000-0000-000000000001"
VNET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/demo-vnet"
NC = "4d97b98b-1d4f-4787-a291-c67834d212e7"


def role_assignments(sim, principal_id: str) -> list[dict]:
    with sim.lock:
        return [r for r in sim.world.arm.of_type("Microsoft.Authorization/roleAssignments")
                if r["properties"]["principalId"] == principal_id]


def addon_identity(sim) -> dict:
    with sim.lock:
        mc = sim.world.arm.get(sim.cluster().resource_id)
        return mc["properties"]["addonProfiles"]["aciConnectorLinux"]["identity"]


def subnet(sim, name: str = "virtual-node-aci") -> dict | None:
    with sim.lock:
        return sim.world.arm.get(f"{VNET}/subnets/{name}")


def test_happy_path_enable_status_disable(vn, sim):
    st = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120").json()
    assert st["healthy"] is True, st["problems"]
    assert st["mode"] == "addon"
    assert st["node"]["name"] == "virtual-node-aci-linux" and st["node"]["ready"]
    assert {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"} in st["node"]["taints"]
    assert st["node"]["labels"]["type"] == "virtual-kubelet"
    # the subnet was created, delegated, and does not overlap the service CIDR 10.0.0.0/16
    sn = subnet(sim)
    assert sn is not None
    assert [d["properties"]["serviceName"] for d in sn["properties"]["delegations"]] == [
        "Microsoft.ContainerInstance/containerGroups"]
    assert not sn["properties"]["addressPrefix"].startswith("10.0.")
    # Network Contributor on that subnet only, for the add-on identity, marked as ours
    identity = addon_identity(sim)
    grants = [r for r in role_assignments(sim, identity["objectId"])
              if r["properties"]["roleDefinitionId"].endswith(NC)]
    assert [g["properties"]["scope"].lower() for g in grants] == [sn["id"].lower()]
    assert grants[0]["properties"]["description"].startswith("Created by az aks virtual-node")
    assert not any(r["properties"]["scope"].lower() == VNET.lower()
                   for r in role_assignments(sim, identity["objectId"]))

    again = vn("aks", "virtual-node", "status", *IDS).json()
    assert again["healthy"] is True and again["roleAssignment"]["present"] is True
    assert again["subnet"]["delegated"] is True

    out = vn("aks", "virtual-node", "disable", *IDS, "--delete-subnet", "--yes", "--timeout", "120").json()
    assert out["addonDisabled"] and out["nodeRemoved"] and out["subnetDeleted"]
    assert subnet(sim) is None
    assert not [r for r in role_assignments(sim, identity["objectId"])
                if "Created by az aks virtual-node" in (r["properties"].get("description") or "")]
    assert sim.cluster().store.get("nodes", None, "virtual-node-aci-linux") is None


@pytest.mark.scenario("service-principal")
def test_service_principal_cluster_role_goes_to_the_sp(vn, sim):
    st = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120").json()
    assert st["healthy"] is True, st["problems"]
    assert st["identity"]["kind"] == "servicePrincipal"
    sp_object_id = "9d2c1e0f-0000-4000-8000-00000000b0b0"
    assert st["identity"]["objectId"] == sp_object_id
    ours = [g for g in role_assignments(sim, sp_object_id)
            if (g["properties"].get("description") or "").startswith("Created by az aks virtual-node")]
    assert [(g["properties"]["scope"].lower(), g["properties"]["roleDefinitionId"].rsplit("/", 1)[-1])
            for g in ours] == [(subnet(sim)["id"].lower(), NC)]


def test_enable_twice_second_makes_no_write_and_disable_twice_succeeds(vn, sim):
    vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120")
    sim.reset_logs()
    st = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120").json()
    assert st["healthy"] is True
    assert sim.writes() == []
    vn("aks", "virtual-node", "disable", *IDS, "--yes", "--timeout", "120")
    sim.reset_logs()
    second = vn("aks", "virtual-node", "disable", *IDS, "--yes")
    assert "nothing to do" in second.stderr
    assert sim.writes() == []


def test_interrupted_enable_completes_when_rerun(vn, sim):
    sim.admin("POST", "/_admin/faults", {"method": "PUT", "path": "/managedClusters/aks-demo$", "status": 400,
                                         "code": "InjectedInterruption", "message": "interrupted", "times": 1})
    failed = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "60", check=False)
    assert failed.returncode == 1 and "interrupted" in failed.stderr
    assert subnet(sim) is not None            # the subnet step had completed
    sim.reset_logs()
    st = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120").json()
    assert st["healthy"] is True
    assert not any(w.lower().endswith("/subnets/virtual-node-aci") for w in sim.writes()), "subnet redone"


def test_no_wait_then_wait_ready_and_wait_deleted(vn, sim):
    started = vn("aks", "virtual-node", "enable", *IDS, "--no-wait")
    assert started.stdout.strip() == ""
    # the role assignment was made before returning
    assert role_assignments(sim, addon_identity(sim)["objectId"])
    vn("aks", "virtual-node", "wait", *IDS, "--ready", "--timeout", "60")
    assert vn("aks", "virtual-node", "status", *IDS).json()["healthy"] is True
    vn("aks", "virtual-node", "disable", *IDS, "--yes")
    vn("aks", "virtual-node", "wait", *IDS, "--deleted", "--timeout", "60")


def test_wait_times_out_with_clear_message(vn, sim):
    vn("aks", "virtual-node", "enable", *IDS, "--skip-role-assignment", "--no-wait")
    res = vn("aks", "virtual-node", "wait", *IDS, "--ready", "--timeout", "3", check=False)
    assert res.returncode == 1
    assert "did not become ready within 3s" in res.stderr and "RoleMissing" in res.stderr


def test_diagnosis_role_missing_then_crash_loop(vn, sim):
    vn("aks", "virtual-node", "enable", *IDS, "--skip-role-assignment", "--no-wait")
    first = vn("aks", "virtual-node", "status", *IDS).json()
    assert "RoleMissing" in [p["code"] for p in first["problems"]]
    assert first["healthy"] is False

    def crash_looping():
        st = vn("aks", "virtual-node", "status", *IDS).json()
        return st if "ConnectorCrashLoop" in [p["code"] for p in st["problems"]] else None
    st = wait_for(crash_looping, timeout=60, interval=1)
    problem = next(p for p in st["problems"] if p["code"] == "ConnectorCrashLoop")
    assert "AuthorizationFailed" in problem["message"]
    assert "RoleMissing" in [p["code"] for p in st["problems"]]
    assert st["connector"]["pods"][0]["restarts"] >= 1


def test_diagnosis_lease_taint_and_unreachable(vn, sim):
    vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120")
    api = sim.kube_client()
    from kubernetes import client
    client.CoordinationV1Api(api).delete_namespaced_lease("virtual-node-aci-linux", "kube-node-lease")
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert "LeaseStale" in [p["code"] for p in st["problems"]] and st["healthy"] is False

    client.CoreV1Api(api).patch_node("virtual-node-aci-linux", {"spec": {"taints": None}})
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert "TaintMissing" in [p["code"] for p in st["problems"]]
    assert st["node"]["taintsOk"] is False

    sim.admin("POST", f"/_admin/clusters/{RG}/{NAME}/apiserver", {"up": False})
    res = vn("aks", "virtual-node", "status", *IDS)
    assert res.returncode == 0 and "Traceback" not in res.stderr
    st = res.json()
    assert [p["code"] for p in st["problems"]] == ["ClusterUnreachable"]
    assert st["subnet"]["delegated"] is True and st["roleAssignment"]["present"] is True
    assert st["identity"]["objectId"]
    table = vn("aks", "virtual-node", "status", *IDS, "-o", "table").stdout
    assert "ClusterUnreachable" in table and "aks-demo" in table


def test_role_grant_names_principal_type_so_replication_does_not_block_it(vn, sim):
    sim.admin("POST", "/_admin/timings", {"role_replication": 3})
    res = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120")
    assert res.json()["healthy"] is True
    assert "replicate" not in res.stderr
    role_puts = [e["status"] for e in sim.requests()
                 if e["method"] == "PUT" and "/roleAssignments/" in e["path"]]
    assert role_puts == [201], role_puts    # principalType set: ARM skips the replication check
