"""Microsoft.ContainerService/managedClusters: GET/PUT (LRO), list, credentials, and the add-on checks AKS does.

A PUT stores the body it was given (plus read-only fields the service owns), answers ``Updating`` with an
async operation, refuses a second PUT with 409 ``OperationNotAllowed`` while the first runs, and when the
operation completes hands the cluster to the control plane (``aksim.controlplane``), which makes the
Kubernetes side follow (connector Deployment, node, ...).
"""
from __future__ import annotations

import base64
import copy
from typing import TYPE_CHECKING, Any

import yaml

from aksim.arm import identity
from aksim.arm.common import (check_preconditions, etag_header, new_etag, ok_list, parent_id, require_api_version,
                              split_rg, utcnow)
from aksim.arm.provider import ProviderApi
from aksim.arm.resources import require_resource_group
from aksim.httpcore import HttpError, Request, Response

if TYPE_CHECKING:
    from aksim.context import SimContext
    from aksim.world import Cluster, World

MC_TYPE = "Microsoft.ContainerService/ManagedClusters"
ADDON = "aciConnectorLinux"
SUBNET_TYPE = "Microsoft.Network/virtualNetworks/subnets"
BASE = "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ContainerService/managedClusters"


def rp_error(status: int, code: str, message: str, target: str | None = None) -> HttpError:
    """An error of the AKS resource provider itself: sent unwrapped (no ``{"error": ...}``), as AKS does."""
    return HttpError(status, code, message, unwrapped=True, target=target)


# Fields owned by the service: a PUT body cannot change them; they are carried over from the stored cluster.
READ_ONLY_PROPS = ("provisioningState", "powerState", "fqdn", "azurePortalFQDN", "currentKubernetesVersion",
                   "nodeResourceGroup", "identityProfile", "maxAgentPools")


def addon_key(profiles: dict[str, Any] | None) -> str | None:
    """The add-on key as stored, matched case-insensitively (the CLI does the same)."""
    for key in profiles or {}:
        if key.lower() == ADDON.lower():
            return key
    return None


def addon_profile(mc: dict[str, Any]) -> dict[str, Any] | None:
    profiles = mc["properties"].get("addonProfiles") or {}
    key = addon_key(profiles)
    return profiles[key] if key else None


def addon_enabled(mc: dict[str, Any]) -> bool:
    profile = addon_profile(mc)
    return bool(profile and profile.get("enabled"))


def agent_pool_vnet_id(mc: dict[str, Any], world: "World") -> str | None:
    """The VNet of the first agent pool: the custom one, or the managed ``aks-vnet-*`` in the node RG."""
    pools = mc["properties"].get("agentPoolProfiles") or []
    subnet = pools[0].get("vnetSubnetID") if pools else None
    if subnet:
        return parent_id(subnet)
    cluster = world.cluster_by_id(mc["id"])
    return cluster.extra.get("managed_vnet_id") if cluster else None


def is_msi(mc: dict[str, Any]) -> bool:
    return (mc["properties"].get("servicePrincipalProfile") or {}).get("clientId", "msi") == "msi"


def kubeconfig(cluster: "Cluster", ca_b64: str, admin: bool, aad_tenant: str | None = None,
               fmt: str = "exec") -> str:
    """The kubeconfig AKS returns; ``aad_tenant`` set (an Entra ID cluster) makes the clusterUser an
    ``exec`` kubelogin user (``fmt='exec'``, the default since k8s 1.24) or an ``auth-provider: azure`` one."""
    user = f"clusterAdmin_{cluster.resource_group}_{cluster.name}" if admin else \
        f"clusterUser_{cluster.resource_group}_{cluster.name}"
    token = cluster.admin_token if admin else cluster.user_token
    context = f"{cluster.name}-admin" if admin else cluster.name
    credential: dict[str, Any] = {"token": token}
    if aad_tenant and not admin:
        credential = entra_user(aad_tenant, fmt)
    doc = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": context,
           "clusters": [{"name": cluster.name,
                         "cluster": {"certificate-authority-data": ca_b64, "server": cluster.kube_url}}],
           "contexts": [{"name": context, "context": {"cluster": cluster.name, "user": user}}],
           "users": [{"name": user, "user": credential}]}
    return yaml.safe_dump(doc, sort_keys=False)


KUBELOGIN_HINT = ("\nkubelogin is not installed which is required to connect to AAD enabled cluster.\n\n"
                  "To learn more, please go to https://aka.ms/aks/kubelogin\n")


