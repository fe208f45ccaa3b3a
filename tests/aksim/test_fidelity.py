"""Commands nobody here wrote, run unchanged against aksim: the AKS docs' virtual-node tutorial and the real
failure modes users report, with the real az (azure-cli from PyPI) and the real kubectl binary."""
from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from aksim.scenario import read_raw

RG, NAME = "demo-rg", "aks-demo"
NODE_RG = "MC_demo-rg_aks-demo_westeurope"
DOCS_DEPLOYMENT = Path(__file__).resolve().parents[2] / "examples" / "virtual-node-deployment.yaml"


def kubectl(kubectl_bin: str, kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([kubectl_bin, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=60, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc


def until(fn, timeout: float = 10.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not reached within {timeout}s (last: {last!r})")


def get_credentials(az, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    az("aks", "get-credentials", "-g", RG, "-n", NAME, "--file", str(path))
    return path


def test_az_login_identity_through_the_simulator(az, sim):
    account = az("account", "show").json()
    assert account["id"] == sim.scenario.subscription_id
    assert account["tenantId"] == sim.scenario.tenant_id
    assert account["user"] == {"assignedIdentityInfo": "MSI", "name": "systemAssignedIdentity",
                               "type": "servicePrincipal"}
    token = az("account", "get-access-token", "--query", "tokenType", "-o", "tsv").stdout.strip()
    assert token == "Bearer"


def test_docs_tutorial(az, sim, tmp_path, kubectl_bin):
    az("network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", "demo-vnet", "-n", "myVirtualNodeSubnet",
       "--address-prefixes", "10.241.0.0/16")
    az("aks", "enable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node", "--subnet-name",
       "myVirtualNodeSubnet")
    kc = get_credentials(az, tmp_path)
    started = time.monotonic()

    def node_ready():
        out = kubectl(kubectl_bin, kc, "get", "nodes", check=False).stdout
        return [line for line in out.splitlines() if line.startswith("virtual-node-aci-linux ") and " Ready " in line]
    until(node_ready, timeout=10)
    assert time.monotonic() - started < 10
    described = kubectl(kubectl_bin, kc, "describe", "node", "virtual-node-aci-linux").stdout
    assert "virtual-kubelet.io/provider=azure:NoSchedule" in described
    for label in ("type=virtual-kubelet", "kubernetes.io/role=agent", "kubernetes.io/os=linux"):
        assert label in described

    kubectl(kubectl_bin, kc, "apply", "-f", str(DOCS_DEPLOYMENT))

    def pod_running():
        pods = json.loads(kubectl(kubectl_bin, kc, "get", "pods", "-l", "app=aci-helloworld", "-o", "json").stdout)
        return [p for p in pods["items"] if p["status"].get("phase") == "Running"]
    pod = until(pod_running, timeout=15)[0]
    assert pod["spec"]["nodeName"] == "virtual-node-aci-linux"
    assert pod["status"]["podIP"].startswith("10.241.")
    groups = az("container", "list", "-g", NODE_RG).json()
    assert [g["name"] for g in groups] == [f"default-{pod['metadata']['name']}"]

    az("aks", "disable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node")
    until(lambda: "virtual-node-aci-linux" not in kubectl(kubectl_bin, kc, "get", "nodes").stdout, timeout=10)


@pytest.mark.scenario("kubenet")
def test_enable_addons_on_kubenet_fails_with_arm_error(az, sim):
    az("network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", "demo-vnet", "-n", "vn",
       "--address-prefixes", "10.241.0.0/16")
    res = az("aks", "enable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node", "--subnet-name", "vn",
             check=False)
    assert res.returncode != 0
    assert "InvalidParameter" in res.stderr and "Azure CNI" in res.stderr


def _caller_without_role_rights() -> dict:
    raw = read_raw("demo")
    raw["caller"] = {"roles": [{"role": "Contributor", "scope": "/subscriptions/{subscription}"}]}
    return raw


@pytest.mark.scenario(_caller_without_role_rights())
def test_connector_without_rights_crash_loops(az, sim, tmp_path, kubectl_bin):
    az("network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", "demo-vnet", "-n", "vn",
       "--address-prefixes", "10.241.0.0/16")
    res = az("aks", "enable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node", "--subnet-name", "vn")
    assert "Could not create a role assignment" in res.stderr     # the CLI only warns
    kc = get_credentials(az, tmp_path)
    until(lambda: "CrashLoopBackOff" in kubectl(kubectl_bin, kc, "get", "pods", "-n", "kube-system").stdout,
          timeout=15)
    assert "aci-connector-linux" in kubectl(kubectl_bin, kc, "get", "pods", "-n", "kube-system").stdout
    assert "virtual-node-aci-linux" not in kubectl(kubectl_bin, kc, "get", "nodes").stdout
    logs = kubectl(kubectl_bin, kc, "logs", "-n", "kube-system", "deploy/aci-connector-linux").stdout
    assert "AuthorizationFailed" in logs


@pytest.mark.scenario("route-table")
def test_route_table_blocks_delegation(az, sim, tmp_path, kubectl_bin):
    az("aks", "enable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node", "--subnet-name", "virtual-node-aci")
    kc = get_credentials(az, tmp_path)

    def delegation_error():
        logs = kubectl(kubectl_bin, kc, "logs", "-n", "kube-system", "deploy/aci-connector-linux", check=False).stdout
        return "unable to delegate subnet 'virtual-node-aci' to Azure Container Instance" in logs
    until(delegation_error, timeout=15)
    assert "virtual-node-aci-linux" not in kubectl(kubectl_bin, kc, "get", "nodes").stdout


def test_used_subnet_cannot_be_deleted_until_addon_disabled(az, sim, tmp_path, kubectl_bin):
    az("network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", "demo-vnet", "-n", "vn",
       "--address-prefixes", "10.241.0.0/16")
    az("aks", "enable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node", "--subnet-name", "vn")
    kc = get_credentials(az, tmp_path)
    until(lambda: "virtual-node-aci-linux" in kubectl(kubectl_bin, kc, "get", "nodes").stdout)
    kubectl(kubectl_bin, kc, "apply", "-f", str(DOCS_DEPLOYMENT))
    until(lambda: az("container", "list", "-g", NODE_RG).json())
    kubectl(kubectl_bin, kc, "delete", "-f", str(DOCS_DEPLOYMENT))
    res = az("network", "vnet", "subnet", "delete", "-g", RG, "--vnet-name", "demo-vnet", "-n", "vn", check=False)
    assert res.returncode != 0 and "InUseSubnetCannotBeDeleted" in res.stderr
    az("aks", "disable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node")
    az("network", "vnet", "subnet", "delete", "-g", RG, "--vnet-name", "demo-vnet", "-n", "vn")


def test_selectors_and_watch_with_real_clients(az, sim, tmp_path, kubectl_bin):
    from kubernetes import client, watch
    api = client.CoreV1Api(sim.kube_client())
    seen: list[str] = []

    def watch_nodes():
        w = watch.Watch()
        for event in w.stream(api.list_node, timeout_seconds=20):
            if event["type"] == "ADDED" and event["object"].metadata.name == "virtual-node-aci-linux":
                seen.append(event["type"])
                w.stop()
    watcher = threading.Thread(target=watch_nodes)
    watcher.start()
    az("network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", "demo-vnet", "-n", "vn",
       "--address-prefixes", "10.241.0.0/16")
    az("aks", "enable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node", "--subnet-name", "vn")
    watcher.join(timeout=25)
    assert seen == ["ADDED"]

    kc = get_credentials(az, tmp_path)
    kubectl(kubectl_bin, kc, "apply", "-f", str(DOCS_DEPLOYMENT))
    until(lambda: "Running" in kubectl(kubectl_bin, kc, "get", "pods", "-l", "app=aci-helloworld").stdout)
    on_node = kubectl(kubectl_bin, kc, "get", "pods", "-A", "--field-selector",
                      "spec.nodeName=virtual-node-aci-linux", "-o", "name").stdout.split()
    assert len(on_node) == 1 and on_node[0].startswith("pod/aci-helloworld-")
    connectors = kubectl(kubectl_bin, kc, "get", "pods", "-A", "-l", "app=aci-connector-linux",
                         "-o", "name").stdout.split()
    assert len(connectors) == 1 and connectors[0].startswith("pod/aci-connector-linux-")
    total = len(kubectl(kubectl_bin, kc, "get", "pods", "-A", "-o", "name").stdout.split())
    assert total > 2 + 3          # the selectors really filtered on the server


def test_fault_429_on_cluster_put_is_retried_by_the_sdk(az, sim):
    az("network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", "demo-vnet", "-n", "vn",
       "--address-prefixes", "10.241.0.0/16")
    sim.admin("POST", "/_admin/faults", {"method": "PUT", "path": "/managedClusters/aks-demo$", "status": 429,
                                         "code": "TooManyRequests", "message": "throttled", "retry_after": 1,
                                         "times": 1})
    sim.reset_logs()
    az("aks", "enable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node", "--subnet-name", "vn")
    puts = [e for e in sim.requests() if e["method"] == "PUT" and e["path"].lower().endswith("/aks-demo")]
    assert [e["status"] for e in puts] == [429, 200]
    assert az("aks", "show", "-g", RG, "-n", NAME, "--query", "addonProfiles.aciConnectorLinux.enabled").json()


def test_role_assignment_table_resolves_principal_names_through_graph(az, sim):
    az("network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", "demo-vnet", "-n", "vn",
       "--address-prefixes", "10.241.0.0/16")
    az("aks", "enable-addons", "-g", RG, "-n", NAME, "--addons", "virtual-node", "--subnet-name", "vn")
    client_id = az("aks", "show", "-g", RG, "-n", NAME, "--query",
                   "addonProfiles.aciConnectorLinux.identity.clientId", "-o", "tsv").stdout.strip()
    table = az("role", "assignment", "list", "--all", "-o", "table").stdout   # crashed without getByIds
    rows = [line.split() for line in table.splitlines() if line.startswith(client_id)]
    scopes = {row[-1].rsplit("/", 2)[-2:][-1] for row in rows if row[1] == "Contributor"}
    assert scopes == {"demo-vnet", NODE_RG}       # the CLI's VNet grant and the RP's node-RG grant
