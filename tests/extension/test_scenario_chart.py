"""az aks virtual-node, chart mode, end to end: the real az with the installed wheel and the REAL helm 3 against
aksim, installing the local virtual-kubelet-azure-aci chart (tests/fixtures/charts)."""
from __future__ import annotations

from pathlib import Path

import pytest

from waiting import wait_for

from conftest import TOOLS_BIN

RG, NAME = "demo-rg", "aks-demo"
IDS = ["-g", RG, "-n", NAME]
SUB = "00000000-0000-0000-0000-000000000001"
NODE_RG = "MC_demo-rg_aks-demo_westeurope"
NODE_RG_ID = f"/subscriptions/{SUB}/resourceGroups/{NODE_RG}"
VNET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/demo-vnet"
CHART = str(Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "virtual-kubelet-azure-aci")
NODE = "virtual-node-aci-linux-helm"
NC, ACI = "4d97b98b-1d4f-4787-a291-c67834d212e7", "5d977122-f97e-4b4d-a52f-6b43003ddb4d"
MARKER = "Created by az aks virtual-node"
ENABLE = ["aks", "virtual-node", "enable", *IDS, "--mode", "chart", "--chart", CHART]


@pytest.fixture(autouse=True)
def real_helm():
    if not (TOOLS_BIN / "helm").exists():
        pytest.fail("real helm missing: run tools/fetch-kube-binaries.sh (make test does)")


def ours(sim, principal_id: str) -> list[tuple[str, str]]:
    """(scope, role GUID) of the role assignments this extension made for ``principal_id``."""
    with sim.lock:
        return sorted((r["properties"]["scope"].lower(), r["properties"]["roleDefinitionId"].rsplit("/", 1)[-1])
                      for r in sim.world.arm.of_type("Microsoft.Authorization/roleAssignments")
                      if r["properties"]["principalId"] == principal_id
                      and (r["properties"].get("description") or "").startswith(MARKER))


def kubelet_identity(sim) -> dict:
    with sim.lock:
        return sim.world.arm.get(sim.cluster().resource_id)["properties"]["identityProfile"]["kubeletidentity"]


def subnet_id(name: str = "virtual-node-aci") -> str:
    return f"{VNET}/subnets/{name}"


def store(sim):
    return sim.cluster().store


def helm_records(sim) -> list[dict]:
    return store(sim).list("secrets", None, "owner=helm")


