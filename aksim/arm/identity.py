"""Managed identities: the token endpoint ``az login --identity`` talks to, and user-assigned identities.

The token endpoint speaks the App Service protocol that MSAL's ManagedIdentityClient uses when
``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` are set. Tokens are JWTs signed by the simulator
(:mod:`aksim.arm.entra`) carrying ``tid`` and ``oid`` of the scenario's caller; the simulator's ARM accepts any
bearer token, as the caller is fixed per scenario, while an Entra ID cluster's API server verifies them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from aksim.arm import entra
from aksim.arm.common import ok_list, require_api_version
from aksim.arm.resources import require_resource_group
from aksim.httpcore import Request, Response

if TYPE_CHECKING:
    from aksim.context import SimContext
    from aksim.world import Principal, World

UAMI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
IDENTITY_HEADER = "aksim-identity-header"


def make_token(tenant: str, oid: str, resource: str, lifetime: int = 3600,
               app_id: str | None = None, groups: list[str] | None = None) -> tuple[str, int]:
    return entra.make_token(tenant, oid, resource, app_id, lifetime, groups)


def create_user_assigned(world: "World", resource_group_id: str, name: str, location: str) -> "Principal":
    """Create (or return) a user-assigned identity and its service principal (which then replicates)."""
    resource_id = f"{resource_group_id}/providers/{UAMI_TYPE}/{name}"
    existing = world.arm.get(resource_id)
    if existing is not None:
        return world.principals[existing["properties"]["principalId"]]
    principal = world.add_principal(name=name, kind="ManagedIdentity")
    world.arm.put({"id": resource_id, "name": name, "type": UAMI_TYPE, "location": location, "tags": {},
                   "properties": {"tenantId": world.scenario.tenant_id, "principalId": principal.object_id,
                                  "clientId": principal.client_id}})
    return principal


def identity_ref(world: "World", resource_id: str) -> dict[str, str]:
    """The ``{resourceId, clientId, objectId}`` block AKS reports for an identity it manages."""
    res = world.arm.get(resource_id)
    assert res is not None, resource_id
    return {"resourceId": res["id"], "clientId": res["properties"]["clientId"],
            "objectId": res["properties"]["principalId"]}


def register(sim: "SimContext") -> None:
    def token(req: Request) -> Response:
        if req.headers.get("x-identity-header") != IDENTITY_HEADER:
            return Response(401, {"statusCode": 401, "message": "X-IDENTITY-HEADER missing or wrong."})
        resource = req.q("resource") or ""
        if not resource:
            return Response(400, {"statusCode": 400, "message": "resource is required."})
        world = sim.world
        access, expires = make_token(world.scenario.tenant_id, world.caller.object_id, resource,
                                     int(sim.timings.token_lifetime), app_id=world.caller.client_id,
                                     groups=entra.caller_groups(world, world.caller.object_id))
        return Response(200, {"access_token": access, "expires_on": str(expires), "resource": resource,
                              "token_type": "Bearer", "client_id": world.caller.client_id})

    def get_uami(req: Request) -> Response:
        require_api_version(req)
        with sim.lock:
            p = req.params
            require_resource_group(sim.world, p["sub"], p["rg"])
            rid = f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers/{UAMI_TYPE}/{p['name']}"
            return Response(200, sim.world.arm.require(rid, UAMI_TYPE))

    def list_uami(req: Request) -> Response:
        require_api_version(req)
        with sim.lock:
            p = req.params
            require_resource_group(sim.world, p["sub"], p["rg"])
            return ok_list(sim.world.arm.children(
                f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers/Microsoft.ManagedIdentity", UAMI_TYPE))

    sim.admin_router.add("GET", "/msi/token", token)
    base = "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
    sim.arm_router.add("GET", base, list_uami)
    sim.arm_router.add("GET", base + "/{name}", get_uami)
