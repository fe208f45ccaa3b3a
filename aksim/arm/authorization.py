"""Microsoft.Authorization at any scope: role assignments, built-in role definitions, effective permissions.

Role assignments are ARM resources (``{scope}/providers/Microsoft.Authorization/roleAssignments/{name}``).
Access checks follow Azure RBAC: an assignment at a scope covers that scope and everything below it, action
patterns use ``*`` wildcards and are case-insensitive, ``notActions`` subtract from the role's ``actions``.
The simulator has one caller per scenario (``world.caller``), standing in for the bearer token's ``oid``.
"""
from __future__ import annotations

import copy
import functools
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from aksim.arm.common import not_found, ok_list, require_api_version, rg_not_found, utcnow
from aksim.arm.provider import ProviderApi
from aksim.httpcore import HttpError, Request, Response

if TYPE_CHECKING:
    from aksim.context import SimContext
    from aksim.world import World

RA_TYPE = "Microsoft.Authorization/roleAssignments"
RD_TYPE = "Microsoft.Authorization/roleDefinitions"
AUTH = "/providers/Microsoft.Authorization"


@dataclass(frozen=True)
class Role:
    guid: str
    name: str
    description: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    def allows(self, action: str) -> bool:
        return (any(action_matches(p, action) for p in self.actions)
                and not any(action_matches(p, action) for p in self.not_actions))

    def allows_data(self, action: str) -> bool:
        return (any(action_matches(p, action) for p in self.data_actions)
                and not any(action_matches(p, action) for p in self.not_data_actions))


_AUTH_READ, _ALERTS, _DEPLOYMENTS = "Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*", \
    "Microsoft.Resources/deployments/*"
_RG_READ, _SUPPORT = "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Support/*"
_MCS = "Microsoft.ContainerService/managedClusters"
_AKS_RBAC_ACTIONS = (_AUTH_READ, "Microsoft.Resources/subscriptions/operationresults/read",
                     "Microsoft.Resources/subscriptions/read", _RG_READ)
# The RBAC Reader's dataActions as published (azure-docs built-in-roles/containers.md): no nodes, no leases,
# no secrets, no roles or bindings.
_AKS_READER_DATA = tuple(f"{_MCS}/{r}/read" for r in (
    "apps/controllerrevisions", "apps/daemonsets", "apps/deployments", "apps/replicasets", "apps/statefulsets",
    "autoscaling/horizontalpodautoscalers", "batch/cronjobs", "batch/jobs", "configmaps",
    "discovery.k8s.io/endpointslices", "endpoints", "events.k8s.io/events", "events", "extensions/daemonsets",
    "extensions/deployments", "extensions/ingresses", "extensions/networkpolicies", "extensions/replicasets",
    "limitranges", "metrics.k8s.io/pods", "metrics.k8s.io/nodes", "namespaces", "networking.k8s.io/ingresses",
    "networking.k8s.io/networkpolicies", "persistentvolumeclaims", "pods", "policy/poddisruptionbudgets",
    "replicationcontrollers", "resourcequotas", "serviceaccounts", "services"))
# The Writer: the Reader's kinds writable (namespaces and quotas stay read-only), plus secrets, pods/exec and
# serviceaccounts/impersonate; still no nodes, leases, roles or bindings.
_AKS_WRITER_DATA = tuple(a.replace("/read", "/*") for a in _AKS_READER_DATA
                         if not a.endswith(("/namespaces/read", "/resourcequotas/read", "metrics.k8s.io/pods/read",
                                            "metrics.k8s.io/nodes/read"))) + (
    f"{_MCS}/namespaces/read", f"{_MCS}/resourcequotas/read", f"{_MCS}/metrics.k8s.io/pods/read",
    f"{_MCS}/metrics.k8s.io/nodes/read", f"{_MCS}/secrets/*", f"{_MCS}/pods/exec/action",
    f"{_MCS}/serviceaccounts/impersonate/action")