def entra_user(tenant: str, fmt: str = "exec") -> dict[str, Any]:
    """The clusterUser credential of an Entra ID cluster, as AKS writes it (kubelogin devicecode)."""
    from aksim.arm.entra import AKS_CLIENT_APP, AKS_SERVER_APP
    if fmt == "azure":
        return {"auth-provider": {"name": "azure", "config": {
            "apiserver-id": AKS_SERVER_APP, "client-id": AKS_CLIENT_APP, "config-mode": "1",
            "environment": "AzurePublicCloud", "tenant-id": tenant}}}
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                     "args": ["get-token", "--environment", "AzurePublicCloud", "--server-id", AKS_SERVER_APP,
                              "--client-id", AKS_CLIENT_APP, "--tenant-id", tenant, "--login", "devicecode"],
                     "command": "kubelogin", "env": None, "installHint": KUBELOGIN_HINT,
                     "provideClusterInfo": False}}


class ManagedClusters(ProviderApi):
    def _id(self, req: Request) -> str:
        p = req.params
        return f"/subscriptions/{p['sub']}/resourcegroups/{p['rg']}/providers/Microsoft.ContainerService/" \
               f"managedClusters/{p['name']}"

    def _require(self, req: Request) -> dict[str, Any]:
        require_resource_group(self.world, req.params["sub"], req.params["rg"])
        mc = self.world.arm.get(self._id(req))
        if mc is None:
            raise HttpError(404, "ResourceNotFound",
                            f"The Resource 'Microsoft.ContainerService/managedClusters/{req.params['name']}' "
                            f"under resource group '{req.params['rg']}' was not found. For more details please "
                            "go to https://aka.ms/ARMResourceNotFoundFix")
        return mc

    # -- reads ----------------------------------------------------------------------------------------
    def get(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            mc = self._require(req)
            return Response(200, mc, etag_header(mc))

    def list_rg(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            require_resource_group(self.world, req.params["sub"], req.params["rg"])
            rg = f"/subscriptions/{req.params['sub']}/resourcegroups/{req.params['rg']}/"
            return ok_list([r for r in self.world.arm.of_type(MC_TYPE, rg)])

    def list_sub(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            return ok_list(list(self.world.arm.of_type(MC_TYPE)))

    def credentials(self, admin: bool) -> Any:
        def handler(req: Request) -> Response:
            require_api_version(req)
            with self.sim.lock:
                from aksim.arm import authorization
                action = "listClusterAdminCredential" if admin else "listClusterUserCredential"
                authorization.authorize(self.world, f"Microsoft.ContainerService/managedClusters/{action}/action",
                                        self._id(req))
                mc = self._require(req)
                if admin and mc["properties"].get("disableLocalAccounts"):
                    raise rp_error(400, "BadRequest", "Getting static credential is not allowed because this "
                                   "cluster is set to disable local accounts.")
                cluster = self.world.cluster_by_id(mc["id"])
                assert cluster is not None
                aad = mc["properties"].get("aadProfile") or {}
                fmt = (req.q("format") or "exec").lower()
                if req.q("format") is not None and fmt not in ("azure", "exec"):
                    raise HttpError(400, "InvalidParameter", f"The value of parameter format is invalid: "
                                    f"'{req.q('format')}'. Allowed values: azure, exec.")
                tenant = (aad.get("tenantID") or self.world.scenario.tenant_id) if aad.get("managed") else None
                value = base64.b64encode(kubeconfig(cluster, self.sim.tls.ca_data_b64, admin, tenant,
                                                    fmt).encode()).decode()
                name = "clusterAdmin" if admin else "clusterUser"
                return Response(200, {"kubeconfigs": [{"name": name, "value": value}]})
        return handler

    # -- writes ---------------------------------------------------------------------------------------
    def put(self, req: Request) -> Response:
        version = require_api_version(req)
        body = req.json() or {}
        with self.sim.lock:
            current = self._require(req)
            check_preconditions(req, current.get("eTag"), True, unwrapped=True)
            cluster = self.world.cluster_by_id(current["id"])
            assert cluster is not None
            if cluster.extra.get("operation"):
                op = cluster.extra["operation"]
                raise rp_error(409, "OperationNotAllowed",
                               "Operation is not allowed because there's an in progress update managed cluster "
                               f"operation with operation id {op.id} on the managed cluster started at "
                               f"{op.start}. Please wait for the operation to complete and try again.")
            desired = self._merge(current, body)
            self._validate_addon(desired)
            self._apply_addon_identity(current, desired)
            desired["properties"]["provisioningState"] = "Updating"
            desired["eTag"] = new_etag()
            self.world.arm.put(desired)
            sub, _ = split_rg(desired["id"])

            def complete() -> dict[str, Any] | None:
                cluster.extra.pop("operation", None)
                stored = self.world.arm.get(desired["id"])
                if stored is None:
                    return {"code": "NotFound", "message": "cluster vanished"}
                stored["properties"]["provisioningState"] = "Succeeded"
                stored["eTag"] = new_etag()
                self.sim.hooks.cluster_changed(self.world, cluster)
                return None

            op = self.world.ops.start(sub, "Microsoft.ContainerService", desired["location"], complete)
            cluster.extra["operation"] = op
            return Response(200, desired, {**self.world.ops.headers(op, version), **etag_header(desired)})

    def _merge(self, current: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        desired = copy.deepcopy(body)
        desired["id"], desired["name"], desired["type"] = current["id"], current["name"], current["type"]
        desired.setdefault("location", current["location"])
        if desired["location"].replace(" ", "").lower() != current["location"].lower():
            raise rp_error(400, "BadRequest", "Changing property 'location' is not allowed.", target="location")
        props = desired.setdefault("properties", {})
        for key in READ_ONLY_PROPS:
            if key in current["properties"]:
                props[key] = copy.deepcopy(current["properties"][key])
        if "identity" in current and "identity" in desired:
            desired["identity"] = {**desired["identity"], **{k: v for k, v in current["identity"].items()
                                                             if k in ("principalId", "tenantId")}}
        if not props.get("servicePrincipalProfile") and current["properties"].get("servicePrincipalProfile"):
            props["servicePrincipalProfile"] = copy.deepcopy(current["properties"]["servicePrincipalProfile"])
        if props.get("servicePrincipalProfile"):
            props["servicePrincipalProfile"].pop("secret", None)
        return desired

    def _validate_addon(self, mc: dict[str, Any]) -> None:
        profile = addon_profile(mc)
        if not profile or not profile.get("enabled"):
            return
        net = mc["properties"].get("networkProfile") or {}
        plugin, mode = net.get("networkPlugin", "kubenet"), net.get("networkPluginMode")
        if plugin != "azure" or mode == "overlay":
            used = f"{plugin} with {mode} mode" if mode else plugin
            raise rp_error(400, "InvalidParameter",
                           f"Addon '{ADDON}' is only supported with the Azure CNI network plugin ('azure', "
                           f"without overlay mode); this cluster uses '{used}'.", target="addonProfiles")
        subnet_name = (profile.get("config") or {}).get("SubnetName")
        if not subnet_name:
            raise rp_error(400, "InvalidParameter", f"Addon '{ADDON}' requires config 'SubnetName'.",
                           target="addonProfiles")
        vnet_id = agent_pool_vnet_id(mc, self.world)
        if vnet_id is None or self.world.arm.get(f"{vnet_id}/subnets/{subnet_name}") is None:
            raise rp_error(400, "InvalidParameter",
                           f"subnet '{subnet_name}' is not found in vnet '{vnet_id or '<none>'}' and subnet CIDR "
                           "is not specified. The virtual node subnet must exist in the virtual network of "
                           "the first agent pool.", target="addonProfiles")

    def _apply_addon_identity(self, current: dict[str, Any], desired: dict[str, Any]) -> None:
        profiles = desired["properties"].get("addonProfiles") or {}
        key = addon_key(profiles)
        if not key:
            return
        profile = profiles[key]
        if not profile.get("enabled"):
            profile["config"] = None
            profile.pop("identity", None)
            return
        old = addon_profile(current)
        if old and old.get("identity") and old.get("enabled"):
            profile["identity"] = copy.deepcopy(old["identity"])
            return
        profile.pop("identity", None)
        if is_msi(desired):
            profile["identity"] = self.create_addon_identity(desired)

    def create_addon_identity(self, mc: dict[str, Any]) -> dict[str, str]:
        """The RP creates ``aciconnectorlinux-<cluster>`` in the node RG and grants it rights on that RG."""
        from aksim.arm import authorization
        sub, _ = split_rg(mc["id"])
        node_rg = f"/subscriptions/{sub}/resourcegroups/{mc['properties']['nodeResourceGroup']}"
        principal = identity.create_user_assigned(self.world, node_rg, f"aciconnectorlinux-{mc['name']}",
                                                  mc["location"])
        authorization.assign(self.world, node_rg, "Contributor", principal.object_id,
                             description="Granted by AKS to the ACI connector add-on identity")
        return identity.identity_ref(self.world, f"{node_rg}/providers/{identity.UAMI_TYPE}/"
                                                 f"aciconnectorlinux-{mc['name']}")


def register(sim: "SimContext") -> None:
    mcs = ManagedClusters(sim)
    r = sim.arm_router
    r.add("GET", "/subscriptions/{sub}/providers/Microsoft.ContainerService/managedClusters", mcs.list_sub)
    r.add("GET", BASE, mcs.list_rg)
    r.add("GET", BASE + "/{name}", mcs.get)
    r.add("PUT", BASE + "/{name}", mcs.put)
    r.add("POST", BASE + "/{name}/listClusterUserCredential", mcs.credentials(admin=False))
    r.add("POST", BASE + "/{name}/listClusterAdminCredential", mcs.credentials(admin=True))


def seed_cluster_resource(world: "World", spec: dict[str, Any], rg_name: str, node_rg: str,
                          vnet_subnet_id: str | None, sp_client_id: str | None) -> dict[str, Any]:
    """The managedCluster body as AKS reports it after creation (shape of the recorded fixtures)."""
    sub = world.scenario.subscription_id
    name, location = spec["name"], spec.get("location", "westeurope")
    version = str(spec.get("kubernetes_version", "1.33.2"))
    net = spec.get("network") or {}
    plugin = net.get("plugin", "azure")
    pool: dict[str, Any] = {"name": "nodepool1", "count": int(spec.get("nodes", 3)), "vmSize": "Standard_DS2_v2",
                            "osDiskSizeGB": 128, "maxPods": int((spec.get("node_capacity") or {}).get("pods", 30)),
                            "type": "VirtualMachineScaleSets", "provisioningState": "Succeeded",
                            "powerState": {"code": "Running"}, "orchestratorVersion": version,
                            "currentOrchestratorVersion": version, "mode": "System", "osType": "Linux",
                            "osSKU": "Ubuntu"}
    if vnet_subnet_id:
        pool["vnetSubnetID"] = vnet_subnet_id
    network: dict[str, Any] = {"networkPlugin": plugin, "loadBalancerSku": "standard",
                               "serviceCidr": net.get("service_cidr", "10.0.0.0/16"),
                               "dnsServiceIP": net.get("dns_service_ip", "10.0.0.10"),
                               "outboundType": "loadBalancer", "ipFamilies": ["IPv4"]}
    if net.get("plugin_mode"):
        network["networkPluginMode"] = net["plugin_mode"]
    if plugin == "kubenet" or net.get("plugin_mode") == "overlay":
        network["podCidr"] = net.get("pod_cidr", "10.244.0.0/16")
    dns_prefix = f"{name}-{rg_name}"[:40]
    fqdn = f"{dns_prefix}-aksim.hcp.{location}.azmk8s.io"
    props: dict[str, Any] = {
        "provisioningState": "Succeeded", "powerState": {"code": "Running"},
        "kubernetesVersion": version, "currentKubernetesVersion": version, "dnsPrefix": dns_prefix,
        "fqdn": fqdn, "azurePortalFQDN": f"{dns_prefix}-aksim.portal.hcp.{location}.azmk8s.io",
        "agentPoolProfiles": [pool], "servicePrincipalProfile": {"clientId": sp_client_id or "msi"},
        "addonProfiles": {}, "nodeResourceGroup": node_rg, "enableRBAC": True, "networkProfile": network,
        "maxAgentPools": 100, "disableLocalAccounts": bool(spec.get("disable_local_accounts", False)),
        "apiServerAccessProfile": {"enablePrivateCluster": bool(spec.get("private", False))},
    }
    if spec.get("authorized_ip_ranges"):
        props["apiServerAccessProfile"]["authorizedIPRanges"] = [str(r) for r in spec["authorized_ip_ranges"]]
    aad = spec.get("aad_profile")
    if aad:
        props["aadProfile"] = {
            "managed": bool(aad.get("managed", True)),
            "enableAzureRBAC": bool(aad.get("enableAzureRBAC", aad.get("enableAzureRbac", False))),
            "adminGroupObjectIDs": aad.get("adminGroupObjectIDs", aad.get("adminGroupObjectIds")),
            "tenantID": aad.get("tenantID", aad.get("tenantId", world.scenario.tenant_id))}
    mc: dict[str, Any] = {
        "id": f"/subscriptions/{sub}/resourcegroups/{rg_name}/providers/Microsoft.ContainerService/"
              f"managedClusters/{name}",
        "location": location, "name": name, "type": MC_TYPE, "properties": props,
        "sku": {"name": "Base", "tier": "Free"}, "systemData": {"createdAt": utcnow()}, "eTag": new_etag()}
    return mc
