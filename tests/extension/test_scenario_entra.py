"""Microsoft Entra ID + Azure RBAC + local accounts disabled (aksim/scenarios/entra.yaml), end to end with the real
az, the installed wheel, the real helm and no kubelogin: the extension uses az's own token for the AKS server app."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from aksim.arm.entra import ISSUED_AKS_TOKENS
from aksim.azconfig import CLOUD, az_command
from aksim.scenario import read_raw
from conftest import TOOLS_BIN, Az

RG, NAME = "demo-rg", "aks-demo"
IDS = ["-g", RG, "-n", NAME]
SUB = "00000000-0000-0000-0000-000000000001"
CLUSTER_ID = f"/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.ContainerService/managedClusters/{NAME}"
CALLER = "11111111-1111-1111-1111-111111111111"
CHART = str(Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "virtual-kubelet-azure-aci")
OWNER = {"role": "Owner", "scope": "/subscriptions/{subscription}"}
CLUSTER_SCOPE = f"/subscriptions/{{subscription}}/resourceGroups/{RG}/providers/Microsoft.ContainerService/" \
                f"managedClusters/{NAME}"
ADMIN_ROLE, READER_ROLE = "Azure Kubernetes Service RBAC Admin", "Azure Kubernetes Service RBAC Reader"


def entra_with(roles: list[dict] | None = None, addon: bool = False) -> dict:
    """entra.yaml, optionally with other caller roles and the add-on already on (subnet delegated, role granted)."""
    raw = read_raw("entra")
    if roles is not None:
        raw["caller"] = {**raw["caller"], "roles": roles}
    if addon:
        raw["resource_groups"] = [{"name": RG, "location": "westeurope", "vnets": [{
            "name": "demo-vnet", "address_prefixes": ["10.0.0.0/8"], "subnets": [
                {"name": "aks-subnet", "prefix": "10.240.0.0/16"},
                {"name": "virtual-node-aci", "prefix": "10.241.0.0/16",
                 "delegation": "Microsoft.ContainerInstance/containerGroups"}]}]}]
        subnet = f"/subscriptions/{{subscription}}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/" \
                 "demo-vnet/subnets/virtual-node-aci"
        raw["clusters"] = [{**raw["clusters"][0], "addon": {"subnet": "virtual-node-aci"}, "role_assignments": [
            {"principal": "addon", "role": "Network Contributor", "scope": subnet}]}]
    return raw


def private_env(tmp_path: Path) -> dict[str, str]:
    """HOME and TMPDIR of our own (to search for leftovers), and a PATH without kubelogin."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p)
    path = f"{TOOLS_BIN}{os.pathsep}{path}"
    assert shutil.which("kubelogin", path=path) is None, "kubelogin must not be on PATH for these tests"
    return {"HOME": str(home), "TMPDIR": str(tmp), "KUBECONFIG": str(home / ".kube" / "config"), "PATH": path}


def assert_no_credentials_on_disk(env: dict[str, str], *dirs: str) -> None:
    tokens = [t for t in ISSUED_AKS_TOKENS]
    assert tokens, "the API server was never called with an Entra ID token"
    assert not (Path(env["HOME"]) / ".kube").exists()
    for directory in (env["HOME"], env["TMPDIR"], *dirs):
        for path in Path(directory).rglob("*"):
            if path.is_file() and path.stat().st_size < 5_000_000:
                text = path.read_text(errors="ignore")
                assert not any(t in text for t in tokens), f"an Entra ID token for the API server is in {path}"
                assert "clusterUser_" not in text, f"a cluster kubeconfig was written to {path}"


def kube_statuses(sim) -> set[str]:
    """The HTTP statuses the API server answered (401: a token rejected, 403: a request denied)."""
    return {e["status"] for e in sim.requests("kube")}


