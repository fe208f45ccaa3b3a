"""Who the connector runs as, and which roles it needs where (least privilege, granted only if missing)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azure.cli.core.azclierror import InvalidArgumentValueError, ValidationError

from azext_virtualnode import _client_factory as cf
from azext_virtualnode._consts import (ACI_CONTRIBUTOR, ACI_CONTRIBUTOR_ID, NETWORK_CONTRIBUTOR,
                                       NETWORK_CONTRIBUTOR_ID)
from azext_virtualnode.addon import ClusterView
from azext_virtualnode.context import Ctx, progress
from azext_virtualnode.roles import (GROUP_WRITE, GROUP_WRITERS, SUBNET_WRITE, SUBNET_WRITERS, RoleClient,
                                     action_allowed, created_here, role_guid, scope_covers)

IDENTITY_API_VERSION = "2023-01-31"


# -- identity ----------------------------------------------------------------------------------------------
def service_principal(ctx: Ctx, app_id: str, kind: str = "servicePrincipal") -> dict[str, Any] | None:
    sps = list(cf.cf_graph(ctx.cli_ctx).service_principal_list(
        filter=f"servicePrincipalNames/any(c:c eq '{app_id}')"))
    if not sps:
        return None
    resource_id = next((n for n in sps[0].get("alternativeNames") or [] if n.startswith("/subscriptions/")), None)
    return {"kind": kind, "clientId": app_id, "objectId": sps[0]["id"], "resourceId": resource_id}


def cluster_service_principal(ctx: Ctx, cluster: ClusterView) -> dict[str, Any]:
    app_id = cluster.service_principal_client_id or ""
    identity = service_principal(ctx, app_id)
    if identity is None:
        raise ValidationError(
            f"The cluster's service principal {app_id} was not found in Microsoft Entra ID. Reset the cluster's "
            f"credentials with 'az aks update-credentials {ctx.ids} --reset-service-principal ...'.")
    return identity


def connector_identity(ctx: Ctx, cluster: ClusterView) -> dict[str, Any] | None:
    """The add-on connector's principal: the add-on's managed identity, or the cluster's service principal."""
    if cluster.is_msi:
        ident = cluster.addon_identity
        if ident is None or not ident.object_id:
            return None
        return {"kind": "addonManagedIdentity", "clientId": ident.client_id, "objectId": ident.object_id,
                "resourceId": ident.resource_id}
    return cluster_service_principal(ctx, cluster)


def kubelet_identity(cluster: ClusterView) -> dict[str, Any] | None:
    ident = cluster.kubelet_identity
    if ident is None or not ident.object_id:
        return None
    return {"kind": "kubeletIdentity", "clientId": ident.client_id, "objectId": ident.object_id,
            "resourceId": ident.resource_id}


def user_assigned_identity(ctx: Ctx, resource_id: str) -> dict[str, Any]:
    from azure.core.exceptions import ResourceNotFoundError
    try:
        res = cf.cf_resources(ctx.cli_ctx).get_by_id(resource_id, IDENTITY_API_VERSION)
    except ResourceNotFoundError:
        rg = resource_id.split("/")[4] if resource_id.count("/") > 4 else "<resource-group>"
        raise InvalidArgumentValueError(
            f"Managed identity '{resource_id}' was not found. Pass the resource ID of an existing user-assigned "
            f"identity (list them with 'az identity list -g {rg} -o table'), or omit --identity to use the "
            "cluster's kubelet identity.") from None
    props = res.properties or {}
    return {"kind": "userAssignedIdentity", "clientId": props.get("clientId"), "objectId": props.get("principalId"),
            "resourceId": res.id}


