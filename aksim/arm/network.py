"""Microsoft.Network: virtual networks, subnets, route tables, network security groups, NAT gateways.

Subnets are stored as resources of their own (``.../virtualNetworks/{v}/subnets/{s}``); a VNet GET embeds
them. Subnet writes are validated as the Network RP does (CIDR format, inside the VNet, no overlap, no
delegation change or prefix removal while something uses the subnet) and answered as LROs.

Which addresses of a subnet are taken is kept beside the ARM state (Azure reserves the first four and the
last address of every prefix); ``allocate_ip``/``release_ip`` are used by the container-group side.
"""
from __future__ import annotations

import copy
import ipaddress
import uuid
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterable, Union

from aksim.arm import authorization
from aksim.arm.common import check_preconditions, etag_header, name_of, not_found, ok_list, require_api_version
from aksim.arm.provider import ProviderApi
from aksim.arm.resources import require_resource_group
from aksim.httpcore import HttpError, Request, Response

if TYPE_CHECKING:
    from aksim.context import SimContext
    from aksim.world import World

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

NS = "Microsoft.Network"
VNET_TYPE = "Microsoft.Network/virtualNetworks"
SUBNET_TYPE = "Microsoft.Network/virtualNetworks/subnets"
DELEGATION_TYPE = "Microsoft.Network/virtualNetworks/subnets/delegations"
SAL_TYPE = "Microsoft.Network/virtualNetworks/subnets/serviceAssociationLinks"
ROUTE_TABLE_TYPE = "Microsoft.Network/routeTables"
NSG_TYPE = "Microsoft.Network/networkSecurityGroups"
NAT_TYPE = "Microsoft.Network/natGateways"
ACI_SERVICE = "Microsoft.ContainerInstance/containerGroups"
ACI_SAL_NAME = "acisal"            # the link's name as the Network RP shows it
ACI_DELEGATION_NAME = "aciDelegation"
DELEGATION_ACTIONS = ["Microsoft.Network/virtualNetworks/subnets/action"]
RESERVED_LOW, RESERVED_HIGH = 4, 1  # Azure keeps x.x.x.0-3 and the broadcast address of every prefix

RG = "/subscriptions/{sub}/resourcegroups/{rg}"
VNETS = RG + "/providers/Microsoft.Network/virtualNetworks"
VNET = VNETS + "/{vnet}"
SUBNET = VNET + "/subnets/{subnet}"

# Read-only subnet properties: whatever a client sends for them is ignored.
_SUBNET_READONLY = ("provisioningState", "ipConfigurations", "ipConfigurationProfiles", "serviceAssociationLinks",
                    "resourceNavigationLinks", "privateEndpoints", "purpose")

# Taken addresses (as integers) per lower-cased subnet ID, per world.
_ALLOCATED: "weakref.WeakKeyDictionary[World, dict[str, set[int]]]" = weakref.WeakKeyDictionary()


# -- pure address logic -------------------------------------------------------------------------------
def parse_prefix(prefix: str, resource_id: str) -> Network:
    """A CIDR prefix as the Network RP accepts it: ``a.b.c.d/n`` with no host bits set."""
    try:
        if "/" not in prefix:
            raise ValueError(prefix)
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        raise HttpError(400, "InvalidAddressPrefixFormat",
                        f"Address prefix {prefix} of resource {resource_id} is not formatted correctly. "
                        "It should follow CIDR notation, for example 10.0.0.0/24.") from None
    if ipaddress.ip_interface(prefix).ip != net.network_address:
        raise HttpError(400, "InvalidCIDRNotation",
                        f"The address prefix {prefix} in resource {resource_id} has an invalid CIDR notation. "
                        f"For the given prefix length, the address prefix should be {net}.")
    return net


def _within(net: Network, space: Iterable[Network]) -> bool:
    return any(net.version == s.version and net.subnet_of(s) for s in space)  # type: ignore[arg-type]


def _overlaps(a: Iterable[Network], b: Iterable[Network]) -> bool:
    return any(x.version == y.version and x.overlaps(y) for x in a for y in b)  # type: ignore[arg-type]


def check_subnet_ranges(subnet: str, vnet: str, prefixes: list[Network], space: list[Network],
                        siblings: Iterable[list[Network]]) -> None:
    """Raise the Network RP's error when ``prefixes`` leave the VNet space or overlap a sibling subnet."""
    if not prefixes:
        raise HttpError(400, "InvalidRequestFormat",
                        f"Subnet '{subnet}' must have an address prefix (addressPrefix or addressPrefixes).")
    if not all(_within(p, space) for p in prefixes):
        raise HttpError(400, "NetcfgSubnetRangeOutsideVnet",
                        f"Subnet '{subnet}' is not valid because its IP address range is outside the IP address "
                        f"range of virtual network '{vnet}'.")
    if any(_overlaps(prefixes, other) for other in siblings):
        raise HttpError(400, "NetcfgSubnetRangesOverlap",
                        f"Subnet '{subnet}' is not valid because its IP address range overlaps with that of an "
                        f"existing subnet in virtual network '{vnet}'.")


