"""Role assignments for the connector identity, and the caller's own rights (checked before any write).

The connector gets *Network Contributor on the virtual-node subnet only* (not Contributor on the VNet as
``az aks enable-addons`` does) and, for a chart-installed connector, *Azure Container Instances Contributor
Role on the node resource group* (where its container groups live; the add-on gets that from AKS).
Assignments this extension makes carry ``ROLE_MARKER`` in their description, so ``disable`` removes exactly
those and nothing an administrator granted.
"""
from __future__ import annotations

import base64
import fnmatch
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from azure.cli.core.azclierror import UnauthorizedError

from azext_virtualnode._consts import (ACI_CONTRIBUTOR, ACI_CONTRIBUTOR_ID, NETWORK_CONTRIBUTOR, NETWORK_CONTRIBUTOR_ID,
                                       ROLE_MARKER)

# Built-in roles whose permissions include subnet write (and so subnet join), by role-definition GUID.
SUBNET_WRITERS = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    NETWORK_CONTRIBUTOR_ID: NETWORK_CONTRIBUTOR,
}
# Built-in roles whose permissions include container-group write, by role-definition GUID.
GROUP_WRITERS = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    ACI_CONTRIBUTOR_ID: ACI_CONTRIBUTOR,
}
SUBNET_WRITE = "Microsoft.Network/virtualNetworks/subnets/write"
GROUP_WRITE = "Microsoft.ContainerInstance/containerGroups/write"
ROLE_ASSIGNMENT_WRITE = "Microsoft.Authorization/roleAssignments/write"
ROLE_ASSIGNMENT_DELETE = "Microsoft.Authorization/roleAssignments/delete"
CLUSTER_WRITE = "Microsoft.ContainerService/managedClusters/write"


def action_allowed(action: str, permissions: Iterable[dict[str, Any]]) -> bool:
    """RBAC evaluation: allowed by some permission's actions and not removed by that permission's notActions."""
    action = action.lower()
    for perm in permissions:
        allowed = any(fnmatch.fnmatchcase(action, a.lower()) for a in perm.get("actions") or [])
        denied = any(fnmatch.fnmatchcase(action, a.lower()) for a in perm.get("notActions") or
                     perm.get("not_actions") or [])
        if allowed and not denied:
            return True
    return False


def scope_covers(assignment_scope: str, target: str) -> bool:
    """True when an assignment at ``assignment_scope`` applies to ``target`` (same scope or an ancestor)."""
    a, t = assignment_scope.rstrip("/").lower(), target.rstrip("/").lower()
    return t == a or t.startswith(a + "/") or a == "/"


def role_guid(role_definition_id: str) -> str:
    return role_definition_id.rstrip("/").split("/")[-1].lower()


def created_here(assignment: Any) -> bool:
    """Whether this extension made the role assignment (its description carries ROLE_MARKER)."""
    return (assignment.description or "").startswith(ROLE_MARKER)