# -- acceptance 1: Cluster Admin, add-on and chart modes ---------------------------------------------------------
@pytest.mark.scenario("entra")
def test_addon_mode_end_to_end_with_entra_token_and_no_kubelogin(vn, sim, tmp_path):
    env = private_env(tmp_path)
    ISSUED_AKS_TOKENS.clear()
    st = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120", env=env).json()
    assert st["healthy"] is True, st["problems"]
    assert st["node"]["ready"] and st["connector"]["pods"][0]["ready"]
    assert 401 not in kube_statuses(sim) and 403 not in kube_statuses(sim)
    # the API server took only Entra ID tokens: the static user token is not even handed out
    assert any(e["path"].endswith("/listClusterUserCredential") for e in sim.requests())
    assert not any(e["path"].endswith("/listClusterAdminCredential") for e in sim.requests())

    vn("aks", "virtual-node", "wait", *IDS, "--ready", "--timeout", "60", env=env)
    again = vn("aks", "virtual-node", "status", *IDS, env=env).json()
    assert again["healthy"] is True and again["mode"] == "addon"

    out = vn("aks", "virtual-node", "disable", *IDS, "--yes", "--timeout", "120", env=env).json()
    assert out["addonDisabled"] and out["nodeRemoved"]
    vn("aks", "virtual-node", "wait", *IDS, "--deleted", "--timeout", "60", env=env)
    assert 401 not in kube_statuses(sim) and 403 not in kube_statuses(sim)
    assert_no_credentials_on_disk(env, vn.env["AZURE_CONFIG_DIR"])


@pytest.mark.scenario("entra")
def test_chart_mode_end_to_end_helm_gets_a_static_token(vn, sim, tmp_path):
    env = private_env(tmp_path)
    ISSUED_AKS_TOKENS.clear()
    chart = ["--mode", "chart", "--chart", CHART]
    st = vn("aks", "virtual-node", "enable", *IDS, *chart, "--timeout", "120", env=env).json()
    assert st["healthy"] is True, st["problems"]
    assert st["mode"] == "chart" and st["chart"]["release"] == "virtual-node"
    assert 401 not in kube_statuses(sim) and 403 not in kube_statuses(sim)    # helm's requests included
    vn("aks", "virtual-node", "wait", *IDS, "--ready", "--timeout", "60", env=env)
    assert vn("aks", "virtual-node", "status", *IDS, env=env).json()["healthy"] is True
    out = vn("aks", "virtual-node", "disable", *IDS, "--yes", "--timeout", "120", env=env).json()
    assert out["mode"] == "chart" and out["chartUninstalled"] and out["nodeRemoved"]
    assert sim.cluster().store.get("namespaces", None, "vk-azure-aci") is None
    assert not list(Path(env["TMPDIR"]).glob("azvn-helm-*"))
    assert_no_credentials_on_disk(env, vn.env["AZURE_CONFIG_DIR"])


# -- acceptance 2: no AKS RBAC role ------------------------------------------------------------------------------
@pytest.mark.scenario(entra_with(roles=[OWNER], addon=True))
def test_no_aks_role_status_reports_azure_part_and_cluster_access_denied(vn, sim):
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert st["mode"] == "addon" and st["healthy"] is False
    assert st["subnet"]["exists"] and st["subnet"]["delegated"] and st["roleAssignment"]["present"]
    assert st["identity"]["objectId"]
    denied = [p for p in st["problems"] if p["code"] == "ClusterAccessDenied"]
    assert len(denied) == 1, st["problems"]
    assert CALLER in denied[0]["message"] and "'get nodes'" in denied[0]["message"]
    assert (f'az role assignment create --assignee {CALLER} --role "{ADMIN_ROLE}" --scope {CLUSTER_ID}'
            in denied[0]["hint"])
    assert not {"NodeNotRegistered", "ConnectorMissing", "ClusterUnreachable"} & {p["code"] for p in st["problems"]}