def usable_hosts(net: Network) -> range:
    """Indexes (into ``net``) of the addresses Azure hands out."""
    return range(RESERVED_LOW, max(RESERVED_LOW, net.num_addresses - RESERVED_HIGH))


# -- small helpers ------------------------------------------------------------------------------------
def _etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def subnet_prefixes(subnet: dict[str, Any]) -> list[str]:
    props = subnet.get("properties") or {}
    return list(props.get("addressPrefixes") or ([props["addressPrefix"]] if props.get("addressPrefix") else []))


def _nets(resource: dict[str, Any]) -> list[Network]:
    return [ipaddress.ip_network(p) for p in subnet_prefixes(resource)]


def delegated_services(resource: dict[str, Any]) -> list[str]:
    delegations = (resource.get("properties") or {}).get("delegations") or []
    return [(d.get("properties") or {}).get("serviceName") or "" for d in delegations]


def _allocations(world: "World", subnet_id: str) -> set[int]:
    return _ALLOCATED.setdefault(world, {}).setdefault(subnet_id.lower(), set())


def _vnet_of(subnet_id: str) -> str:
    return subnet_id.rsplit("/subnets/", 1)[0]


def _subnets_of(world: "World", vnet_id: str) -> list[dict[str, Any]]:
    return world.arm.children(vnet_id, SUBNET_TYPE)


def _require_subnet(world: "World", subnet_id: str) -> dict[str, Any]:
    subnet = world.arm.get(subnet_id)
    if subnet is None:
        raise HttpError(404, "NotFound", f"Resource {subnet_id} not found.")
    return subnet