BUILTIN_ROLES: tuple[Role, ...] = (
    Role("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner",
         "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.", ("*",)),
    Role("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor",
         "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage "
         "assignments in Azure Blueprints, or share image galleries.", ("*",),
         ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
          "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Blueprint/blueprintAssignments/write",
          "Microsoft.Blueprint/blueprintAssignments/delete", "Microsoft.Compute/galleries/share/action",
          "Microsoft.Purview/consents/write", "Microsoft.Purview/consents/delete",
          "Microsoft.Resources/deploymentStacks/manageDenySetting/action", "Microsoft.Subscription/cancel/action",
          "Microsoft.Subscription/enable/action")),
    Role("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader",
         "View all resources, but does not allow you to make any changes.", ("*/read",)),
    Role("4d97b98b-1d4f-4787-a291-c67834d212e7", "Network Contributor",
         "Lets you manage networks, but not access to them.",
         (_AUTH_READ, _ALERTS, "Microsoft.Network/*", "Microsoft.ResourceHealth/availabilityStatuses/read",
          _DEPLOYMENTS, _RG_READ, _SUPPORT)),
    Role("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator",
         "Lets you manage user access to Azure resources.", ("*/read", "Microsoft.Authorization/*", _SUPPORT)),
    Role("5d977122-f97e-4b4d-a52f-6b43003ddb4d", "Azure Container Instances Contributor Role",
         "Grants read/write access to container groups provided by Azure Container Instances",
         (_AUTH_READ, "Microsoft.ContainerInstance/containerGroups/*", _ALERTS, _DEPLOYMENTS, _RG_READ, _SUPPORT)),
    Role("f1a07417-d97a-45cb-824c-7a7467783830", "Managed Identity Operator", "Read and Assign User Assigned Identity",
         ("Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
          "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action", _AUTH_READ, _ALERTS, _RG_READ,
          _DEPLOYMENTS, _SUPPORT)),
    # AKS roles: the RBAC ones carry dataActions, which the API server of an Azure RBAC cluster checks.
    Role("4abbcc35-e782-43d8-92c5-2d3f1bd2253f", "Azure Kubernetes Service Cluster User Role",
         "List cluster user credential action.", (f"{_MCS}/listClusterUserCredential/action", f"{_MCS}/read")),
    Role("ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8", "Azure Kubernetes Service Contributor Role",
         "Grants access to read and write Azure Kubernetes Service clusters",
         (f"{_MCS}/read", f"{_MCS}/write", _DEPLOYMENTS)),
    Role("7f6c6a51-bcf8-42ba-9220-52d62157d7db", "Azure Kubernetes Service RBAC Reader",
         "Allows read-only access to see most objects in a namespace. It does not allow viewing roles or role "
         "bindings. This role does not allow viewing Secrets, since reading the contents of Secrets enables access "
         "to ServiceAccount credentials in the namespace, which would allow API access as any ServiceAccount in the "
         "namespace (a form of privilege escalation). Applying this role at cluster scope will give access across "
         "all namespaces.", _AKS_RBAC_ACTIONS, data_actions=_AKS_READER_DATA),
    Role("a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb", "Azure Kubernetes Service RBAC Writer",
         "Allows read/write access to most objects in a namespace.This role does not allow viewing or modifying "
         "roles or role bindings. However, this role allows accessing Secrets and running Pods as any "
         "ServiceAccount in the namespace, so it can be used to gain the API access levels of any ServiceAccount "
         "in the namespace. Applying this role at cluster scope will give access across all namespaces.",
         _AKS_RBAC_ACTIONS, data_actions=_AKS_WRITER_DATA),
    Role("3498e952-d568-435e-9b2c-8d77e338d7f7", "Azure Kubernetes Service RBAC Admin",
         "Lets you manage all resources under cluster/namespace, except update or delete resource quotas and "
         "namespaces.", _AKS_RBAC_ACTIONS + (f"{_MCS}/listClusterUserCredential/action",),
         data_actions=(f"{_MCS}/*",),
         not_data_actions=tuple(f"{_MCS}/{r}/{v}" for r in ("resourcequotas", "namespaces")
                                for v in ("write", "delete"))),
    Role("b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b", "Azure Kubernetes Service RBAC Cluster Admin",
         "Lets you manage all resources in the cluster.",
         _AKS_RBAC_ACTIONS + (f"{_MCS}/listClusterUserCredential/action",), data_actions=(f"{_MCS}/*",)),
)


# -- pure RBAC logic ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=512)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


