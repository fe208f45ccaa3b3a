"""Microsoft.Resources: subscriptions, resource groups, resource providers and async-operation polling."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aksim.arm.common import ok_list, require_api_version, rg_not_found
from aksim.httpcore import HttpError, Request, Response

if TYPE_CHECKING:
    from aksim.context import SimContext
    from aksim.world import World

SUB = "/subscriptions/{sub}"
RG = SUB + "/resourcegroups/{rg}"

PROVIDER_RESOURCE_TYPES: dict[str, list[str]] = {
    "Microsoft.ContainerInstance": ["containerGroups", "serviceAssociationLinks", "locations"],
    "Microsoft.ContainerService": ["managedClusters", "locations", "locations/operations"],
    "Microsoft.Network": ["virtualNetworks", "virtualNetworks/subnets", "routeTables", "networkSecurityGroups"],
    "Microsoft.Authorization": ["roleAssignments", "roleDefinitions", "permissions"],
    "Microsoft.ManagedIdentity": ["userAssignedIdentities"],
}


def subscription_body(world: "World") -> dict[str, Any]:
    sub = world.scenario.subscription
    return {"id": f"/subscriptions/{sub['id']}", "subscriptionId": sub["id"], "displayName": sub["name"],
            "tenantId": sub["tenantId"], "state": "Enabled", "authorizationSource": "RoleBased",
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01",
                                     "spendingLimit": "Off"}}


def rg_id(world: "World", name: str) -> str:
    return f"/subscriptions/{world.scenario.subscription_id}/resourceGroups/{name}"


def create_resource_group(world: "World", name: str, location: str, managed_by: str | None = None,
                          tags: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": rg_id(world, name), "name": name, "type": "Microsoft.Resources/resourceGroups",
                            "location": location, "properties": {"provisioningState": "Succeeded"}}
    if managed_by:
        body["managedBy"] = managed_by
    if tags:
        body["tags"] = tags
    return world.arm.put(body)


def require_resource_group(world: "World", sub: str, rg: str) -> dict[str, Any]:
    res = world.arm.get(f"/subscriptions/{sub}/resourceGroups/{rg}")
    if res is None:
        raise rg_not_found(rg)
    return res


def _check_sub(world: "World", sub: str) -> None:
    if sub.lower() != world.scenario.subscription_id.lower():
        raise HttpError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")


def provider_body(world: "World", namespace: str) -> dict[str, Any]:
    canonical = next((n for n in PROVIDER_RESOURCE_TYPES if n.lower() == namespace.lower()), namespace)
    state = world.provider_state.get(canonical.lower(), "Registered")
    locations = [loc.title() for loc in world.scenario.aci_regions]
    return {"id": f"/subscriptions/{world.scenario.subscription_id}/providers/{canonical}",
            "namespace": canonical, "registrationState": state, "registrationPolicy": "RegistrationRequired",
            "resourceTypes": [{"resourceType": t, "locations": locations, "apiVersions": ["2024-01-01"]}
                              for t in PROVIDER_RESOURCE_TYPES.get(canonical, [])]}


def register(sim: "SimContext") -> None:
    r = sim.arm_router

    def world() -> "World":
        return sim.world

    def list_subs(req: Request) -> Response:
        require_api_version(req)
        return ok_list([subscription_body(world())])

    def get_sub(req: Request) -> Response:
        require_api_version(req)
        _check_sub(world(), req.params["sub"])
        return Response(200, subscription_body(world()))

    def list_locations(req: Request) -> Response:
        _check_sub(world(), req.params["sub"])
        regions = world().scenario.aci_regions
        return ok_list([{"id": f"/subscriptions/{req.params['sub']}/locations/{loc}", "name": loc,
                         "displayName": loc, "type": "Region"} for loc in regions])

    def get_rg(req: Request) -> Response:
        require_api_version(req)
        with sim.lock:
            _check_sub(world(), req.params["sub"])
            res = require_resource_group(world(), req.params["sub"], req.params["rg"])
            return Response(204 if req.method == "HEAD" else 200, None if req.method == "HEAD" else res)

    def put_rg(req: Request) -> Response:
        require_api_version(req)
        body = req.json() or {}
        if not body.get("location"):
            raise HttpError(400, "LocationRequired", "The location property is required for this definition.")
        with sim.lock:
            _check_sub(world(), req.params["sub"])
            existed = world().arm.get(rg_id(world(), req.params["rg"])) is not None
            res = create_resource_group(world(), req.params["rg"], body["location"], tags=body.get("tags"))
            return Response(200 if existed else 201, res)

    def list_rgs(req: Request) -> Response:
        require_api_version(req)
        with sim.lock:
            _check_sub(world(), req.params["sub"])
            return ok_list(list(world().arm.of_type("Microsoft.Resources/resourceGroups",
                                                    f"/subscriptions/{req.params['sub']}/")))

    def list_providers(req: Request) -> Response:
        with sim.lock:
            return ok_list([provider_body(world(), ns) for ns in PROVIDER_RESOURCE_TYPES])

    def get_provider(req: Request) -> Response:
        require_api_version(req)
        with sim.lock:
            _check_sub(world(), req.params["sub"])
            return Response(200, provider_body(world(), req.params["ns"]))

    def register_provider(req: Request) -> Response:
        with sim.lock:
            w = world()
            _check_sub(w, req.params["sub"])
            key = req.params["ns"].lower()
            if w.provider_state.get(key, "Registered") != "Registered":
                w.provider_state[key] = "Registering"

                def done() -> None:
                    w.provider_state[key] = "Registered"
                sim.timers.call_later(sim.timings.lro, done)
            return Response(200, provider_body(w, req.params["ns"]))

    def op_status(req: Request) -> Response:
        with sim.lock:
            return world().ops.status(req.params["opid"])

    def op_result(req: Request) -> Response:
        with sim.lock:
            return world().ops.result(req.params["opid"], f"{sim.arm_url}{req.raw_path}")

    r.add("GET", "/subscriptions", list_subs)
    r.add("GET", SUB, get_sub)
    r.add("GET", SUB + "/locations", list_locations)
    r.add("GET", SUB + "/resourcegroups", list_rgs)
    r.add("GET", RG, get_rg)
    r.add("PUT", RG, put_rg)
    r.add("GET", SUB + "/providers", list_providers)
    r.add("GET", SUB + "/providers/{ns}", get_provider)
    r.add("POST", SUB + "/providers/{ns}/register", register_provider)
    r.add("GET", SUB + "/providers/{ns}/locations/{loc}/operations/{opid}", op_status)
    r.add("GET", SUB + "/providers/{ns}/locations/{loc}/operationresults/{opid}", op_result)