def render_vnet(world: "World", vnet: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(vnet)
    out["properties"]["subnets"] = copy.deepcopy(_subnets_of(world, vnet["id"]))
    return out


def _render_linked(world: "World", res: dict[str, Any]) -> dict[str, Any]:
    """Route tables and NSGs list the subnets that reference them."""
    key = {ROUTE_TABLE_TYPE: "routeTable", NAT_TYPE: "natGateway"}.get(res["type"], "networkSecurityGroup")
    out = copy.deepcopy(res)
    out["properties"]["subnets"] = [{"id": s["id"]} for s in world.arm.of_type(SUBNET_TYPE)
                                    if ((s["properties"].get(key) or {}).get("id") or "").lower() == res["id"].lower()]
    return out


# -- subnet construction and validation ---------------------------------------------------------------
def _delegation(subnet_id: str, index: int, raw: dict[str, Any]) -> dict[str, Any]:
    name = raw.get("name") or str(index)
    service = (raw.get("properties") or {}).get("serviceName") or raw.get("serviceName") or ""
    return {"name": name, "id": f"{subnet_id}/delegations/{name}", "etag": _etag(), "type": DELEGATION_TYPE,
            "properties": {"provisioningState": "Succeeded", "serviceName": service,
                           "actions": list(DELEGATION_ACTIONS)}}


def build_subnet(vnet_id: str, name: str, props_in: dict[str, Any], existing: dict[str, Any] | None,
                 state: str = "Updating") -> dict[str, Any]:
    """The stored subnet: writable fields as given, read-only ones computed or carried over."""
    subnet_id = f"{vnet_id}/subnets/{name}"
    props = {k: copy.deepcopy(v) for k, v in props_in.items() if k not in _SUBNET_READONLY}
    props.setdefault("privateEndpointNetworkPolicies", "Disabled")
    props.setdefault("privateLinkServiceNetworkPolicies", "Enabled")
    props["delegations"] = [_delegation(subnet_id, i, d) for i, d in enumerate(props.get("delegations") or [])]
    old = (existing or {}).get("properties") or {}
    for key in ("ipConfigurations", "serviceAssociationLinks"):
        if old.get(key):
            props[key] = old[key]
    props["provisioningState"] = state
    return {"id": subnet_id, "name": name, "etag": _etag(), "type": SUBNET_TYPE, "properties": props}


def _check_references(world: "World", subnet_id: str, props: dict[str, Any]) -> None:
    for key in ("routeTable", "networkSecurityGroup", "natGateway"):
        ref = (props.get(key) or {}).get("id")
        if ref and world.arm.get(ref) is None:
            raise HttpError(400, "InvalidResourceReference",
                            f"Resource {ref} referenced by resource {subnet_id} was not found. Please make sure that "
                            "the referenced resource exists, and that both resources are in the same region.")


def _in_use_by(subnet: dict[str, Any]) -> str | None:
    """The ID of the first thing that uses the subnet (a NIC IP configuration or a service association link)."""
    props = subnet.get("properties") or {}
    for key in ("ipConfigurations", "serviceAssociationLinks"):
        if props.get(key):
            return props[key][0]["id"]
    return None


def _check_in_use_update(world: "World", old: dict[str, Any], new: dict[str, Any]) -> None:
    old_props = old["properties"]
    taken = _allocations(world, old["id"])
    for prefix in set(subnet_prefixes(old)) - set(subnet_prefixes(new)):
        net = ipaddress.ip_network(prefix)
        low, high = int(net.network_address), int(net.broadcast_address)
        if old_props.get("ipConfigurations") or any(low <= ip <= high for ip in taken):
            raise HttpError(400, "InUsePrefixCannotBeDeleted",
                            f"IpPrefix {prefix} on Subnet {old['name']} has active allocations and cannot be deleted.")
    before, after = delegated_services(old), delegated_services(new)
    if sorted(before) == sorted(after):
        return
    for link in old_props.get("serviceAssociationLinks") or []:
        required = link["properties"].get("linkedResourceType")
        if required not in after:
            raise HttpError(400, "SubnetMissingRequiredDelegation",
                            f"Subnet {old['id']} requires any of the following delegation(s) [{required}] to "
                            f"reference service association link {link['id']}.")
    user = _in_use_by(old)
    if user:
        raise HttpError(400, "SubnetDelegationsCannotChangeWhenSubnetUsedByResource",
                        f"Delegations of subnet {old['id']} cannot be changed from [{', '.join(before)}] to "
                        f"[{', '.join(after)}] because it is being used by the resource {user}.")


def validate_subnets(world: "World", vnet: dict[str, Any], new: list[dict[str, Any]],
                     others: list[dict[str, Any]]) -> None:
    """Validate ``new`` subnets of ``vnet`` against its address space, each other and the untouched ``others``."""
    space = [parse_prefix(p, vnet["id"]) for p in vnet["properties"]["addressSpace"]["addressPrefixes"]]
    for subnet in new:
        nets = [parse_prefix(p, subnet["id"]) for p in subnet_prefixes(subnet)]
        siblings = [_nets(s) for s in new + others if s["id"].lower() != subnet["id"].lower()]
        check_subnet_ranges(subnet["name"], vnet["name"], nets, space, siblings)
        _check_references(world, subnet["id"], subnet["properties"])
        existing = world.arm.get(subnet["id"])
        if existing is not None:
            _check_in_use_update(world, existing, subnet)


def _check_deletable(subnet: dict[str, Any]) -> None:
    user = _in_use_by(subnet)
    if user:
        raise HttpError(400, "InUseSubnetCannotBeDeleted",
                        f"Subnet {subnet['name']} is in use by {user} and cannot be deleted. In order to delete the "
                        "subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.")


def _forget_subnet(world: "World", subnet_id: str) -> None:
    world.arm.delete(subnet_id)
    _ALLOCATED.setdefault(world, {}).pop(subnet_id.lower(), None)


# -- helpers for the control plane and the seeder (call under sim.lock) -------------------------------
def subnet_ip_available(world: "World", subnet_id: str) -> int:
    subnet = _require_subnet(world, subnet_id)
    total = sum(len(usable_hosts(net)) for net in _nets(subnet))
    return total - len(_allocations(world, subnet_id))


def allocate_ip(world: "World", subnet_id: str) -> str | None:
    """Take the first free address of the subnet; None when it is full."""
    subnet = _require_subnet(world, subnet_id)
    taken = _allocations(world, subnet_id)
    for net in _nets(subnet):
        base = int(net.network_address)
        for index in usable_hosts(net):
            if base + index not in taken:
                taken.add(base + index)
                return str(net[index])
    return None


def release_ip(world: "World", subnet_id: str, ip: str) -> None:
    _allocations(world, subnet_id).discard(int(ipaddress.ip_address(ip)))


def _delegation_refusal(subnet: dict[str, Any], service: str) -> str | None:
    """Why the ACI provider cannot delegate this subnet (its own checks, then the Network RP's answer)."""
    name, props = subnet["name"], subnet["properties"]
    if props.get("routeTable"):
        return (f"unable to delegate subnet '{name}' to Azure Container Instance since it references the route "
                f"table '{props['routeTable']['id']}'.")
    links = props.get("serviceAssociationLinks") or []
    if links:
        return (f"unable to delegate subnet '{name}' to Azure Container Instance as it is used by other Azure "
                f"resource: '{links[0]['id']}'.")
    services = delegated_services(subnet)
    if services:
        return (f"unable to delegate subnet '{name}' to Azure Container Instance since it is delegated to "
                f"'{services[0]}'.")
    user = _in_use_by(subnet)
    if user:
        return (f"error creating subnet: Delegations of subnet {subnet['id']} cannot be changed from [] to "
                f"[{service}] because it is being used by the resource {user}.")
    return None


def delegate_subnet(world: "World", subnet_id: str, service: str = ACI_SERVICE) -> str | None:
    """Delegate the subnet as the ACI provider does before its first container group; the error text or None."""
    subnet = world.arm.get(subnet_id)
    if subnet is None:
        return (f"subnet '{name_of(subnet_id)}' is not found in vnet '{name_of(_vnet_of(subnet_id))}' and subnet "
                "CIDR is not specified")
    if service in delegated_services(subnet):
        return None
    refusal = _delegation_refusal(subnet, service)
    if refusal is None:
        subnet["properties"]["delegations"] = [
            _delegation(subnet["id"], 0, {"name": ACI_DELEGATION_NAME, "properties": {"serviceName": service}})]
        subnet["etag"] = _etag()
    return refusal


def add_service_association_link(world: "World", subnet_id: str) -> None:
    """What the ACI RP leaves on a subnet once it placed a container group there (idempotent)."""
    subnet = _require_subnet(world, subnet_id)
    links = subnet["properties"].setdefault("serviceAssociationLinks", [])
    if any(link["properties"].get("linkedResourceType") == ACI_SERVICE for link in links):
        return
    links.append({"name": ACI_SAL_NAME, "id": f"{subnet['id']}/serviceAssociationLinks/{ACI_SAL_NAME}",
                  "etag": _etag(), "type": SAL_TYPE,
                  "properties": {"provisioningState": "Succeeded", "linkedResourceType": ACI_SERVICE,
                                 "link": aci_sal_id(subnet["id"]), "allowDelete": False, "locations": []}})
    subnet["etag"] = _etag()


def remove_service_association_link(world: "World", subnet_id: str) -> None:
    subnet = world.arm.get(subnet_id)
    if subnet is None:
        return
    links = subnet["properties"].get("serviceAssociationLinks") or []
    kept = [link for link in links if link["properties"].get("linkedResourceType") != ACI_SERVICE]
    if kept:
        subnet["properties"]["serviceAssociationLinks"] = kept
    else:
        subnet["properties"].pop("serviceAssociationLinks", None)
    subnet["etag"] = _etag()


def aci_sal_id(subnet_id: str) -> str:
    """The ACI RP's handle on its link, the ID the docs' teardown deletes."""
    return f"{subnet_id}/providers/Microsoft.ContainerInstance/serviceAssociationLinks/default"


def _simple(resource_group_id: str, rtype: str, name: str, location: str, props: dict[str, Any],
            tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": f"{resource_group_id}/providers/{rtype}/{name}", "name": name, "type": rtype, "location": location,
            "tags": tags or {}, "etag": _etag(),
            "properties": {**props, "provisioningState": "Succeeded", "resourceGuid": str(uuid.uuid4())}}


def seed_route_table(world: "World", resource_group_id: str, location: str, name: str) -> dict[str, Any]:
    existing = world.arm.get(f"{resource_group_id}/providers/{ROUTE_TABLE_TYPE}/{name}")
    return existing or world.arm.put(_simple(resource_group_id, ROUTE_TABLE_TYPE, name, location,
                                             {"disableBgpRoutePropagation": False, "routes": []}))


def nat_gateway_body(resource_group_id: str, name: str, location: str, props: dict[str, Any],
                     sku: dict[str, Any] | None, tags: dict[str, str] | None = None,
                     zones: list[str] | None = None) -> dict[str, Any]:
    """A NAT gateway as the Network RP stores it; only the Standard SKU exists."""
    name_sku = (sku or {}).get("name") or "Standard"
    if name_sku != "Standard":
        raise HttpError(400, "InvalidNatGatewaySku",
                        f"NAT gateway {resource_group_id}/providers/{NAT_TYPE}/{name} has an invalid SKU "
                        f"'{name_sku}'. The only supported SKU is 'Standard'.")
    writable = ("idleTimeoutInMinutes", "publicIpAddresses", "publicIpPrefixes")
    kept = {k: copy.deepcopy(v) for k, v in props.items() if k in writable}
    kept.setdefault("idleTimeoutInMinutes", 4)
    res = _simple(resource_group_id, NAT_TYPE, name, location, kept, tags)
    res["sku"] = {"name": "Standard", "tier": "Regional"}
    if zones:
        res["zones"] = list(zones)
    return res


def seed_nat_gateway(world: "World", resource_group_id: str, location: str, spec: Any) -> dict[str, Any]:
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    existing = world.arm.get(f"{resource_group_id}/providers/{NAT_TYPE}/{spec['name']}")
    props = {"idleTimeoutInMinutes": int(spec.get("idle_timeout", 4))}
    return existing or world.arm.put(nat_gateway_body(resource_group_id, spec["name"], location, props, None,
                                                      zones=spec.get("zones")))


def seed_nsg(world: "World", resource_group_id: str, location: str, name: str) -> dict[str, Any]:
    existing = world.arm.get(f"{resource_group_id}/providers/{NSG_TYPE}/{name}")
    return existing or world.arm.put(_simple(resource_group_id, NSG_TYPE, name, location,
                                             {"securityRules": [], "defaultSecurityRules": []}))


def _seed_subnet(resource_group_id: str, vnet_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {"addressPrefix": spec["prefix"]}
    if spec.get("route_table"):
        props["routeTable"] = {"id": f"{resource_group_id}/providers/{ROUTE_TABLE_TYPE}/{spec['route_table']}"}
    if spec.get("nsg"):
        props["networkSecurityGroup"] = {"id": f"{resource_group_id}/providers/{NSG_TYPE}/{spec['nsg']}"}
    if spec.get("nat_gateway"):
        props["natGateway"] = {"id": f"{resource_group_id}/providers/{NAT_TYPE}/{spec['nat_gateway']}"}
    if spec.get("delegation"):
        props["delegations"] = [{"name": "delegation", "properties": {"serviceName": spec["delegation"]}}]
    subnet = build_subnet(vnet_id, spec["name"], props, None, state="Succeeded")
    nics = int(spec.get("ip_configurations") or 0)
    if nics:
        subnet["properties"]["ipConfigurations"] = [
            {"id": f"{resource_group_id}/providers/Microsoft.Network/networkInterfaces/{spec['name']}-nic-{i}"
                   "/ipConfigurations/ipconfig1"} for i in range(nics)]
    return subnet


def seed_vnet(world: "World", resource_group_id: str, location: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Create a VNet and its subnets from a scenario entry; ``used_ips`` (at least one per NIC) are taken."""
    vnet = _simple(resource_group_id, VNET_TYPE, spec["name"], location,
                   {"addressSpace": {"addressPrefixes": list(spec["address_prefixes"])},
                    "virtualNetworkPeerings": [], "enableDdosProtection": False})
    subnets = [_seed_subnet(resource_group_id, vnet["id"], s) for s in spec.get("subnets") or []]
    try:
        validate_subnets(world, vnet, subnets, [])
    except HttpError as err:
        raise ValueError(f"scenario: VNet {spec['name']}: {err.message}") from err
    world.arm.put(vnet)
    for subnet, sub_spec in zip(subnets, spec.get("subnets") or []):
        world.arm.put(subnet)
        used = max(int(sub_spec.get("used_ips") or 0), int(sub_spec.get("ip_configurations") or 0))
        for _ in range(used):
            allocate_ip(world, subnet["id"])
    return vnet


# -- HTTP ---------------------------------------------------------------------------------------------
class _Api(ProviderApi):
    """Request handlers; each holds ``sim.lock`` while touching state."""

    def _rg(self, req: Request) -> dict[str, Any]:
        return require_resource_group(self.world, req.params["sub"], req.params["rg"])

    def _id(self, req: Request, rtype: str, name: str) -> str:
        rg = self._rg(req)
        existing = self.world.arm.get(f"{rg['id']}/providers/{rtype}/{name}")
        return existing["id"] if existing else f"{rg['id']}/providers/{rtype}/{name}"

    def _vnet(self, req: Request, parent: bool = False) -> dict[str, Any]:
        vnet = self.world.arm.get(self._id(req, VNET_TYPE, req.params["vnet"]))
        if vnet is None:
            if parent:
                raise HttpError(404, "ParentResourceNotFound",
                                f"Failed to perform 'write' on resource(s) of type 'virtualNetworks/subnets', because "
                                f"the parent resource '{self._id(req, VNET_TYPE, req.params['vnet'])}' could not be "
                                "found.")
            raise not_found(VNET_TYPE, req.params["vnet"], req.params["rg"])
        return vnet

    def _lro(self, req: Request, status: int, body: dict[str, Any] | None, location: str,
             complete: Callable[[], None], with_location: bool = False) -> Response:
        op = self.world.ops.start(req.params["sub"], NS, location, complete)
        headers = self.world.ops.headers(op, req.q("api-version"), location=with_location)
        if body is not None and body.get("etag"):
            headers.update(etag_header(body))
        return Response(status, copy.deepcopy(body), headers)

    def _settle(self, resource_id: str) -> Callable[[], None]:
        world = self.world

        def done() -> None:
            res = world.arm.get(resource_id)
            if res is not None and res["properties"].get("provisioningState") == "Updating":
                res["properties"]["provisioningState"] = "Succeeded"
                if "etag" in res:
                    res["etag"] = _etag()   # every write, the service's own included, changes the eTag
        return done

    # virtual networks
    def get_vnet(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            return Response(200, render_vnet(self.world, self._vnet(req)))

    def list_vnets(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            rg = self._rg(req)
            vnets = self.world.arm.children(f"{rg['id']}/providers/{NS}", VNET_TYPE)
            return ok_list([render_vnet(self.world, v) for v in vnets])

    def list_all_vnets(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            vnets = self.world.arm.of_type(VNET_TYPE, f"/subscriptions/{req.params['sub']}/")
            return ok_list([render_vnet(self.world, v) for v in vnets])

    def put_vnet(self, req: Request) -> Response:
        require_api_version(req)
        body = req.json() or {}
        if not body.get("location"):
            raise HttpError(400, "LocationRequired", "The location property is required for this definition.")
        with self.sim.lock:
            world = self.world
            vnet_id = self._id(req, VNET_TYPE, req.params["vnet"])
            authorization.authorize(world, "Microsoft.Network/virtualNetworks/write", vnet_id)
            existing = world.arm.get(vnet_id)
            props = copy.deepcopy(body.get("properties") or {})
            subnet_specs = props.pop("subnets", None) or []
            props.setdefault("addressSpace", {}).setdefault("addressPrefixes", [])
            vnet = {"id": vnet_id, "name": name_of(vnet_id), "type": VNET_TYPE, "location": body["location"],
                    "tags": body.get("tags") or {}, "etag": _etag(),
                    "properties": {"virtualNetworkPeerings": [], "enableDdosProtection": False, **props,
                                   "provisioningState": "Updating",
                                   "resourceGuid": (existing or {}).get("properties", {}).get("resourceGuid")
                                   or str(uuid.uuid4())}}
            current = {s["name"].lower(): s for s in _subnets_of(world, vnet_id)}
            subnets = [build_subnet(vnet_id, s["name"], s.get("properties") or {}, current.get(s["name"].lower()))
                       for s in subnet_specs]
            kept = {s["name"].lower() for s in subnets}
            dropped = [s for key, s in current.items() if key not in kept]
            validate_subnets(world, vnet, subnets, [])
            for subnet in dropped:
                _check_deletable(subnet)
            for subnet in dropped:
                _forget_subnet(world, subnet["id"])
            world.arm.put(vnet)
            for subnet in subnets:
                world.arm.put(subnet)
            settles = [self._settle(vnet_id)] + [self._settle(s["id"]) for s in subnets]

            def settle_all() -> None:
                for settle in settles:
                    settle()
            return self._lro(req, 200 if existing else 201, render_vnet(world, vnet), vnet["location"], settle_all)

    def delete_vnet(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            world = self.world
            vnet_id = self._id(req, VNET_TYPE, req.params["vnet"])
            vnet = world.arm.get(vnet_id)
            if vnet is None:
                return Response(204)
            authorization.authorize(world, "Microsoft.Network/virtualNetworks/delete", vnet_id)
            subnets = _subnets_of(world, vnet_id)
            for subnet in subnets:
                _check_deletable(subnet)
            vnet["properties"]["provisioningState"] = "Deleting"

            def gone() -> None:
                for subnet in subnets:
                    _forget_subnet(world, subnet["id"])
                world.arm.delete(vnet_id)
            return self._lro(req, 202, None, vnet["location"], gone, with_location=True)

    # subnets
    def get_subnet(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            vnet = self._vnet(req)
            subnet = _require_subnet(self.world, f"{vnet['id']}/subnets/{req.params['subnet']}")
            return Response(200, copy.deepcopy(subnet), etag_header(subnet))

    def list_subnets(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            return ok_list(copy.deepcopy(_subnets_of(self.world, self._vnet(req)["id"])))

    def put_subnet(self, req: Request) -> Response:
        require_api_version(req)
        body = req.json() or {}
        with self.sim.lock:
            world = self.world
            vnet = self._vnet(req, parent=True)
            existing = world.arm.get(f"{vnet['id']}/subnets/{req.params['subnet']}")
            check_preconditions(req, (existing or {}).get("etag"), existing is not None)
            name = existing["name"] if existing else req.params["subnet"]
            subnet = build_subnet(vnet["id"], name, body.get("properties") or {}, existing)
            authorization.authorize(world, "Microsoft.Network/virtualNetworks/subnets/write", subnet["id"])
            others = [s for s in _subnets_of(world, vnet["id"]) if s["id"].lower() != subnet["id"].lower()]
            validate_subnets(world, vnet, [subnet], others)
            world.arm.put(subnet)
            return self._lro(req, 200 if existing else 201, subnet, vnet["location"], self._settle(subnet["id"]))

    def delete_subnet(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            world = self.world
            self._rg(req)
            vnet = world.arm.get(self._id(req, VNET_TYPE, req.params["vnet"]))
            subnet = world.arm.get(f"{vnet['id']}/subnets/{req.params['subnet']}") if vnet else None
            if vnet is None or subnet is None:
                return Response(204)
            authorization.authorize(world, "Microsoft.Network/virtualNetworks/subnets/delete", subnet["id"])
            _check_deletable(subnet)
            subnet["properties"]["provisioningState"] = "Deleting"
            return self._lro(req, 202, None, vnet["location"], lambda: _forget_subnet(world, subnet["id"]),
                             with_location=True)

    # service association links
    def list_sals(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            vnet = self._vnet(req)
            subnet = _require_subnet(self.world, f"{vnet['id']}/subnets/{req.params['subnet']}")
            return ok_list(copy.deepcopy(subnet["properties"].get("serviceAssociationLinks") or []))

    def _aci_sal(self, req: Request) -> tuple[dict[str, Any], dict[str, Any]] | None:
        vnet = self.world.arm.get(self._id(req, VNET_TYPE, req.params["vnet"]))
        subnet = self.world.arm.get(f"{vnet['id']}/subnets/{req.params['subnet']}") if vnet else None
        links = (subnet or {}).get("properties", {}).get("serviceAssociationLinks") or []
        link = next((lk for lk in links if lk["properties"].get("linkedResourceType") == ACI_SERVICE), None)
        if subnet is None or link is None or req.params["sal"].lower() != "default":
            return None
        return subnet, link

    def get_aci_sal(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            found = self._aci_sal(req)
            if found is None:
                raise not_found("Microsoft.ContainerInstance/serviceAssociationLinks", req.params["sal"],
                                req.params["rg"])
            subnet, link = found
            return Response(200, {"id": aci_sal_id(subnet["id"]), "name": "default",
                                  "type": "Microsoft.ContainerInstance/serviceAssociationLinks",
                                  "properties": {"provisioningState": "Succeeded", "link": link["id"]}})

    def delete_aci_sal(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            world = self.world
            found = self._aci_sal(req)
            if found is None:
                return Response(204)
            subnet, _ = found
            groups = [g["name"] for g in world.arm.of_type(ACI_SERVICE)
                      if any(s["id"].lower() == subnet["id"].lower() for s in g["properties"].get("subnetIds") or [])]
            if groups:
                raise HttpError(409, "ServiceAssociationLinkInUse",
                                f"The service association link of subnet '{subnet['id']}' cannot be deleted because "
                                f"the subnet is used by container group(s) {', '.join(sorted(groups))}.")
            remove_service_association_link(world, subnet["id"])
            return Response(200)

    # route tables and network security groups
    def get_simple(self, rtype: str) -> Callable[[Request], Response]:
        def handler(req: Request) -> Response:
            require_api_version(req)
            with self.sim.lock:
                res = self.world.arm.get(self._id(req, rtype, req.params["name"]))
                if res is None:
                    raise not_found(rtype, req.params["name"], req.params["rg"])
                return Response(200, _render_linked(self.world, res))
        return handler

    def list_simple(self, rtype: str) -> Callable[[Request], Response]:
        def handler(req: Request) -> Response:
            require_api_version(req)
            with self.sim.lock:
                rg = self._rg(req)
                return ok_list([_render_linked(self.world, r)
                                for r in self.world.arm.children(f"{rg['id']}/providers/{NS}", rtype)])
        return handler

    def put_located(self, req: Request, rtype: str,
                    build: Callable[[dict[str, Any], str, dict[str, Any], dict[str, Any] | None], dict[str, Any]]
                    ) -> Response:
        """PUT of a resource-group resource that needs a location: authorize, ``build(rg, id, body, existing)``
        (which may refuse), store it Updating and answer with the long-running operation."""
        require_api_version(req)
        body = req.json() or {}
        if not body.get("location"):
            raise HttpError(400, "LocationRequired", "The location property is required for this definition.")
        with self.sim.lock:
            rg = self._rg(req)
            res_id = self._id(req, rtype, req.params["name"])
            authorization.authorize(self.world, f"{rtype}/write", res_id)
            existing = self.world.arm.get(res_id)
            res = build(rg, res_id, body, existing)
            res["properties"]["provisioningState"] = "Updating"
            self.world.arm.put(res)
            return self._lro(req, 200 if existing else 201, _render_linked(self.world, res), res["location"],
                             self._settle(res_id))

    def put_simple(self, rtype: str) -> Callable[[Request], Response]:
        def build(rg: dict[str, Any], res_id: str, body: dict[str, Any], _existing: Any) -> dict[str, Any]:
            props = {k: v for k, v in (body.get("properties") or {}).items() if k != "subnets"}
            return _simple(rg["id"], rtype, name_of(res_id), body["location"], props, body.get("tags"))
        return lambda req: self.put_located(req, rtype, build)


class _NatApi(_Api):
    """NAT gateways: a subnet points at one with ``natGateway.id``; one in use cannot be deleted."""

    def put(self, req: Request) -> Response:
        def build(rg: dict[str, Any], res_id: str, body: dict[str, Any], existing: Any) -> dict[str, Any]:
            check_preconditions(req, (existing or {}).get("etag"), existing is not None)
            res = nat_gateway_body(rg["id"], name_of(res_id), body["location"], body.get("properties") or {},
                                   body.get("sku"), body.get("tags"), body.get("zones"))
            if existing:
                res["properties"]["resourceGuid"] = existing["properties"].get("resourceGuid")
            return res
        return self.put_located(req, NAT_TYPE, build)

    def delete(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            res_id = self._id(req, NAT_TYPE, req.params["name"])
            res = self.world.arm.get(res_id)
            if res is None:
                return Response(204)
            authorization.authorize(self.world, f"{NAT_TYPE}/delete", res_id)
            users = [s["id"] for s in self.world.arm.of_type(SUBNET_TYPE)
                     if ((s["properties"].get("natGateway") or {}).get("id") or "").lower() == res_id.lower()]
            if users:
                raise HttpError(400, "InUseNatGatewayCannotBeDeleted",
                                f"Nat Gateway {res_id} is in use by subnet {users[0]} and cannot be deleted. "
                                "Remove the NAT gateway from the subnet first.")
            res["properties"]["provisioningState"] = "Deleting"
            world = self.world

            def gone() -> None:
                world.arm.delete(res_id)
            return self._lro(req, 202, None, res["location"], gone, with_location=True)

    def list_all(self, req: Request) -> Response:
        require_api_version(req)
        with self.sim.lock:
            return ok_list([_render_linked(self.world, r)
                            for r in self.world.arm.of_type(NAT_TYPE, f"/subscriptions/{req.params['sub']}/")])


def register(sim: "SimContext") -> None:
    api = _Api(sim)
    nat = _NatApi(sim)
    r = sim.arm_router
    r.add("GET", "/subscriptions/{sub}/providers/Microsoft.Network/virtualNetworks", api.list_all_vnets)
    r.add("GET", VNETS, api.list_vnets)
    r.add("GET", VNET, api.get_vnet)
    r.add("PUT", VNET, api.put_vnet)
    r.add("DELETE", VNET, api.delete_vnet)
    r.add("GET", VNET + "/subnets", api.list_subnets)
    r.add("GET", SUBNET, api.get_subnet)
    r.add("PUT", SUBNET, api.put_subnet)
    r.add("DELETE", SUBNET, api.delete_subnet)
    r.add("GET", SUBNET + "/serviceAssociationLinks", api.list_sals)
    aci_sal = SUBNET + "/providers/Microsoft.ContainerInstance/serviceAssociationLinks/{sal}"
    r.add("GET", aci_sal, api.get_aci_sal)
    r.add("DELETE", aci_sal, api.delete_aci_sal)
    for rtype, segment in ((ROUTE_TABLE_TYPE, "routeTables"), (NSG_TYPE, "networkSecurityGroups")):
        base = f"{RG}/providers/Microsoft.Network/{segment}"
        r.add("GET", base, api.list_simple(rtype))
        r.add("GET", base + "/{name}", api.get_simple(rtype))
        r.add("PUT", base + "/{name}", api.put_simple(rtype))
    nat_base = f"{RG}/providers/Microsoft.Network/natGateways"
    r.add("GET", "/subscriptions/{sub}/providers/Microsoft.Network/natGateways", nat.list_all)
    r.add("GET", nat_base, api.list_simple(NAT_TYPE))
    r.add("GET", nat_base + "/{name}", api.get_simple(NAT_TYPE))
    r.add("PUT", nat_base + "/{name}", nat.put)
    r.add("DELETE", nat_base + "/{name}", nat.delete)
