"""Entra ID credentials and Kubernetes-API rights, as pure functions (no Azure, no cluster)."""
from types import SimpleNamespace

from azext_virtualnode import credentials
from azext_virtualnode.access import (ADMIN, CLUSTER_ADMIN, CHART_WRITES, READER, READS, WRITER, Denial, Need,
                                      authorization_mode, least_role, missing_data_actions)
from azext_virtualnode.credentials import AKS_SERVER_ID, EntraToken, entra_login, with_token

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
EXEC_USER = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin",
                      "args": ["get-token", "--environment", "AzurePublicCloud", "--server-id", AKS_SERVER_ID,
                               "--client-id", "80faf920-1908-4b52-b5ef-a8e7bedfc67a", "--tenant-id", TENANT,
                               "--login", "devicecode"]}}


def kubeconfig(user):
    return {"current-context": "c", "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [{"name": "c", "cluster": {"server": "https://x"}}], "users": [{"name": "u", "user": user}]}


def test_kubelogin_exec_user_and_azure_auth_provider_are_recognised():
    login = entra_login(EXEC_USER)
    assert login == credentials.EntraLogin(AKS_SERVER_ID, TENANT, "AzurePublicCloud", "devicecode")
    other = {"exec": {"command": "/usr/local/bin/kubelogin",
                      "args": ["get-token", "--server-id=abc", "-l", "azurecli"]}}
    assert entra_login(other).server_id == "abc" and entra_login(other).login == "azurecli"
    provider = {"auth-provider": {"name": "azure", "config": {"apiserver-id": AKS_SERVER_ID, "tenant-id": TENANT}}}
    assert entra_login(provider).tenant_id == TENANT
    assert entra_login({"token": "t"}) is None
    assert entra_login({"exec": {"command": "aws", "args": ["eks", "get-token"]}}) is None


def test_with_token_replaces_only_the_current_user_in_a_copy():
    config = kubeconfig(EXEC_USER)
    resolved = with_token(config, "TOKEN")
    assert resolved["users"][0]["user"] == {"token": "TOKEN"}
    assert config["users"][0]["user"] == EXEC_USER


def test_token_is_refetched_before_it_expires(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(credentials.time, "time", lambda: clock[0])
    issued = []

    def fetch(self):
        issued.append(f"t{len(issued)}")
        return issued[-1], clock[0] + 3600

    monkeypatch.setattr(EntraToken, "_fetch", fetch)
    token = EntraToken(None, entra_login(EXEC_USER))
    assert token.get() == "t0" and token.get() == "t0"
    clock[0] += 3600 - credentials.REFRESH_MARGIN + 1          # inside the margin: a new one
    config = SimpleNamespace(api_key={})
    token.refresh_hook(config)
    assert config.api_key["authorization"] == "Bearer t1" and len(issued) == 2


def test_denials_are_parsed_from_the_api_servers_message():
    msg = ('nodes "x" is forbidden: User "oid-1" cannot get resource "nodes" in API group "" at the cluster scope: '
           "User does not have access to the resource in Azure. Update role assignment to allow access.")
    d = Denial.of(403, msg)
    assert d.user == "oid-1" and d.need == Need("get", "nodes") and d.namespace is None
    assert d.reason.startswith("User does not have access")
    ns = Denial.of(403, 'leases.coordination.k8s.io "n" is forbidden: User "u@contoso.com" cannot get resource '
                        '"leases" in API group "coordination.k8s.io" in the namespace "kube-node-lease"')
    assert ns.need.action == "Microsoft.ContainerService/managedClusters/coordination.k8s.io/leases/read"
    assert ns.namespace == "kube-node-lease" and ns.reason is None
    assert Denial.of(401, "Unauthorized").need is None


def test_least_builtin_role_per_command():
    assert least_role([Need("list", "pods").action]) == READER
    assert least_role([Need("list", "secrets").action]) == WRITER
    assert least_role(n.action for n in READS) == ADMIN
    assert least_role(n.action for n in READS + CHART_WRITES) == CLUSTER_ADMIN


def test_missing_data_actions_from_the_permissions_api():
    admin = [{"actions": [], "dataActions": ["Microsoft.ContainerService/managedClusters/*"],
              "notDataActions": ["Microsoft.ContainerService/managedClusters/namespaces/write",
                                 "Microsoft.ContainerService/managedClusters/namespaces/delete"]}]
    assert missing_data_actions(admin, READS) == []
    assert [str(n) for n in missing_data_actions(admin, CHART_WRITES)] == ["create namespaces", "delete namespaces"]
    assert missing_data_actions([{"actions": ["*"]}], READS) == list(READS)      # Owner has no dataActions


def test_authorization_mode():
    aad = SimpleNamespace(managed=True, enable_azure_rbac=True)
    assert authorization_mode(SimpleNamespace(aad_profile=aad)) == "azure"
    assert authorization_mode(SimpleNamespace(aad_profile=SimpleNamespace(managed=True, enable_azure_rbac=False))) \
        == "kubernetes"
    assert authorization_mode(SimpleNamespace(aad_profile=None)) == "local"