def assignment_name(scope: str, principal_id: str, role_id: str) -> str:
    """Deterministic name: a re-run PUTs the same assignment instead of creating a duplicate."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"virtual-node|{scope.lower()}|{principal_id}|{role_id}"))


def caller_object_id(cli_ctx: Any) -> str | None:
    """The signed-in principal's object ID, read from the ARM token's ``oid`` claim (the token is not kept)."""
    from azure.cli.core._profile import Profile
    try:
        creds, _, _ = Profile(cli_ctx=cli_ctx).get_raw_token()
        payload = creds[1].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims.get("oid")
    except Exception:  # pylint: disable=broad-except
        return None


@dataclass
class MissingRight:
    action: str
    scope: str
    role: str

    def command(self, assignee: str) -> str:
        return (f"az role assignment create --assignee-object-id {assignee} --assignee-principal-type "
                f"ServicePrincipal --role \"{self.role}\" --scope {self.scope}")


def missing_rights_error(missing: list[MissingRight], caller: str | None) -> UnauthorizedError:
    assignee = caller or "<your-object-id>"
    lines = ["You lack rights needed to enable the virtual node (nothing was changed):"]
    lines += [f"  - '{m.action}' on {m.scope}" for m in missing]
    lines.append("An Owner or User Access Administrator can grant them with:")
    seen: set[str] = set()
    for m in missing:
        cmd = m.command(assignee)
        if cmd not in seen:
            seen.add(cmd)
            lines.append(f"  {cmd}")
    lines.append("If an administrator grants the connector's role for you, re-run with --skip-role-assignment.")
    return UnauthorizedError("\n".join(lines))


class RoleClient:
    """Role-assignment reads and writes on top of the azure-mgmt-authorization client."""

    def __init__(self, auth_client: Any) -> None:
        self._client = auth_client

    def permissions(self, scope: str) -> list[dict[str, Any]]:
        """The caller's effective permissions at ``scope``
        (``{scope}/providers/Microsoft.Authorization/permissions``)."""
        from azure.core.rest import HttpRequest
        request = HttpRequest("GET", f"{scope}/providers/Microsoft.Authorization/permissions",
                              params={"api-version": "2022-04-01"})
        response = self._client.send_request(request)
        response.raise_for_status()
        return response.json().get("value", [])

    def assignments_for(self, principal_id: str, scope: str) -> list[Any]:
        flt = f"principalId eq '{principal_id}'"
        return list(self._client.role_assignments.list_for_scope(scope, filter=flt))

    def assignments_at(self, scope: str) -> list[Any]:
        return list(self._client.role_assignments.list_for_scope(scope, filter="atScope()"))

    def effective_grant(self, principal_id: str, scope: str) -> Any | None:
        """An assignment of a subnet-writing built-in role to the principal at ``scope`` or above, if any."""
        for ra in self.assignments_for(principal_id, scope):
            if scope_covers(ra.scope, scope) and role_guid(ra.role_definition_id) in SUBNET_WRITERS:
                return ra
        return None

    # pylint: disable-next=too-many-positional-arguments
    def grant_role(self, principal_id: str, role_guid_: str, scope: str, cluster_id: str, principal_type: str,
                   deadline: float, on_wait: Callable[[str], None] | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> Any | None:
        """Grant the built-in role ``role_guid_`` at ``scope``, marked as ours; 409 RoleAssignmentExists is
        success; PrincipalNotFound (a new identity still replicating) is retried until ``deadline``."""
        from azure.core.exceptions import HttpResponseError, ResourceExistsError
        sub = scope.split("/")[2]
        role_id = f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role_guid_}"
        params = {"properties": {"roleDefinitionId": role_id, "principalId": principal_id,
                                 "principalType": principal_type,
                                 "description": f"{ROLE_MARKER} for the ACI connector of {cluster_id}"}}
        delay = 2.0
        while True:
            try:
                return self._client.role_assignments.create(scope, assignment_name(scope, principal_id, role_id),
                                                            params)
            except ResourceExistsError:
                return None
            except HttpResponseError as exc:
                code = getattr(getattr(exc, "error", None), "code", "") or ""
                if code == "RoleAssignmentExists":
                    return None
                if code not in ("PrincipalNotFound",) or time.monotonic() + delay > deadline:
                    raise
                if on_wait:
                    on_wait(f"waiting for the identity {principal_id} to replicate in Microsoft Entra ID "
                            f"(retry in {delay:.0f}s)")
                sleep(delay)
                delay = min(delay * 2, 30.0)

    # pylint: disable-next=too-many-positional-arguments
    def grant_network_contributor(self, principal_id: str, scope: str, cluster_id: str, principal_type: str,
                                  deadline: float, on_wait: Callable[[str], None] | None = None,
                                  sleep: Callable[[float], None] = time.sleep) -> Any | None:
        return self.grant_role(principal_id, NETWORK_CONTRIBUTOR_ID, scope, cluster_id, principal_type, deadline,
                               on_wait, sleep)

    def marked_at(self, scope: str) -> list[Any]:
        """The assignments at exactly ``scope`` that this extension created (none when the scope is gone)."""
        from azure.core.exceptions import ResourceNotFoundError
        try:
            found = self.assignments_at(scope)
        except ResourceNotFoundError:
            return []
        return [ra for ra in found
                if ra.scope.lower() == scope.lower() and created_here(ra)]

    def delete(self, assignment_id: str) -> None:
        self._client.role_assignments.delete_by_id(assignment_id)
