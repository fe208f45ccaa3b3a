"""The virtual-node subnet: choose, validate, create and delegate it, and delete it on disable.

Subnets are read and written through the generic ARM resources client (azure-cli ships no
azure-mgmt-network), with wire-format bodies so nothing is lost between GET and PUT.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from azure.cli.core.azclierror import InvalidArgumentValueError, ValidationError

from azext_virtualnode._consts import ACI_DELEGATION, NETWORK_API_VERSION

MIN_PREFIX_LENGTH = 28          # ACI needs room for its own addresses; a /29 leaves 3 usable
DEFAULT_PREFIX_LENGTHS = (20, 22, 24)   # /20: above the 3,000 container groups a subnet can hold
AZURE_RESERVED_ADDRESSES = 5    # network, gateway, 2 DNS, broadcast


def parse_cidr(cidr: str) -> ipaddress.IPv4Network:
    if "/" not in cidr:
        raise InvalidArgumentValueError(
            f"--subnet-cidr '{cidr}' is not a valid IPv4 CIDR block: the prefix length is missing. "
            "Example: --subnet-cidr 10.241.0.0/16")
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise InvalidArgumentValueError(
            f"--subnet-cidr '{cidr}' is not a valid IPv4 CIDR block ({exc}). Example: --subnet-cidr 10.241.0.0/16"
        ) from exc
    if not isinstance(net, ipaddress.IPv4Network):
        raise InvalidArgumentValueError(f"--subnet-cidr '{cidr}' is IPv6; virtual nodes support IPv4 only.")
    if net.prefixlen > MIN_PREFIX_LENGTH:
        raise InvalidArgumentValueError(
            f"--subnet-cidr '{cidr}' is too small for Azure Container Instances: use a /{MIN_PREFIX_LENGTH} or "
            f"larger block (a /24 or bigger is recommended).")
    return net


def subnet_prefixes(subnet: dict[str, Any]) -> list[ipaddress.IPv4Network]:
    props = subnet.get("properties") or {}
    raw = props.get("addressPrefixes") or ([props["addressPrefix"]] if props.get("addressPrefix") else [])
    return [ipaddress.ip_network(p, strict=False) for p in raw]


def vnet_spaces(vnet: dict[str, Any]) -> list[ipaddress.IPv4Network]:
    space = (vnet.get("properties") or {}).get("addressSpace") or {}
    return [ipaddress.ip_network(p, strict=False) for p in space.get("addressPrefixes") or []]


def check_cidr_fits(cidr: ipaddress.IPv4Network, vnet: dict[str, Any],
                    reserved: Iterable[ipaddress.IPv4Network] = ()) -> None:
    """Raise when ``cidr`` lies outside the VNet's address space or overlaps a subnet or a cluster range."""
    spaces = vnet_spaces(vnet)
    if not any(cidr.subnet_of(space) for space in spaces):
        raise InvalidArgumentValueError(
            f"--subnet-cidr {cidr} is outside the address space of virtual network '{vnet['name']}' "
            f"({', '.join(map(str, spaces))}). Choose a block inside it, or omit --subnet-cidr to pick a free one.")
    for subnet in (vnet.get("properties") or {}).get("subnets") or []:
        for prefix in subnet_prefixes(subnet):
            if cidr.overlaps(prefix):
                raise InvalidArgumentValueError(
                    f"--subnet-cidr {cidr} overlaps subnet '{subnet['name']}' ({prefix}) of virtual network "
                    f"'{vnet['name']}'. Choose a free block, or omit --subnet-cidr to pick one.")
    for prefix in reserved:
        if cidr.overlaps(prefix):
            raise InvalidArgumentValueError(
                f"--subnet-cidr {cidr} overlaps the cluster's service/pod address range {prefix}; pods in ACI could "
                "not reach cluster services. Choose a block outside it, or omit --subnet-cidr to pick one.")


def first_free_block(vnet: dict[str, Any], lengths: Iterable[int] = DEFAULT_PREFIX_LENGTHS,
                     reserved: Iterable[ipaddress.IPv4Network] = ()) -> ipaddress.IPv4Network | None:
    """The lowest block of the largest preferred size that overlaps no subnet and no reserved cluster range."""
    used = [p for s in (vnet.get("properties") or {}).get("subnets") or [] for p in subnet_prefixes(s)]
    used += list(reserved)
    for length in lengths:
        for space in vnet_spaces(vnet):
            if space.prefixlen > length:
                continue
            candidate = _scan(space, length, used)
            if candidate is not None:
                return candidate
    return None