def chart_identity(ctx: Ctx, cluster: ClusterView, resource_id: str | None) -> dict[str, Any]:
    """The chart connector's principal: the given user-assigned identity, else the kubelet identity (the node's
    ``azure.json``), else, on a service-principal cluster, the cluster's service principal."""
    if resource_id:
        identity = user_assigned_identity(ctx, resource_id)
        kubelet = kubelet_identity(cluster)
        if not kubelet or kubelet["objectId"] != identity["objectId"]:
            progress(f"Note: the connector authenticates as identity {identity['clientId']} through the node "
                     "pool's VM scale sets: make sure it is assigned to them (as the kubelet identity is).")
        return identity
    if not cluster.is_msi:
        return cluster_service_principal(ctx, cluster)
    identity = kubelet_identity(cluster)
    if identity is None:
        raise ValidationError(f"Cluster '{ctx.name}' reports no kubelet identity. Pass --identity with the resource "
                              "ID of a user-assigned identity assigned to the node pool.")
    return identity


def identity_by_client_id(ctx: Ctx, cluster: ClusterView, client_id: str | None) -> dict[str, Any] | None:
    """The chart connector's principal as configured in its release (no client ID: the node's azure.json)."""
    kubelet = kubelet_identity(cluster)
    if not client_id:
        return kubelet if cluster.is_msi else cluster_service_principal(ctx, cluster)
    if kubelet and (kubelet["clientId"] or "").lower() == client_id.lower():
        return kubelet
    return service_principal(ctx, client_id, "userAssignedIdentity")


# -- roles ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoleNeed:
    """A right the connector needs at a scope, the least built-in role granting it, and what already does."""
    role: str
    role_id: str
    writers: dict[str, str]
    actions: tuple[str, ...]
    scope_kind: str


SUBNET_NEED = RoleNeed(NETWORK_CONTRIBUTOR, NETWORK_CONTRIBUTOR_ID, SUBNET_WRITERS,
                       (SUBNET_WRITE, "Microsoft.Network/virtualNetworks/subnets/join/action"), "subnet")
GROUPS_NEED = RoleNeed(ACI_CONTRIBUTOR, ACI_CONTRIBUTOR_ID, GROUP_WRITERS, (GROUP_WRITE,), "resource group")


def role_state(ctx: Ctx, identity: dict[str, Any], scope: str, need: RoleNeed = SUBNET_NEED,
               assignments: list[Any] | None = None) -> dict[str, Any]:
    """Whether some role assignment gives the connector identity ``need`` at ``scope`` (at it or above).
    ``assignments``: the identity's assignments at ``scope`` when already read."""
    grant = None
    if assignments is None:
        assignments = ctx.roles.assignments_for(identity["objectId"], scope)
    for ra in assignments:
        if not scope_covers(ra.scope, scope):
            continue
        if role_guid(ra.role_definition_id) in need.writers or _custom_role_allows(ctx.roles, ra.role_definition_id,
                                                                                   need.actions):
            grant = ra
            break
    if grant is None:
        return {"present": False, "role": need.role, "scope": scope, "id": None, "createdByExtension": False}
    return {"present": True, "role": need.writers.get(role_guid(grant.role_definition_id), "custom"),
            "scope": grant.scope, "id": grant.id,
            "createdByExtension": created_here(grant)}


def _custom_role_allows(roles: RoleClient, role_definition_id: str, actions: tuple[str, ...]) -> bool:
    definition = roles._client.role_definitions.get_by_id(role_definition_id)  # pylint: disable=protected-access
    perms = [{"actions": p.actions or [], "notActions": p.not_actions or []} for p in definition.permissions or []]
    return any(action_allowed(action, perms) for action in actions)


# pylint: disable-next=too-many-positional-arguments
def ensure_role(ctx: Ctx, identity: dict[str, Any], scope: str, cluster: ClusterView, deadline: float,
                need: RoleNeed = SUBNET_NEED) -> bool:
    """Grant ``need`` unless some assignment already gives it; True when this run granted it."""
    if role_state(ctx, identity, scope, need)["present"]:
        return False
    progress(f"Granting {need.role} on {need.scope_kind} {scope.rsplit('/', 1)[-1]} to the connector identity "
             f"{identity['objectId']}...")
    ctx.roles.grant_role(identity["objectId"], need.role_id, scope, cluster.id, "ServicePrincipal", deadline,
                         on_wait=progress)
    ctx.done.append(f"granted {need.role} on {scope.rsplit('/', 1)[-1]}")
    return True