def test_enable_status_disable_cycle(vn, sim):
    assert vn("aks", "virtual-node", "status", *IDS).json()["mode"] == "none"

    st = vn(*ENABLE, "--timeout", "120").json()
    assert st["healthy"] is True, st["problems"]
    assert st["mode"] == "chart"
    assert {k: st["chart"][k] for k in ("release", "namespace", "version", "releaseNamespace")} == {
        "release": "virtual-node", "namespace": "vk-azure-aci", "version": "1.6.4", "releaseNamespace": "default"}
    assert st["node"]["name"] == NODE and st["node"]["ready"] and st["node"]["labels"]["type"] == "virtual-kubelet"
    assert {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"} in st["node"]["taints"]
    assert st["connector"]["namespace"] == "vk-azure-aci" and st["connector"]["pods"][0]["ready"]
    kubelet = kubelet_identity(sim)
    assert st["identity"]["kind"] == "kubeletIdentity" and st["identity"]["objectId"] == kubelet["objectId"]
    # least privilege, both marked: Network Contributor on the subnet, ACI Contributor on the node resource group
    assert ours(sim, kubelet["objectId"]) == sorted([(NODE_RG_ID.lower(), ACI), (subnet_id().lower(), NC)])

    # the release really is Helm's: record in 'default', objects in the chart's namespace, values as computed
    records = helm_records(sim)
    assert [(r["metadata"]["namespace"], r["metadata"]["labels"]["status"]) for r in records] == [
        ("default", "deployed")]
    deploy = store(sim).get("deployments.apps", "vk-azure-aci", "virtual-node-virtual-kubelet-azure-aci")
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["VIRTUALNODE_USER_IDENTITY_CLIENTID"] == kubelet["clientId"]
    assert env["ACI_RESOURCE_GROUP"] == NODE_RG and env["ACI_SUBNET_NAME"] == "virtual-node-aci"
    assert env["ACI_SUBNET_CIDR"] == st["subnet"]["prefix"] and env["CLUSTER_CIDR"] == "10.240.0.0/16"
    assert env["KUBE_DNS_IP"] == "10.0.0.10" and env["MASTER_URI"].startswith("https://")

    again = vn("aks", "virtual-node", "status", *IDS).json()
    assert again["healthy"] is True and again["mode"] == "chart" and again["roleAssignment"]["present"] is True

    # re-running changes nothing: no ARM write, no new Helm revision
    sim.reset_logs()
    rerun = vn(*ENABLE, "--timeout", "120")
    assert rerun.json()["healthy"] is True and "is up to date" in rerun.stderr
    assert sim.writes() == []
    assert [r["metadata"]["labels"]["version"] for r in helm_records(sim)] == ["1"]

    # the add-on refuses while the chart runs
    sim.reset_logs()
    refused = vn("aks", "virtual-node", "enable", *IDS, check=False)
    assert refused.returncode == 1 and "Helm release 'virtual-node'" in refused.stderr
    assert "Traceback" not in refused.stderr and sim.writes() == []

    out = vn("aks", "virtual-node", "disable", *IDS, "--delete-subnet", "--yes", "--timeout", "120").json()
    assert out["mode"] == "chart" and out["chartUninstalled"] and out["nodeRemoved"] and out["subnetDeleted"]
    assert len(out["roleAssignmentsRemoved"]) == 2
    assert ours(sim, kubelet["objectId"]) == []
    assert helm_records(sim) == []
    assert store(sim).get("namespaces", None, "vk-azure-aci") is None
    assert store(sim).get("nodes", None, NODE) is None
    with sim.lock:
        assert sim.world.arm.get(subnet_id()) is None
    assert vn("aks", "virtual-node", "status", *IDS).json()["mode"] == "none"

    sim.reset_logs()
    second = vn("aks", "virtual-node", "disable", *IDS, "--yes")
    assert "nothing to do" in second.stderr and sim.writes() == []


def test_user_assigned_identity_release_options_and_replication_retry(vn, sim):
    from aksim.arm import identity
    with sim.lock:
        principal = identity.create_user_assigned(sim.world, f"/subscriptions/{SUB}/resourceGroups/{RG}", "vk-id",
                                                  "westeurope")
    sim.admin("POST", "/_admin/timings", {"role_replication": 3})
    uami = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/vk-id"
    res = vn(*ENABLE, "--identity", uami, "--release", "vk", "--namespace", "team-vk", "--node-name", "vk-node",
             "--subnet-name", "aci-chart", "--subnet-cidr", "10.242.0.0/24", "--timeout", "120")
    st = res.json()
    assert st["healthy"] is True, st["problems"]
    # the grant names principalType, so ARM skips the replication check: granted at once, no PrincipalNotFound
    role_puts = [e["status"] for e in sim.requests() if e["method"] == "PUT" and "/roleAssignments/" in e["path"]]
    assert role_puts and set(role_puts) == {201}, role_puts
    assert st["identity"]["kind"] == "userAssignedIdentity" and st["identity"]["objectId"] == principal.object_id
    assert (st["chart"]["release"], st["chart"]["namespace"], st["node"]["name"]) == ("vk", "team-vk", "vk-node")
    assert st["subnet"]["name"] == "aci-chart" and st["subnet"]["prefix"] == "10.242.0.0/24"
    assert ours(sim, principal.object_id) == sorted([(NODE_RG_ID.lower(), ACI), (subnet_id("aci-chart").lower(), NC)])
    assert ours(sim, kubelet_identity(sim)["objectId"]) == []

    # a re-run names only the release: identity, namespace, node and subnet stay as installed, nothing is written
    sim.reset_logs()
    rerun = vn(*ENABLE, "--release", "vk", "--timeout", "120")
    assert rerun.json()["identity"]["objectId"] == principal.object_id and "is up to date" in rerun.stderr
    assert sim.writes() == []
    other = vn(*ENABLE, check=False)                      # another release next to it is refused
    assert other.returncode == 1 and "already installed on cluster 'aks-demo' as Helm release 'vk'" in other.stderr

    out = vn("aks", "virtual-node", "disable", *IDS, "--yes", "--timeout", "120").json()
    assert out["chartUninstalled"] and out["nodeRemoved"] and not out["subnetDeleted"]
    assert ours(sim, principal.object_id) == []
    assert store(sim).get("nodes", None, "vk-node") is None


@pytest.mark.scenario("service-principal")
def test_service_principal_cluster_uses_the_sp(vn, sim):
    st = vn(*ENABLE, "--timeout", "120").json()
    assert st["healthy"] is True, st["problems"]
    sp_object_id = "9d2c1e0f-0000-4000-8000-00000000b0b0"
    assert st["identity"]["kind"] == "servicePrincipal" and st["identity"]["objectId"] == sp_object_id
    # the SP already holds Contributor on the node resource group (as in AKS): only the subnet grant is added
    assert ours(sim, sp_object_id) == [(subnet_id().lower(), NC)]
    deploy = store(sim).get("deployments.apps", "vk-azure-aci", "virtual-node-virtual-kubelet-azure-aci")
    env = {e["name"] for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "VIRTUALNODE_USER_IDENTITY_CLIENTID" not in env    # azure.json's service principal is used


def test_no_wait_then_wait_ready_and_diagnosis(vn, sim):
    started = vn(*ENABLE, "--skip-role-assignment", "--no-wait")
    assert started.stdout.strip() == ""
    first = vn("aks", "virtual-node", "status", *IDS).json()
    assert first["mode"] == "chart" and "RoleMissing" in [p["code"] for p in first["problems"]]

    def crash_looping():
        st = vn("aks", "virtual-node", "status", *IDS).json()
        return st if "ConnectorCrashLoop" in [p["code"] for p in st["problems"]] else None
    st = wait_for(crash_looping, timeout=60, interval=1)
    problem = next(p for p in st["problems"] if p["code"] == "ConnectorCrashLoop")
    assert "AuthorizationFailed" in problem["message"] and "--mode chart" in problem["hint"]
    assert "kubectl logs -n vk-azure-aci deploy/virtual-node-virtual-kubelet-azure-aci" in problem["hint"]

    timed_out = vn("aks", "virtual-node", "wait", *IDS, "--ready", "--timeout", "3", check=False)
    assert timed_out.returncode == 1 and "did not become ready within 3s" in timed_out.stderr

    vn(*ENABLE, "--no-wait")                             # grants the roles; the connector heals on restart
    vn("aks", "virtual-node", "wait", *IDS, "--ready", "--timeout", "60")
    assert vn("aks", "virtual-node", "status", *IDS).json()["healthy"] is True


def test_disable_refuses_busy_node_then_force_cleans_up(vn, sim):
    vn(*ENABLE, "--timeout", "120")
    from kubernetes import client
    core = client.CoreV1Api(sim.kube_client())
    core.create_namespaced_pod("default", {
        "metadata": {"name": "burst"},
        "spec": {"nodeSelector": {"type": "virtual-kubelet"},
                 "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                 "containers": [{"name": "c", "image": "nginx"}]}})

    def placed():
        with sim.lock:
            return [g for g in sim.world.arm.of_type("Microsoft.ContainerInstance/containerGroups")]
    wait_for(placed)
    sim.reset_logs()
    busy = vn("aks", "virtual-node", "disable", *IDS, "--yes", check=False)
    assert busy.returncode == 1 and "default/burst" in busy.stderr and sim.writes() == []
    assert helm_records(sim)

    out = vn("aks", "virtual-node", "disable", *IDS, "--force", "--delete-subnet", "--yes", "--timeout", "120").json()
    assert out["chartUninstalled"] and out["nodeRemoved"] and out["subnetDeleted"]
    assert placed() == []                                # the orphaned container group went too
    with sim.lock:
        assert sim.world.arm.get(subnet_id()) is None


def test_helm_gets_credentials_in_private_temp_files_that_are_removed(vn, sim, tmp_path):
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {"HOME": str(home), "TMPDIR": str(tmp), "KUBECONFIG": str(home / ".kube" / "config")}
    vn(*ENABLE, "--timeout", "120", env=env)
    vn("aks", "virtual-node", "disable", *IDS, "--yes", "--timeout", "120", env=env)
    assert not (home / ".kube").exists()
    assert not list(tmp.glob("azvn-helm-*")), "helm's temporary kubeconfig directory was left behind"
    token = sim.cluster().user_token
    for path in list(tmp.rglob("*")) + list(home.rglob("*")):
        if path.is_file():
            assert token not in path.read_text(errors="ignore"), f"cluster token written to {path}"