def action_matches(pattern: str, action: str) -> bool:
    """RBAC action matching: ``*`` stands for any run of characters (``/`` included), case-insensitive."""
    return _pattern(pattern).fullmatch(action) is not None


def canonical_scope(scope: str) -> str:
    scope = "/" + scope.strip("/")
    return re.sub(r"^(/subscriptions/[^/]+)/resourcegroups/", r"\1/resourceGroups/", scope, flags=re.IGNORECASE)


def scope_covers(outer: str, inner: str) -> bool:
    """True when an assignment at ``outer`` applies at ``inner`` (same scope or a descendant)."""
    outer, inner = outer.rstrip("/").lower(), inner.rstrip("/").lower()
    return not outer or inner == outer or inner.startswith(outer + "/")


def role_by_name(name: str) -> Role | None:
    return next((r for r in BUILTIN_ROLES if r.name.lower() == name.lower()), None)


def role_by_guid(guid: str) -> Role | None:
    return next((r for r in BUILTIN_ROLES if r.guid == guid.lower()), None)


# -- state helpers ------------------------------------------------------------------------------------
def role_definition_id(world: "World", role: Role) -> str:
    return f"/subscriptions/{world.scenario.subscription_id}{AUTH}/roleDefinitions/{role.guid}"


def assignments(world: "World") -> Iterator[dict[str, Any]]:
    return world.arm.of_type(RA_TYPE)


def _role_of(assignment: dict[str, Any]) -> Role | None:
    return role_by_guid(assignment["properties"]["roleDefinitionId"].rsplit("/", 1)[-1])


def _find(world: "World", scope: str, role: Role, principal_id: str) -> dict[str, Any] | None:
    return next((a for a in assignments(world)
                 if a["properties"]["principalId"].lower() == principal_id.lower()
                 and a["properties"]["scope"].lower() == scope.lower() and _role_of(a) == role), None)


def _assignment_body(world: "World", scope: str, name: str, role: Role, principal_id: str, principal_type: str,
                     description: str | None) -> dict[str, Any]:
    now = utcnow()
    return {"id": f"{scope}{AUTH}/roleAssignments/{name}", "name": name, "type": RA_TYPE,
            "properties": {"roleDefinitionId": role_definition_id(world, role), "principalId": principal_id,
                           "principalType": principal_type, "scope": scope, "condition": None,
                           "conditionVersion": None, "createdOn": now, "updatedOn": now,
                           "createdBy": world.caller.object_id, "updatedBy": world.caller.object_id,
                           "delegatedManagedIdentityResourceId": None, "description": description}}


def assign(world: "World", scope: str, role_name: str, principal_id: str, description: str | None = None,
           principal_type: str = "ServicePrincipal") -> dict[str, Any]:
    """Grant a built-in role (seeding and RP side effects: no permission or principal checks); idempotent."""
    role = role_by_name(role_name)
    if role is None:
        raise ValueError(f"unknown built-in role {role_name!r}")
    scope = canonical_scope(scope)
    existing = _find(world, scope, role, principal_id)
    if existing is not None:
        return existing
    return world.arm.put(_assignment_body(world, scope, str(uuid.uuid4()), role, principal_id, principal_type,
                                          description))


def _effective(world: "World", principal_id: str, scope: str) -> Iterator[Role]:
    for a in assignments(world):
        role = _role_of(a)
        if (role is not None and a["properties"]["principalId"].lower() == principal_id.lower()
                and scope_covers(a["properties"]["scope"], scope)):
            yield role


def has_permission(world: "World", principal_id: str, action: str, scope: str) -> bool:
    return any(role.allows(action) for role in _effective(world, principal_id, scope))


def has_data_permission(world: "World", principal_id: str, data_action: str, scope: str) -> bool:
    """Azure RBAC for a data-plane action (an AKS API server request under Azure RBAC)."""
    return any(role.allows_data(data_action) for role in _effective(world, principal_id, scope))


def authorize(world: "World", action: str, scope: str) -> None:
    """ARM's check of the caller before a request reaches the RP: 403 ``AuthorizationFailed``."""
    oid = world.caller.object_id
    if not has_permission(world, oid, action, scope):
        raise HttpError(403, "AuthorizationFailed",
                        f"The client '{oid}' with object id '{oid}' does not have authorization to perform action "
                        f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
                        "please refresh your credentials.")


