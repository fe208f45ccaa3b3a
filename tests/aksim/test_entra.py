"""aksim's Entra ID clusters, checked with the real az and the real kubectl (no kubelogin): the exec-plugin
kubeconfig, local accounts disabled, which tokens the API server takes, Azure RBAC denials in the real shape,
Kubernetes RBAC, SelfSubjectAccessReview, the permissions API's dataActions, the client-credentials endpoint."""
from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from aksim.arm.entra import AKS_CLIENT_APP, AKS_SERVER_APP, make_token
from aksim.scenario import read_raw

RG, NAME = "demo-rg", "aks-demo"
IDS = ["-g", RG, "-n", NAME]
TENANT = "72f988bf-0000-0000-0000-000000000001"
CALLER = "11111111-1111-1111-1111-111111111111"
DENY = "User does not have access to the resource in Azure. Update role assignment to allow access."
CLUSTER_SCOPE = f"/subscriptions/{{subscription}}/resourceGroups/{RG}/providers/Microsoft.ContainerService/" \
                f"managedClusters/{NAME}"


def entra_with(**cluster_changes: Any) -> dict:
    raw = read_raw("entra")
    raw["clusters"] = [{**raw["clusters"][0], **cluster_changes}]
    return raw


def call(sim, path: str, token: str | None, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    cluster = sim.cluster()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(cluster.kube_url + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    ctx = ssl.create_default_context(cafile=str(sim.tls.ca_path))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def kubectl_as(kubectl_bin: str, sim, token: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The real kubectl with a bearer token (what kubelogin would hand it), no kubeconfig of its own."""
    empty = tmp_path / "empty-kubeconfig"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    return subprocess.run([kubectl_bin, "--kubeconfig", str(empty), "--server", sim.cluster().kube_url,
                           "--certificate-authority", str(sim.tls.ca_path), "--token", token, *args],
                          capture_output=True, text=True, timeout=60, check=False)


def aks_token(oid: str = CALLER, **overrides: Any) -> str:
    return make_token(overrides.get("tenant", TENANT), oid, overrides.get("aud", AKS_SERVER_APP))[0]


@pytest.mark.scenario("entra")
def test_get_credentials_returns_the_kubelogin_exec_kubeconfig_and_kubectl_needs_kubelogin(
        az, sim, tmp_path, kubectl_bin):
    path = tmp_path / "kubeconfig"
    az("aks", "get-credentials", *IDS, "--file", str(path))
    config = yaml.safe_load(path.read_text())
    assert config["current-context"] == NAME
    user = config["users"][0]
    assert user["name"] == f"clusterUser_{RG}_{NAME}"
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "kubelogin" and exec_["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert exec_["args"] == ["get-token", "--environment", "AzurePublicCloud", "--server-id", AKS_SERVER_APP,
                             "--client-id", AKS_CLIENT_APP, "--tenant-id", TENANT, "--login", "devicecode"]
    assert "kubelogin is not installed" in exec_["installHint"] and exec_["provideClusterInfo"] is False
    assert "token" not in user["user"]

    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    assert shutil.which("kubelogin", path=env["PATH"]) is None
    proc = subprocess.run([kubectl_bin, "--kubeconfig", str(path), "get", "nodes"], capture_output=True, text=True,
                          timeout=60, env=env, check=False)
    assert proc.returncode != 0 and "kubelogin is not installed" in proc.stderr

    # the deprecated 'azure' format: an auth-provider entry
    azure = tmp_path / "azure"
    az("aks", "get-credentials", *IDS, "--file", str(azure), "--format", "azure")
    provider = yaml.safe_load(azure.read_text())["users"][0]["user"]["auth-provider"]
    assert provider["name"] == "azure" and provider["config"]["apiserver-id"] == AKS_SERVER_APP


@pytest.mark.scenario("entra")
def test_local_accounts_disabled_refuses_the_admin_credential(az, sim, tmp_path):
    res = az("aks", "get-credentials", *IDS, "--admin", "--file", str(tmp_path / "kc"), check=False)
    assert res.returncode == 1
    assert "Getting static credential is not allowed because this cluster is set to disable local accounts." \
        in res.stderr
    # the static tokens a non-Entra cluster would take are refused
    cluster = sim.cluster()
    assert call(sim, "/api/v1/nodes", cluster.user_token)[0] == 401
    assert call(sim, "/api/v1/nodes", cluster.admin_token)[0] == 401


@pytest.mark.scenario(entra_with(disable_local_accounts=False))
def test_admin_credential_works_while_local_accounts_are_enabled(az, sim, tmp_path, kubectl_bin):
    path = tmp_path / "kc"
    az("aks", "get-credentials", *IDS, "--admin", "--file", str(path))
    proc = subprocess.run([kubectl_bin, "--kubeconfig", str(path), "get", "nodes", "-o", "name"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.count("node/") == 3


@pytest.mark.scenario("entra")
def test_only_tokens_of_the_tenant_for_the_aks_server_app_are_accepted(az, sim, kubectl_bin, tmp_path):
    unauthorized = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    assert call(sim, "/api/v1/nodes", aks_token())[0] == 200
    assert call(sim, "/api/v1/nodes", None) == (401, unauthorized)
    assert call(sim, "/api/v1/nodes", aks_token(aud="https://management.core.windows.net/")) == (401, unauthorized)
    assert call(sim, "/api/v1/nodes", aks_token(aud=f"spn:{AKS_SERVER_APP}"))[0] == 401
    assert call(sim, "/api/v1/nodes", aks_token(tenant="00000000-0000-0000-0000-00000000dead"))[0] == 401
    assert call(sim, "/api/v1/nodes", aks_token(oid="99999999-9999-9999-9999-999999999999"))[0] == 401
    header, body, _ = aks_token().split(".")
    assert call(sim, "/api/v1/nodes", f"{header}.{body}.forged")[0] == 401
    assert call(sim, "/version", None)[0] == 200

    # what kubelogin's azurecli mode does: az's own token for the server app, handed to the real kubectl
    token = az("account", "get-access-token", "--resource", AKS_SERVER_APP).json()["accessToken"]
    assert call(sim, "/api/v1/nodes", token)[0] == 200
    proc = kubectl_as(kubectl_bin, sim, token, tmp_path, "get", "nodes", "-o", "name")
    assert proc.returncode == 0 and proc.stdout.count("node/") == 3
    bad = kubectl_as(kubectl_bin, sim, "nope", tmp_path, "get", "nodes")
    assert "error: You must be logged in to the server (Unauthorized)" in bad.stderr


@pytest.mark.scenario(entra_with())
def test_azure_rbac_denials_have_the_real_shape_and_namespace_scopes_count(sim, kubectl_bin, tmp_path):
    from aksim.arm import authorization
    stranger = sim.world.add_principal(name="stranger", backdate=True).object_id
    token = aks_token(stranger)
    status, body = call(sim, "/api/v1/nodes", token)
    assert status == 403 and body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden",
        "message": f'nodes is forbidden: User "{stranger}" cannot list resource "nodes" in API group "" at the '
                   f"cluster scope: {DENY}", "details": {"kind": "nodes"}, "code": 403}
    status, body = call(sim, "/apis/apps/v1/namespaces/dev/deployments/web", token)
    assert status == 403 and body["message"] == (
        f'deployments.apps "web" is forbidden: User "{stranger}" cannot get resource "deployments" in API group '
        f'"apps" in the namespace "dev": {DENY}')
    assert body["details"] == {"kind": "deployments", "group": "apps", "name": "web"}

    # RBAC Reader on one namespace: pods there, not elsewhere, never nodes or secrets
    sub = sim.scenario.subscription_id
    with sim.lock:
        authorization.assign(sim.world, CLUSTER_SCOPE.replace("{subscription}", sub) + "/namespaces/kube-system",
                             "Azure Kubernetes Service RBAC Reader", stranger)
    assert call(sim, "/api/v1/namespaces/kube-system/pods", token)[0] == 200
    assert call(sim, "/api/v1/namespaces/default/pods", token)[0] == 403
    assert call(sim, "/api/v1/namespaces/kube-system/secrets", token)[0] == 403
    proc = kubectl_as(kubectl_bin, sim, token, tmp_path, "get", "nodes")
    assert proc.returncode == 1
    assert f'Error from server (Forbidden): nodes is forbidden: User "{stranger}" cannot list resource "nodes"' \
        in proc.stderr


@pytest.mark.scenario("entra")
def test_self_subject_access_review_reflects_azure_rbac(sim, kubectl_bin, tmp_path):
    def review(token: str, **attrs: str) -> dict:
        status, body = call(sim, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", token, "POST",
                            {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                             "spec": {"resourceAttributes": attrs}})
        assert status == 201 and body["spec"]["resourceAttributes"] == attrs
        return body["status"]

    assert review(aks_token(), verb="delete", resource="namespaces") == {"allowed": True}
    stranger = sim.world.add_principal(name="stranger", backdate=True).object_id
    assert review(aks_token(stranger), verb="list", resource="pods", namespace="dev", group="") == {
        "allowed": False, "denied": True, "reason": DENY}
    proc = kubectl_as(kubectl_bin, sim, aks_token(stranger), tmp_path, "auth", "can-i", "list", "pods", "-n", "dev")
    assert proc.stdout.strip() == f"no - {DENY}"


@pytest.mark.scenario(entra_with(aad_profile={"managed": True, "enableAzureRBAC": False,
                                              "adminGroupObjectIDs": ["aaaaaaaa-0000-0000-0000-0000000000ad"]}))
def test_kubernetes_rbac_mode_admin_group_and_bindings(sim):
    from aksim.arm.entra import sign
    import time
    user = sim.world.add_principal(name="dev", backdate=True).object_id
    token = aks_token(user)
    assert call(sim, "/api/v1/namespaces/default/pods", token)[0] == 403      # Azure roles do not count here
    now = int(time.time())
    admin = sign({"aud": AKS_SERVER_APP, "iss": f"https://sts.windows.net/{TENANT}/", "tid": TENANT, "oid": user,
                  "exp": now + 600, "nbf": now, "groups": ["aaaaaaaa-0000-0000-0000-0000000000ad"]})
    assert call(sim, "/api/v1/nodes", admin)[0] == 200
    store = sim.cluster().store
    store.create("clusterroles.rbac.authorization.k8s.io", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
    store.create("rolebindings.rbac.authorization.k8s.io", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "dev-pods", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
        "subjects": [{"kind": "User", "name": user}]})
    assert call(sim, "/api/v1/namespaces/default/pods", token)[0] == 200
    status, body = call(sim, "/api/v1/namespaces/kube-system/pods", token)
    assert status == 403 and body["message"].endswith('in API group "" in the namespace "kube-system"')


@pytest.mark.scenario("entra")
def test_permissions_api_lists_data_actions_of_the_aks_rbac_roles(az, sim):
    scope = CLUSTER_SCOPE.replace("{subscription}", sim.scenario.subscription_id)
    perms = az("rest", "--url", f"{sim.arm_url}{scope}/providers/Microsoft.Authorization/permissions"
               "?api-version=2022-04-01").json()["value"]
    assert {"dataActions": ["Microsoft.ContainerService/managedClusters/*"], "notDataActions": []}.items() <= \
        next(p for p in perms if p["dataActions"]).items()
    reader = az("role", "definition", "list", "--name", "Azure Kubernetes Service RBAC Reader").json()[0]
    data = reader["permissions"][0]["dataActions"]
    assert "Microsoft.ContainerService/managedClusters/pods/read" in data
    assert not [a for a in data if "/nodes/" in a and "metrics" not in a or "secrets" in a]


@pytest.mark.scenario("entra")
def test_token_endpoint_errors_are_aadsts(sim):
    def post(tenant: str, **form: str) -> tuple[int, dict]:
        req = urllib.request.Request(f"{sim.arm_url}/{tenant}/oauth2/v2.0/token", method="POST",
                                     data=urllib.parse.urlencode(form).encode())
        ctx = ssl.create_default_context(cafile=str(sim.tls.ca_path))
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    caller = read_raw("entra")["caller"]
    ok = post(TENANT, grant_type="client_credentials", client_id=caller["clientId"], client_secret=caller["secret"],
              scope=f"{AKS_SERVER_APP}/.default")
    assert ok[0] == 200 and ok[1]["token_type"] == "Bearer"
    assert call(sim, "/api/v1/nodes", ok[1]["access_token"])[0] == 200
    status, body = post(TENANT, grant_type="client_credentials", client_id="unknown", client_secret="x",
                        scope=f"{AKS_SERVER_APP}/.default")
    assert status == 400 and body["error"] == "unauthorized_client" and "AADSTS700016" in body["error_description"]
    status, body = post("11111111-2222-3333-4444-555555555555", grant_type="client_credentials")
    assert status == 400 and "AADSTS90002" in body["error_description"]
    status, body = post(TENANT, grant_type="client_credentials", client_id=caller["clientId"], client_secret="bad",
                        scope=f"{AKS_SERVER_APP}/.default")
    assert status == 401 and body["error"] == "invalid_client"


@pytest.mark.scenario({**read_raw("entra"), "caller": {**read_raw("entra")["caller"], "roles": [
    {"role": "Reader", "scope": "/subscriptions/{subscription}"},
    {"role": "Azure Kubernetes Service RBAC Reader", "scope": CLUSTER_SCOPE}]}})
def test_listing_the_user_credential_needs_its_action(az, sim, tmp_path):
    res = az("aks", "get-credentials", *IDS, "--file", str(tmp_path / "kc"), check=False)
    assert res.returncode == 1 and "AuthorizationFailed" in res.stderr
    assert "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action" in res.stderr
    from aksim.arm import authorization
    with sim.lock:
        authorization.assign(sim.world, CLUSTER_SCOPE.replace("{subscription}", sim.scenario.subscription_id),
                             "Azure Kubernetes Service Cluster User Role", CALLER)
    az("aks", "get-credentials", *IDS, "--file", str(tmp_path / "kc"))