def _scan(space: ipaddress.IPv4Network, length: int, used: list[ipaddress.IPv4Network]
          ) -> ipaddress.IPv4Network | None:
    """Walk ``space`` in blocks of ``length``, jumping past used ranges (fast even for a /8)."""
    size = 2 ** (32 - length)
    addr = int(space.network_address)
    end = int(space.broadcast_address)
    while addr + size - 1 <= end:
        block = ipaddress.ip_network((addr, length))
        clash = [u for u in used if block.overlaps(u)]
        if not clash:
            return block
        last = max(int(u.broadcast_address) for u in clash)
        addr = ((last + 1 + size - 1) // size) * size
    return None


def usable_addresses(prefix: ipaddress.IPv4Network) -> int:
    return max(0, prefix.num_addresses - AZURE_RESERVED_ADDRESSES)


@dataclass
class SubnetFacts:
    """What the checks need to know about an existing subnet."""
    id: str
    name: str
    prefixes: list[ipaddress.IPv4Network]
    delegations: list[str]
    route_table: str | None
    ip_configurations: int
    service_association_links: int

    @classmethod
    def of(cls, subnet: dict[str, Any]) -> "SubnetFacts":
        props = subnet.get("properties") or {}
        return cls(subnet["id"], subnet["name"], subnet_prefixes(subnet),
                   [(d.get("properties") or {}).get("serviceName", "") for d in props.get("delegations") or []],
                   (props.get("routeTable") or {}).get("id"), len(props.get("ipConfigurations") or []),
                   len(props.get("serviceAssociationLinks") or []))

    @property
    def delegated_to_aci(self) -> bool:
        return any(d.lower() == ACI_DELEGATION.lower() for d in self.delegations)

    @property
    def foreign_delegations(self) -> list[str]:
        return [d for d in self.delegations if d.lower() != ACI_DELEGATION.lower()]


def check_existing_subnet(facts: SubnetFacts, cidr: ipaddress.IPv4Network | None, vnet_name: str) -> None:
    """Raise unless the existing subnet can host the virtual node (reference: subnet rules)."""
    where = f"Subnet '{facts.name}' of virtual network '{vnet_name}'"
    if facts.ip_configurations:
        raise ValidationError(
            f"{where} is used by {facts.ip_configurations} other resource(s) (e.g. the node pool's network "
            "interfaces). The virtual node needs a dedicated, empty subnet: pass another --subnet-name (it will be "
            "created), e.g. --subnet-name virtual-node-aci.")
    if facts.route_table:
        raise ValidationError(
            f"{where} references the route table '{facts.route_table}', so it cannot be delegated to Azure "
            "Container Instances. Remove it with 'az network vnet subnet update --ids "
            f"{facts.id} --route-table \"\"' or choose another --subnet-name.")
    if facts.foreign_delegations:
        raise ValidationError(
            f"{where} is delegated to {', '.join(facts.foreign_delegations)}; the virtual node needs it delegated "
            f"to {ACI_DELEGATION}. Choose another --subnet-name, or remove the delegation with "
            f"'az network vnet subnet update --ids {facts.id} --remove delegations'.")
    if cidr is not None and cidr not in facts.prefixes:
        raise InvalidArgumentValueError(
            f"{where} already exists with prefix {', '.join(map(str, facts.prefixes))}, not {cidr}. Omit "
            "--subnet-cidr to use it as it is, or choose another --subnet-name.")


def subnet_body(existing: dict[str, Any] | None, cidr: ipaddress.IPv4Network | None) -> dict[str, Any]:
    """Wire-format PUT body: the existing subnet with the ACI delegation added, or a new delegated subnet."""
    props: dict[str, Any] = dict((existing or {}).get("properties") or {})
    for read_only in ("provisioningState", "ipConfigurations", "serviceAssociationLinks", "purpose",
                      "resourceNavigationLinks", "ipConfigurationProfiles", "privateEndpoints"):
        props.pop(read_only, None)
    if existing is None:
        assert cidr is not None
        props["addressPrefix"] = str(cidr)
    delegations = list(props.get("delegations") or [])
    if not any((d.get("properties") or {}).get("serviceName", "").lower() == ACI_DELEGATION.lower()
               for d in delegations):
        delegations.append({"name": "aciDelegation", "properties": {"serviceName": ACI_DELEGATION}})
    props["delegations"] = delegations
    return {"properties": props}


class SubnetClient:
    """GET/PUT/DELETE of VNets and subnets by resource ID through the generic resources client."""

    def __init__(self, resources: Any) -> None:
        self._resources = resources

    def get(self, resource_id: str) -> dict[str, Any] | None:
        """The resource in wire format, with its ``etag`` (which the generic model drops) from the ETag header."""
        from azure.core.exceptions import ResourceNotFoundError

        def with_etag(pipeline_response: Any, deserialized: Any, _headers: Any) -> Any:
            out = deserialized.as_dict() if hasattr(deserialized, "as_dict") else deserialized
            etag = pipeline_response.http_response.headers.get("ETag")
            if etag and isinstance(out, dict):
                out.setdefault("etag", etag)
            return out
        try:
            return self._resources.get_by_id(resource_id, NETWORK_API_VERSION, cls=with_etag)
        except ResourceNotFoundError:
            return None

    def put(self, resource_id: str, body: dict[str, Any], etag: str | None = None, create: bool = False) -> Any:
        """PUT with ``If-Match: etag`` (an update of what was read) or ``If-None-Match: *`` (``create``)."""
        from azext_virtualnode.lro import poll_interval
        headers = {"If-Match": etag} if etag else ({"If-None-Match": "*"} if create else {})
        return self._resources.begin_create_or_update_by_id(resource_id, NETWORK_API_VERSION, body,
                                                            headers=headers, polling_interval=poll_interval())

    def ensure_delegated(self, resource_id: str, body: dict[str, Any], etag: str | None,
                         recheck: Callable[[dict[str, Any]], None],
                         wait: Callable[[Any], Any] | None = None) -> None:
        """Write the planned subnet ``body`` without losing a concurrent change to the subnet.

        ``etag`` is the subnet's as read (None: the subnet is new). On 412 the subnet is read again; ``recheck``
        validates it (raising if it can no longer be used), and only the ACI delegation is re-applied to it.
        ``wait(poller)`` waits for each write (default: ``poller.result()``).
        """
        from azext_virtualnode.lro import write_with_etag
        new_body = body

        def write(state: tuple[dict[str, Any] | None, str | None]) -> None:
            payload, tag = state
            if payload is not None:
                poller = self.put(resource_id, payload, etag=tag, create=tag is None)
                if wait is not None:
                    wait(poller)
                else:
                    poller.result()

        def reread() -> tuple[dict[str, Any] | None, str | None]:
            current = self.get(resource_id)
            if current is None:
                return new_body, None
            recheck(current)
            facts = SubnetFacts.of(current)
            return (None if facts.delegated_to_aci else subnet_body(current, None)), current.get("etag")

        write_with_etag((body, etag), write, reread, f"Subnet '{resource_id.rsplit('/', 1)[-1]}'")

    # pylint: disable-next=too-many-positional-arguments
    def delete_with_retry(self, resource_id: str, deadline: float, sleep: Callable[[float], None] = time.sleep,
                          on_wait: Callable[[str], None] | None = None,
                          wait: Callable[[Any], Any] | None = None) -> None:
        """Delete, retrying while ACI still holds the subnet (``InUseSubnetCannotBeDeleted``) until ``deadline``.
        ``wait(poller)`` waits for the delete operation (default: ``poller.result()``)."""
        from azure.core.exceptions import HttpResponseError
        delay = 2.0
        while True:
            try:
                from azext_virtualnode.lro import poll_interval
                poller = self._resources.begin_delete_by_id(resource_id, NETWORK_API_VERSION,
                                                            polling_interval=poll_interval())
                if wait is not None:
                    wait(poller)
                else:
                    poller.result()
                return
            except HttpResponseError as exc:
                code = getattr(getattr(exc, "error", None), "code", "") or ""
                if code != "InUseSubnetCannotBeDeleted" or time.monotonic() + delay > deadline:
                    raise
                if on_wait:
                    on_wait(f"subnet still in use by Azure Container Instances; retrying in {delay:.0f}s")
                sleep(delay)
                delay = min(delay * 2, 30.0)