# -- request helpers ----------------------------------------------------------------------------------
def _check_scope(world: "World", scope: str) -> None:
    """404 the way ARM does when the scope's subscription, resource group or resource does not exist."""
    parts = scope.strip("/").split("/")
    sub = world.scenario.subscription_id
    if len(parts) < 2 or parts[0].lower() != "subscriptions" or parts[1].lower() != sub.lower():
        raise HttpError(404, "SubscriptionNotFound", f"The subscription '{parts[1] if len(parts) > 1 else ''}' "
                        "could not be found.")
    if len(parts) >= 4 and world.arm.get(f"/subscriptions/{sub}/resourceGroups/{parts[3]}") is None:
        raise rg_not_found(parts[3])
    if len(parts) > 4 and world.arm.get(scope) is None:
        provider = parts[5:]
        raise not_found("/".join(provider[:2]), "/".join(provider[2:]), parts[3])


def _scope(req: Request) -> str:
    return canonical_scope(req.params.get("scope", "/"))


_FILTER_PRINCIPAL = re.compile(r"(?:principalId\s+eq\s+|assignedTo\()\s*'([^']+)'", re.IGNORECASE)
_FILTER_ROLE_NAME = re.compile(r"roleName\s+eq\s+'([^']+)'", re.IGNORECASE)


def filter_assignments(items: list[dict[str, Any]], scope: str, flt: str) -> list[dict[str, Any]]:
    """The list API's ``$filter``: ``atScope()`` keeps assignments at or above the scope, otherwise those below
    it count too; ``principalId eq '<id>'`` / ``assignedTo('<id>')`` keep one principal's."""
    at_scope = "atscope()" in flt.replace(" ", "").lower()
    principal = _FILTER_PRINCIPAL.search(flt)
    out = []
    for a in items:
        a_scope = a["properties"]["scope"]
        if not (scope_covers(a_scope, scope) or (not at_scope and scope_covers(scope, a_scope))):
            continue
        if principal and a["properties"]["principalId"].lower() != principal.group(1).lower():
            continue
        out.append(a)
    return out


def role_definition_body(world: "World", role: Role) -> dict[str, Any]:
    return {"id": role_definition_id(world, role), "name": role.guid, "type": RD_TYPE,
            "properties": {"roleName": role.name, "type": "BuiltInRole", "description": role.description,
                           "assignableScopes": ["/"],
                           "permissions": [{"actions": list(role.actions), "notActions": list(role.not_actions),
                                            "dataActions": list(role.data_actions),
                                            "notDataActions": list(role.not_data_actions)}],
                           "createdOn": "2015-02-02T21:55:09.8806423Z", "updatedOn": "2024-04-01T00:00:00.0000000Z",
                           "createdBy": None, "updatedBy": None}}


def _definition_guid(role_definition_id_: str) -> str:
    return role_definition_id_.rstrip("/").rsplit("/", 1)[-1]


def _principal_check(world: "World", principal_id: str, principal_type: str | None) -> None:
    """ARM looks the principal up in the directory unless the request names its ``principalType``: then a
    principal still replicating is accepted (as documented for new service principals). A principal that does
    not exist at all is refused either way here (stricter than ARM, which may store such an assignment)."""
    known = principal_id in world.principals
    if known and (principal_type or world.principal_replicated(principal_id)):
        return
    raise HttpError(400, "PrincipalNotFound",
                    f"Principal {principal_id.replace('-', '')} does not exist in the directory "
                    f"{world.scenario.tenant_id}. Check that you have the correct principal ID. If you are "
                    "creating this principal and then immediately assigning a role, this error might be related "
                    "to a replication delay. In this case, set the role assignment principalType property to a "
                    "value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype")


