"""Microsoft.Authorization in the simulator: RBAC matching rules and the real ``az role``."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from aksim.arm import authorization as rbac
from aksim.scenario import DEFAULT_CALLER_OID

SUB = "00000000-0000-0000-0000-000000000001"
SUB_SCOPE = f"/subscriptions/{SUB}"
RG_ID = f"{SUB_SCOPE}/resourceGroups/auth-rg"
VNET_ID = f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/vnet"
SUBNET_ID = f"{VNET_ID}/subnets/aci-subnet"
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
GROUP: dict[str, Any] = {"name": "auth-rg", "location": "westeurope", "vnets": [
    {"name": "vnet", "address_prefixes": ["10.0.0.0/8"],
     "subnets": [{"name": "aci-subnet", "prefix": "10.241.0.0/16"}]}]}


def scenario(caller_roles: list[dict[str, str]] | None = None, replication: float = 0.0) -> dict[str, Any]:
    out: dict[str, Any] = {"name": "auth", "resource_groups": [GROUP],
                           "timings": {"lro": 0.3, "poll": 0.1, "role_replication": replication}}
    if caller_roles is not None:
        out["caller"] = {"roles": caller_roles}
    return out


pytestmark = pytest.mark.scenario(scenario())


# -- pure RBAC logic ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern,action,expected", [
    ("*", "Microsoft.Network/virtualNetworks/subnets/write", True),
    ("Microsoft.Network/*", "microsoft.network/virtualNetworks/subnets/join/action", True),
    ("Microsoft.Network/*", "Microsoft.NetworkFunction/x/read", False),
    ("*/read", "Microsoft.Network/virtualNetworks/read", True),
    ("*/read", "Microsoft.Network/virtualNetworks/write", False),
    ("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", True),
    ("Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
     "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", False),
    ("Microsoft.ContainerInstance/containerGroups/*", "Microsoft.ContainerInstance/containerGroups/delete", True),
])
def test_action_matches(pattern: str, action: str, expected: bool) -> None:
    assert rbac.action_matches(pattern, action) is expected


@pytest.mark.parametrize("role,action,expected", [
    ("Owner", "Microsoft.Authorization/roleAssignments/write", True),
    ("Contributor", "Microsoft.Authorization/roleAssignments/write", False),
    ("Contributor", "Microsoft.Network/virtualNetworks/subnets/write", True),
    ("User Access Administrator", "Microsoft.Authorization/roleAssignments/write", True),
    ("User Access Administrator", "Microsoft.Network/virtualNetworks/subnets/write", False),
    ("Reader", "Microsoft.Network/virtualNetworks/subnets/read", True),
    ("Network Contributor", "Microsoft.Network/virtualNetworks/subnets/join/action", True),
    ("Network Contributor", "Microsoft.ContainerInstance/containerGroups/write", False),
    ("Azure Container Instances Contributor Role", "Microsoft.ContainerInstance/containerGroups/write", True),
    ("Managed Identity Operator", "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", False),
    ("Managed Identity Operator", "Microsoft.ManagedIdentity/userAssignedIdentities/x/assign/action", True),
])
def test_builtin_role_permissions(role: str, action: str, expected: bool) -> None:
    found = rbac.role_by_name(role)
    assert found is not None and found.allows(action) is expected


def test_scope_covers_descendants_only() -> None:
    assert rbac.scope_covers(SUB_SCOPE, SUBNET_ID)
    assert rbac.scope_covers(VNET_ID, SUBNET_ID)
    assert rbac.scope_covers(SUBNET_ID.upper(), SUBNET_ID)
    assert not rbac.scope_covers(SUBNET_ID, VNET_ID)
    assert not rbac.scope_covers(RG_ID, RG_ID + "2")
    assert rbac.canonical_scope(f"/subscriptions/{SUB}/resourcegroups/auth-rg/") == RG_ID


def test_filter_at_scope_excludes_subscopes() -> None:
    def ra(scope: str, principal: str = "p1") -> dict[str, Any]:
        return {"properties": {"scope": scope, "principalId": principal}}
    items = [ra(SUB_SCOPE), ra(VNET_ID), ra(SUBNET_ID, "p2"), ra(f"{SUB_SCOPE}/resourceGroups/other")]
    assert rbac.filter_assignments(items, VNET_ID, "atScope()") == items[:2]
    assert rbac.filter_assignments(items, VNET_ID, "") == items[:3]
    assert rbac.filter_assignments(items, SUB_SCOPE, "principalId eq 'p2'") == [items[2]]


@pytest.mark.scenario(scenario([{"role": "Reader", "scope": "/subscriptions/{subscription}"},
                                {"role": "Network Contributor", "scope": SUBNET_ID}]))
def test_has_permission_follows_scope_and_role(sim: Any) -> None:
    with sim.lock:
        w = sim.world
        assert rbac.has_permission(w, DEFAULT_CALLER_OID, "Microsoft.Network/virtualNetworks/subnets/write", SUBNET_ID)
        assert not rbac.has_permission(w, DEFAULT_CALLER_OID, "Microsoft.Network/virtualNetworks/write", VNET_ID)
        assert rbac.has_permission(w, DEFAULT_CALLER_OID, "Microsoft.Network/virtualNetworks/read", VNET_ID)
        assert not rbac.has_permission(w, DEFAULT_CALLER_OID, "Microsoft.Authorization/roleAssignments/write",
                                       SUBNET_ID)
        assert not rbac.has_permission(w, "someone-else", "Microsoft.Network/virtualNetworks/read", VNET_ID)


def test_assign_is_idempotent(sim: Any) -> None:
    with sim.lock:
        first = rbac.assign(sim.world, VNET_ID, "Contributor", "p1", description="virtual node")
        again = rbac.assign(sim.world, VNET_ID.lower(), "Contributor", "p1")
        assert again is first and first["properties"]["description"] == "virtual node"
        with pytest.raises(ValueError):
            rbac.assign(sim.world, VNET_ID, "No Such Role", "p1")


# -- the real az --------------------------------------------------------------------------------------
def create(az: Any, principal: str, role: str = "Network Contributor", scope: str = SUBNET_ID,
           check: bool = True) -> Any:
    return az("role", "assignment", "create", "--assignee-object-id", principal, "--assignee-principal-type",
              "ServicePrincipal", "--role", role, "--scope", scope, "-o", "json", check=check)


def test_az_role_assignment_lifecycle_on_a_subnet(az: Any, sim: Any) -> None:
    with sim.lock:
        principal = sim.world.add_principal(name="aciconnectorlinux", kind="ManagedIdentity").object_id
    made = create(az, principal).json()
    assert made["scope"] == SUBNET_ID and made["principalType"] == "ServicePrincipal"
    assert made["roleDefinitionId"] == f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/" \
                                       f"{NETWORK_CONTRIBUTOR}"
    assert made["id"] == f"{SUBNET_ID}/providers/Microsoft.Authorization/roleAssignments/{made['name']}"

    sim.reset_logs()
    assert create(az, principal).json()["name"] == made["name"]   # az treats 409 RoleAssignmentExists as done
    assert [e["status"] for e in sim.requests() if e["method"] == "PUT"] == [409]

    listed = az("role", "assignment", "list", "--scope", SUBNET_ID, "-o", "json").json()
    assert [(a["principalId"], a["roleDefinitionName"]) for a in listed] == [(principal, "Network Contributor")]
    mine = az("role", "assignment", "list", "--assignee", principal, "--all", "--query", "[].scope", "-o", "json")
    assert mine.json() == [SUBNET_ID]

    az("role", "assignment", "delete", "--assignee", principal, "--role", "Network Contributor", "--scope", SUBNET_ID)
    assert az("role", "assignment", "list", "--scope", SUBNET_ID, "-o", "json").json() == []


def test_az_rest_put_under_a_new_name_is_a_409(az: Any, sim: Any) -> None:
    with sim.lock:
        rbac.assign(sim.world, VNET_ID, "Contributor", DEFAULT_CALLER_OID)
    body = {"properties": {"roleDefinitionId": f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/"
                                               "b24988ac-6180-42a0-ab88-20f7382dd24c",
                           "principalId": DEFAULT_CALLER_OID}}
    res = az("rest", "--method", "put", "--url", f"{VNET_ID}/providers/Microsoft.Authorization/roleAssignments/"
             f"{uuid.uuid4()}?api-version=2022-04-01", "--body", json.dumps(body), check=False)
    assert "RoleAssignmentExists" in res.stderr and "The role assignment already exists." in res.stderr


def test_az_unknown_principal_is_not_found(az: Any) -> None:
    res = create(az, "22222222-2222-2222-2222-222222222222", check=False)
    assert "(PrincipalNotFound) Principal 22222222222222222222222222222222 does not exist in the directory" \
           in res.stderr
    assert "set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  " \
           "See https://aka.ms/docs-principaltype" in res.stderr


@pytest.mark.scenario(scenario(replication=60))
def test_az_fresh_identity_is_not_found_until_replicated(az: Any, sim: Any) -> None:
    """Without principalType ARM looks the principal up and fails while it replicates; with it, it does not."""
    with sim.lock:
        fresh = sim.world.add_principal(name="fresh", kind="ManagedIdentity")
    body = {"properties": {"roleDefinitionId": f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/"
                                               "4d97b98b-1d4f-4787-a291-c67834d212e7",
                           "principalId": fresh.object_id}}
    url = f"{SUBNET_ID}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}?api-version=2022-04-01"
    res = az("rest", "--method", "put", "--url", url, "--body", json.dumps(body), check=False)
    assert '"code":"PrincipalNotFound"' in res.stderr and "replication delay" in res.stderr
    # az role assignment create sends principalType (--assignee-principal-type): no replication check
    assert create(az, fresh.object_id).json()["principalId"] == fresh.object_id


@pytest.mark.scenario(scenario([{"role": "Contributor", "scope": "/subscriptions/{subscription}"}]))
def test_az_contributor_cannot_assign_roles(az: Any) -> None:
    res = create(az, DEFAULT_CALLER_OID, check=False)
    assert "(AuthorizationFailed)" in res.stderr
    assert f"The client '{DEFAULT_CALLER_OID}' with object id '{DEFAULT_CALLER_OID}' does not have authorization " \
           "to perform action 'Microsoft.Authorization/roleAssignments/write' over scope " \
           f"'{SUBNET_ID}/providers/Microsoft.Authorization/roleAssignments/" in res.stderr
    perms = az("rest", "--method", "get", "--url",
               f"{SUBNET_ID}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01").json()
    assert perms["value"][0]["actions"] == ["*"]
    assert "Microsoft.Authorization/*/Write" in perms["value"][0]["notActions"]


def test_az_role_definitions(az: Any) -> None:
    found = az("role", "definition", "list", "--name", "Azure Container Instances Contributor Role",
               "--query", "[].{name:name, type:roleType}", "-o", "json").json()
    assert found == [{"name": "5d977122-f97e-4b4d-a52f-6b43003ddb4d", "type": "BuiltInRole"}]
    shown = az("rest", "--method", "get", "--url", f"/providers/Microsoft.Authorization/roleDefinitions/"
               f"{NETWORK_CONTRIBUTOR}?api-version=2022-04-01").json()
    assert shown["properties"]["roleName"] == "Network Contributor"
    res = az("role", "assignment", "create", "--assignee-object-id", DEFAULT_CALLER_OID,
             "--assignee-principal-type", "ServicePrincipal", "--role", "Network Wizard", "--scope", SUBNET_ID,
             check=False)
    assert "Role 'Network Wizard' doesn't exist." in res.stderr