@pytest.mark.scenario(entra_with(roles=[OWNER]))
def test_no_aks_role_enable_refuses_before_any_write(vn, sim):
    sim.reset_logs()
    res = vn("aks", "virtual-node", "enable", *IDS, check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"You ('{CALLER}') lack rights on the Kubernetes API of cluster '{NAME}'" in res.stderr
    assert "get nodes (Microsoft.ContainerService/managedClusters/nodes/read)" in res.stderr
    assert f'az role assignment create --assignee {CALLER} --role "{ADMIN_ROLE}" --scope {CLUSTER_ID}' in res.stderr
    assert sim.writes() == [] and sim.writes("kube") == []
    chart = vn("aks", "virtual-node", "enable", *IDS, "--mode", "chart", "--chart", CHART, check=False)
    assert chart.returncode == 1 and '--role "Azure Kubernetes Service RBAC Cluster Admin"' in chart.stderr
    assert "create namespaces" in chart.stderr and sim.writes() == []


# -- acceptance 3: RBAC Reader only ------------------------------------------------------------------------------
@pytest.mark.scenario(entra_with(roles=[OWNER, {"role": READER_ROLE, "scope": CLUSTER_SCOPE}], addon=True))
def test_reader_status_works_enable_refuses_before_writing(vn, sim):
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert st["mode"] == "addon"
    # Reader reads pods and events: the connector and the workload are reported ...
    assert st["connector"]["pods"] and st["connector"]["pods"][0]["ready"] is True
    assert st["workload"] is not None
    # ... but not nodes or leases (Azure/AKS#3336): that part is a ClusterAccessDenied naming the role
    denied = [p for p in st["problems"] if p["code"] == "ClusterAccessDenied"]
    assert len(denied) == 1 and "'get nodes'" in denied[0]["message"] and "'list pods'" not in denied[0]["message"]
    assert f'--role "{ADMIN_ROLE}"' in denied[0]["hint"]
    assert not {"NodeNotRegistered", "ConnectorMissing"} & {p["code"] for p in st["problems"]}

    sim.reset_logs()
    res = vn("aks", "virtual-node", "disable", *IDS, "--yes", check=False)
    assert res.returncode == 1 and "get nodes" in res.stderr and "list pods" not in res.stderr
    assert sim.writes() == [] and sim.writes("kube") == []


@pytest.mark.scenario(entra_with(roles=[OWNER, {"role": READER_ROLE, "scope": CLUSTER_SCOPE}]))
def test_reader_enable_refuses_before_writing(vn, sim):
    sim.reset_logs()
    res = vn("aks", "virtual-node", "enable", *IDS, check=False)
    assert res.returncode == 1 and "lack rights on the Kubernetes API" in res.stderr
    assert "list secrets" in res.stderr and f'--role "{ADMIN_ROLE}"' in res.stderr
    assert sim.writes() == [] and sim.writes("kube") == []


# -- acceptance 4: service-principal and managed-identity logins ------------------------------------------------
def az_sp_login(sim, extension_env: dict[str, str], config_dir: Path, secret: str) -> tuple[Az, str]:
    """A fresh az config dir: the simulator registered as the cloud, then 'az login --service-principal' against
    the simulator's token endpoint; returns the az and the login's stderr (empty on success)."""
    env = {**extension_env, "AZURE_CONFIG_DIR": str(config_dir)}
    steps = [["cloud", "register", "-n", CLOUD, "--endpoint-resource-manager", sim.arm_url + "/",
              "--endpoint-active-directory", sim.arm_url,
              "--endpoint-active-directory-resource-id", "https://management.core.windows.net/",
              "--endpoint-active-directory-graph-resource-id", sim.arm_url + "/",
              "--endpoint-microsoft-graph-resource-id", sim.arm_url + "/", "--skip-endpoint-discovery"],
             ["cloud", "set", "-n", CLOUD]]
    for args in steps:
        proc = subprocess.run(az_command() + args, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
    client_id = read_raw("entra")["caller"]["clientId"]
    login = subprocess.run(az_command() + ["login", "--service-principal", "-u", client_id, "-p", secret, "--tenant",
                                           sim.scenario.tenant_id, "--output", "none"],
                           env=env, capture_output=True, text=True, timeout=120, check=False)
    return Az(env), "" if login.returncode == 0 else login.stderr or "failed"


@pytest.mark.scenario(entra_with(addon=True))
def test_service_principal_login_works(vn, sim, tmp_path):
    az, err = az_sp_login(sim, vn.env, tmp_path / "azure-sp", read_raw("entra")["caller"]["secret"])
    assert err == ""
    assert az("account", "show").json()["user"] == {"name": read_raw("entra")["caller"]["clientId"],
                                                    "type": "servicePrincipal"}
    sim.reset_logs()
    ISSUED_AKS_TOKENS.clear()
    st = az("aks", "virtual-node", "status", *IDS).json()
    assert st["healthy"] is True, st["problems"]
    # the token came from the client-credentials endpoint, for the AKS server app, and was accepted
    assert any(e["method"] == "POST" and e["path"].endswith("/oauth2/v2.0/token") for e in sim.requests())
    assert ISSUED_AKS_TOKENS and {e["status"] for e in sim.requests("kube")} <= {200, 201}

    _, bad = az_sp_login(sim, vn.env, tmp_path / "azure-bad", "wrong-secret")
    assert "AADSTS7000215" in bad


@pytest.mark.scenario(entra_with(addon=True))
def test_managed_identity_login_works(vn, sim):
    assert vn("account", "show").json()["user"]["assignedIdentityInfo"] == "MSI"
    sim.reset_logs()
    ISSUED_AKS_TOKENS.clear()
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert st["healthy"] is True, st["problems"]
    assert not any(e["path"].endswith("/oauth2/v2.0/token") for e in sim.requests())   # the MSI endpoint issued it
    assert ISSUED_AKS_TOKENS and {e["status"] for e in sim.requests("kube")} <= {200, 201}


@pytest.mark.scenario("entra")
def test_token_is_refreshed_when_a_wait_outlives_it(vn, sim):
    # tokens live 4 s; the connector takes 7 s to start, so enable's node wait outlives the first token
    sim.admin("POST", "/_admin/timings", {"token_lifetime": 4, "connector_start": 7})
    ISSUED_AKS_TOKENS.clear()
    st = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120").json()
    assert st["healthy"] is True, st["problems"]
    assert len(set(ISSUED_AKS_TOKENS)) >= 2      # the first expired during the node wait; a fresh one was used
    assert 401 not in kube_statuses(sim)


@pytest.mark.scenario({**entra_with(addon=True), "faults": [
    {"endpoint": "kube", "method": "*", "path": "^/api", "status": 401, "code": "Unauthorized",
     "message": "Unauthorized", "times": -1}]})
def test_rejected_token_is_cluster_access_denied_with_the_azure_part(vn, sim):
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert st["mode"] == "addon" and st["subnet"]["exists"] and st["roleAssignment"]["present"]
    denied = [p for p in st["problems"] if p["code"] == "ClusterAccessDenied"]
    assert len(denied) == 1 and "401 Unauthorized" in denied[0]["message"] and CALLER in denied[0]["message"]
    assert "ClusterUnreachable" not in {p["code"] for p in st["problems"]}


def kubernetes_rbac() -> dict:
    raw = read_raw("entra")
    raw["clusters"] = [{**raw["clusters"][0], "aad_profile": {"managed": True, "enableAzureRBAC": False}}]
    return raw


@pytest.mark.scenario(kubernetes_rbac())
def test_kubernetes_rbac_cluster_is_checked_with_self_subject_access_reviews(vn, sim):
    sim.reset_logs()
    res = vn("aks", "virtual-node", "enable", *IDS, check=False)
    assert res.returncode == 1 and "lack rights on the Kubernetes API" in res.stderr
    assert f"kubectl create clusterrolebinding virtual-node-admin --clusterrole cluster-admin --user {CALLER}" \
        in res.stderr
    assert sim.writes() == [] and sim.writes("kube") == []
    assert any(e["path"] == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" for e in sim.requests("kube"))

    # a cluster admin binds the caller's object ID: now enable goes through
    store = sim.cluster().store
    store.create("clusterroles.rbac.authorization.k8s.io", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cluster-admin"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})
    store.create("clusterrolebindings.rbac.authorization.k8s.io", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "virtual-node-admin"}, "subjects": [{"kind": "User", "name": CALLER}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}})
    st = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120").json()
    assert st["healthy"] is True, st["problems"]


ADMINS = "aaaaaaaa-0000-4000-8000-0000000000ad"


def admin_group_member() -> dict:
    raw = entra_with(roles=[OWNER])
    raw["caller"]["groups"] = [ADMINS]
    raw["clusters"][0]["aad_profile"] = {"managed": True, "enableAzureRBAC": True, "adminGroupObjectIDs": [ADMINS]}
    return raw


@pytest.mark.scenario(admin_group_member())
def test_admin_group_member_without_azure_data_role_is_not_refused(vn, sim):
    # the permissions API shows no dataActions, but the API server (SelfSubjectAccessReview) allows the admin group
    st = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120").json()
    assert st["healthy"] is True, st["problems"]
    assert any(e["path"].endswith("/selfsubjectaccessreviews") for e in sim.requests("kube"))