# -- HTTP ---------------------------------------------------------------------------------------------
class _Api(ProviderApi):
    def put_assignment(self, req: Request) -> Response:
        require_api_version(req)
        props = (req.json() or {}).get("properties") or {}
        if not props.get("roleDefinitionId") or not props.get("principalId"):
            raise HttpError(400, "InvalidRoleAssignmentRequest",
                            "The role assignment request must have 'roleDefinitionId' and 'principalId' properties.")
        with self.sim.lock:
            world, scope, name = self.world, _scope(req), req.params["name"]
            _check_scope(world, scope)
            assignment_id = f"{scope}{AUTH}/roleAssignments/{name}"
            authorize(world, f"{RA_TYPE}/write", assignment_id)
            guid = _definition_guid(props["roleDefinitionId"])
            role = role_by_guid(guid)
            if role is None:
                raise HttpError(400, "RoleDefinitionDoesNotExist",
                                f"The specified role definition with ID '{guid}' does not exist.")
            principal_id = props["principalId"]
            same = _find(world, scope, role, principal_id)
            if same is not None and same["name"].lower() != name.lower():
                raise HttpError(409, "RoleAssignmentExists", "The role assignment already exists.")
            existing = world.arm.get(assignment_id)
            if existing is not None:
                if existing is not same:
                    raise HttpError(400, "RoleAssignmentUpdateNotPermitted",
                                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
                return Response(200, copy.deepcopy(existing))
            _principal_check(world, principal_id, props.get("principalType"))
            body = _assignment_body(world, scope, name, role, principal_id,
                                    props.get("principalType") or "ServicePrincipal", props.get("description"))
            return Response(201, copy.deepcopy(world.arm.put(body)))

    def get_assignment(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            scope = _scope(req)
            _check_scope(self.world, scope)
            res = self.world.arm.get(f"{scope}{AUTH}/roleAssignments/{req.params['name']}")
            if res is None:
                raise HttpError(404, "RoleAssignmentNotFound",
                                f"The role assignment '{req.params['name']}' is not found.")
            return Response(200, copy.deepcopy(res))

    def delete_assignment(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            scope = _scope(req)
            assignment_id = f"{scope}{AUTH}/roleAssignments/{req.params['name']}"
            res = self.world.arm.get(assignment_id)
            if res is None:
                return Response(204)
            authorize(self.world, f"{RA_TYPE}/delete", assignment_id)
            return Response(200, copy.deepcopy(self.world.arm.delete(assignment_id)))

    def list_assignments(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            scope = _scope(req)
            _check_scope(self.world, scope)
            items = filter_assignments(list(assignments(self.world)), scope, req.q("$filter") or "")
            return ok_list(copy.deepcopy(items))

    def list_definitions(self, req: Request) -> Response:
        require_api_version(req)
        wanted = _FILTER_ROLE_NAME.search(req.q("$filter") or "")
        with self.sim.lock:
            _check_scope(self.world, _scope(req))
            roles = [r for r in BUILTIN_ROLES if not wanted or r.name.lower() == wanted.group(1).lower()]
            return ok_list([role_definition_body(self.world, r) for r in roles])

    def get_definition(self, req: Request) -> Response:
        require_api_version(req)
        role = role_by_guid(req.params["guid"])
        if role is None:
            raise HttpError(404, "RoleDefinitionDoesNotExist",
                            f"The specified role definition with ID '{req.params['guid']}' does not exist.")
        with self.sim.lock:
            return Response(200, role_definition_body(self.world, role))

    def list_permissions(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            scope = _scope(req)
            _check_scope(self.world, scope)
            roles = _effective(self.world, self.world.caller.object_id, scope)
            return ok_list([{"actions": list(r.actions), "notActions": list(r.not_actions),
                             "dataActions": list(r.data_actions), "notDataActions": list(r.not_data_actions)}
                            for r in roles])


def register(sim: "SimContext") -> None:
    api = _Api(sim)
    r = sim.arm_router
    base = "{scope:path}" + AUTH
    r.add("GET", base + "/roleAssignments", api.list_assignments)
    r.add("GET", base + "/roleAssignments/{name}", api.get_assignment)
    r.add("PUT", base + "/roleAssignments/{name}", api.put_assignment)
    r.add("DELETE", base + "/roleAssignments/{name}", api.delete_assignment)
    r.add("GET", base + "/roleDefinitions", api.list_definitions)
    r.add("GET", base + "/roleDefinitions/{guid}", api.get_definition)
    r.add("GET", AUTH + "/roleDefinitions/{guid}", api.get_definition)
    r.add("GET", base + "/permissions", api.list_permissions)
