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

# Resource types of each namespace as its provider GET lists them (the real lists are longer; these are the ones a
# client of this simulator meets), each with the api-versions it accepts, newest first as ARM lists them.
_ACI_VERSIONS = ["2025-09-01", "2024-11-01-preview", "2024-10-01-preview", "2024-09-01-preview", "2023-05-01",
                 "2022-10-01-preview", "2022-09-01", "2021-10-01", "2021-09-01", "2021-07-01", "2021-03-01",
                 "2020-11-01", "2019-12-01", "2018-10-01"]
_AKS_VERSIONS = ["2025-07-01", "2025-05-01", "2025-04-01", "2025-03-01", "2025-02-01", "2025-01-01", "2024-10-01",
                 "2024-09-01", "2024-08-01", "2024-07-01", "2024-05-01", "2024-02-01", "2023-10-01", "2022-09-01",
                 "2016-03-30"]
_NETWORK_VERSIONS = ["2024-07-01", "2024-05-01", "2024-03-01", "2024-01-01", "2023-11-01", "2023-09-01",
                     "2023-06-01", "2023-05-01", "2023-04-01", "2022-01-01", "2021-08-01", "2020-11-01"]
_AUTH_VERSIONS = ["2022-05-01-preview", "2022-04-01", "2020-10-01-preview", "2020-04-01-preview",
                  "2018-09-01-preview", "2018-01-01-preview", "2015-07-01"]
_MSI_VERSIONS = ["2024-11-30", "2023-07-31-preview", "2023-01-31", "2022-01-31-preview", "2018-11-30"]

PROVIDER_RESOURCE_TYPES: dict[str, list[str]] = {
    "Microsoft.ContainerInstance": ["containerGroups", "serviceAssociationLinks", "locations",
                                    "locations/capabilities", "locations/usages", "locations/operations",
                                    "locations/operationresults", "operations", "locations/cachedImages",
                                    "locations/deleteVirtualNetworkOrSubnets",
                                    "locations/validateDeleteVirtualNetworkOrSubnets", "containerGroupProfiles"],
    "Microsoft.ContainerService": ["managedClusters", "managedClusters/agentPools", "locations",
                                   "locations/operations", "locations/operationresults", "locations/orchestrators",
                                   "locations/kubernetesVersions", "locations/usages", "operations",
                                   "snapshots", "managedclustersnapshots", "fleets"],
    "Microsoft.Network": ["virtualNetworks", "virtualNetworks/subnets", "routeTables", "networkSecurityGroups",
                          "natGateways", "publicIPAddresses", "networkInterfaces", "loadBalancers",
                          "privateEndpoints", "locations", "locations/operations", "locations/operationResults",
                          "operations"],
    "Microsoft.Authorization": ["roleAssignments", "roleDefinitions", "permissions", "classicAdministrators",
                                "denyAssignments", "locks", "operations", "policyAssignments",
                                "policyDefinitions"],
    "Microsoft.ManagedIdentity": ["userAssignedIdentities", "userAssignedIdentities/federatedIdentityCredentials",
                                  "Identities", "operations"],
}
_VERSIONS = {"Microsoft.ContainerInstance": _ACI_VERSIONS, "Microsoft.ContainerService": _AKS_VERSIONS,
             "Microsoft.Network": _NETWORK_VERSIONS, "Microsoft.Authorization": _AUTH_VERSIONS,
             "Microsoft.ManagedIdentity": _MSI_VERSIONS}
_GLOBAL_NAMESPACES = ("Microsoft.Authorization",)     # types with no region: locations [""]

# Region name -> display name, as GET /subscriptions/{id}/locations and provider GETs show them.
LOCATION_NAMES: dict[str, str] = {
    "eastus": "East US", "eastus2": "East US 2", "westus": "West US", "westus2": "West US 2",
    "westus3": "West US 3", "centralus": "Central US", "northcentralus": "North Central US",
    "southcentralus": "South Central US", "westcentralus": "West Central US", "canadacentral": "Canada Central",
    "canadaeast": "Canada East", "brazilsouth": "Brazil South", "northeurope": "North Europe",
    "westeurope": "West Europe", "uksouth": "UK South", "ukwest": "UK West", "francecentral": "France Central",
    "germanywestcentral": "Germany West Central", "switzerlandnorth": "Switzerland North",
    "norwayeast": "Norway East", "swedencentral": "Sweden Central", "polandcentral": "Poland Central",
    "italynorth": "Italy North", "spaincentral": "Spain Central", "eastasia": "East Asia",
    "southeastasia": "Southeast Asia", "japaneast": "Japan East", "japanwest": "Japan West",
    "koreacentral": "Korea Central", "australiaeast": "Australia East", "australiasoutheast": "Australia Southeast",
    "centralindia": "Central India", "southindia": "South India", "uaenorth": "UAE North",
    "southafricanorth": "South Africa North", "qatarcentral": "Qatar Central", "israelcentral": "Israel Central",
}


def display_name(location: str) -> str:
    key = location.replace(" ", "").lower()
    return LOCATION_NAMES.get(key, location)


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


def _all_regions(world: "World") -> list[str]:
    """Every region of the simulated cloud: the ACI ones, the scenario's resource groups' and clusters'."""
    names = list(world.scenario.aci_regions)
    names += [rg.get("location", "westeurope") for rg in world.scenario.resource_groups]
    names += [c.get("location", "westeurope") for c in world.scenario.clusters]
    return list(dict.fromkeys(n.replace(" ", "").lower() for n in names))


def provider_body(world: "World", namespace: str) -> dict[str, Any]:
    """A provider as ARM returns it: region display names, every resource type, api-versions newest first.
    Container groups are offered in the scenario's ``aci_regions`` only."""
    canonical = next((n for n in PROVIDER_RESOURCE_TYPES if n.lower() == namespace.lower()), namespace)
    state = world.provider_state.get(canonical.lower(), "Registered")
    aci = [display_name(loc) for loc in world.scenario.aci_regions]
    everywhere = [display_name(loc) for loc in _all_regions(world)]
    versions = sorted(_VERSIONS.get(canonical, ["2024-01-01"]), reverse=True)
    types = []
    for rtype in PROVIDER_RESOURCE_TYPES.get(canonical, []):
        if canonical in _GLOBAL_NAMESPACES or rtype == "operations":
            locations = [""]
        elif canonical == "Microsoft.ContainerInstance":
            locations = aci
        else:
            locations = everywhere
        types.append({"resourceType": rtype, "locations": locations, "apiVersions": versions,
                      "capabilities": "None"})
    return {"id": f"/subscriptions/{world.scenario.subscription_id}/providers/{canonical}",
            "namespace": canonical, "registrationState": state, "registrationPolicy": "RegistrationRequired",
            "resourceTypes": types}


def _geo(location: str) -> str:
    name = display_name(location)
    for word, geo in (("Europe", "Europe"), ("UK", "UK"), ("France", "Europe"), ("Germany", "Europe"),
                      ("Asia", "Asia Pacific"), ("Japan", "Asia Pacific"), ("Australia", "Asia Pacific"),
                      ("India", "Asia Pacific"), ("Korea", "Asia Pacific"), ("Canada", "Canada"),
                      ("Brazil", "South America")):
        if word in name:
            return geo
    return "US"


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
                         "displayName": display_name(loc), "regionalDisplayName": f"({_geo(loc)}) {display_name(loc)}",
                         "type": "Region"} for loc in regions])

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
