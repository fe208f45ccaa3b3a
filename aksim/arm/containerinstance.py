"""Microsoft.ContainerInstance/containerGroups as the virtual-node connector leaves them: one group per pod.

Groups are created by the control plane (``create_group``) from a Kubernetes pod, the way the
virtual-kubelet ACI provider maps it: containers, resource requests in cores/GB, a private IP in the
delegated subnet, and the pod's identity in tags. Clients can read, list and delete them.
"""
from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from aksim.arm import authorization, network
from aksim.arm.common import not_found, ok_list, require_api_version, utcnow
from aksim.arm.resources import require_resource_group
from aksim.httpcore import HttpError, Request, Response

if TYPE_CHECKING:
    from aksim.context import SimContext
    from aksim.world import World

CG_TYPE = "Microsoft.ContainerInstance/containerGroups"
DEFAULT_CPU, DEFAULT_MEMORY_GB = 1.0, 1.5   # what the provider asks for when a container requests nothing
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (``100m``, ``64Mi``, ``1.5``) as a plain number."""
    m = _QUANTITY.match(str(value).strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"bad quantity {value!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def _requests(container: dict[str, Any]) -> dict[str, float]:
    req = (container.get("resources") or {}).get("requests") or {}
    cpu = round(quantity(req["cpu"]), 2) if "cpu" in req else DEFAULT_CPU
    memory = round(quantity(req["memory"]) / 1e9, 1) if "memory" in req else DEFAULT_MEMORY_GB
    return {"cpu": max(cpu, 0.01), "memoryInGB": max(memory, 0.1)}


def _ports(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"port": p["containerPort"], "protocol": p.get("protocol", "TCP")} for p in container.get("ports") or []]


def _container(c: dict[str, Any], started: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "image": c["image"], "ports": _ports(c),
        "environmentVariables": [{"name": e["name"], "value": e.get("value", "")} for e in c.get("env") or []],
        "resources": {"requests": _requests(c)},
        "instanceView": {"restartCount": 0, "currentState": {"state": "Running", "startTime": started,
                                                             "detailStatus": ""}, "events": []},
        "volumeMounts": []}
    command = list(c.get("command") or []) + list(c.get("args") or [])
    if command:
        props["command"] = command
    return {"name": c["name"], "properties": props}


def group_body(resource_group_id: str, name: str, location: str, pod: dict[str, Any], subnet_id: str,
               ip: str) -> dict[str, Any]:
    meta, spec = pod["metadata"], pod["spec"]
    started = utcnow()
    containers = [_container(c, started) for c in spec["containers"]]
    return {"id": f"{resource_group_id}/providers/{CG_TYPE}/{name}", "name": name, "type": CG_TYPE,
            "location": location,
            "tags": {"PodName": meta["name"], "NodeName": spec.get("nodeName", ""), "Namespace": meta["namespace"],
                     "UID": meta.get("uid", ""), "CreationTimestamp": meta.get("creationTimestamp", started)},
            "properties": {"sku": "Standard", "provisioningState": "Succeeded", "containers": containers,
                           "initContainers": [], "restartPolicy": spec.get("restartPolicy", "Always"),
                           "ipAddress": {"type": "Private", "ip": ip,
                                         "ports": [p for c in containers for p in c["properties"]["ports"]]},
                           "osType": "Linux", "subnetIds": [{"id": subnet_id}],
                           "instanceView": {"events": [], "state": "Running"}}}


def _listed(group: dict[str, Any]) -> dict[str, Any]:
    """List answers carry no instance views (so ``az container list`` shows the provisioning state)."""
    out = copy.deepcopy(group)
    out["properties"].pop("instanceView", None)
    for c in out["properties"]["containers"]:
        c["properties"].pop("instanceView", None)
    return out


# -- helpers for the control plane (call under sim.lock) ----------------------------------------------
def create_group(world: "World", resource_group_id: str, name: str, location: str, pod: dict[str, Any],
                 subnet_id: str, ip: str) -> dict[str, Any]:
    """Store the group and, as ACI does, link the subnet; ``HttpError`` when the subnet is not delegated to ACI."""
    subnet = world.arm.get(subnet_id)
    if subnet is None or network.ACI_SERVICE not in network.delegated_services(subnet):
        raise HttpError(400, "SubnetMissingRequiredDelegation",
                        f"Subnet missing required delegation 'Microsoft.ContainerInstance' for container group "
                        f"'{name}'.")
    network.add_service_association_link(world, subnet_id)
    return world.arm.put(group_body(resource_group_id, name, location, pod, subnet_id, ip))


def delete_group(world: "World", group_id: str) -> dict[str, Any] | None:
    """Remove the group and give its IP back to the subnet; the service association link stays, as in Azure."""
    group = world.arm.delete(group_id)
    if group is not None:
        ip = group["properties"]["ipAddress"]["ip"]
        for ref in group["properties"].get("subnetIds") or []:
            network.release_ip(world, ref["id"], ip)
    return group


def groups_in(world: "World", resource_group_id: str) -> list[dict[str, Any]]:
    return world.arm.children(f"{resource_group_id}/providers/Microsoft.ContainerInstance", CG_TYPE)


def _arm_container(c: dict[str, Any]) -> dict[str, Any]:
    props = c.get("properties") or {}
    requests = ((props.get("resources") or {}).get("requests") or {})
    out = {k: copy.deepcopy(v) for k, v in props.items() if k != "instanceView"}
    out["resources"] = {"requests": {"cpu": float(requests.get("cpu", DEFAULT_CPU)),
                                     "memoryInGB": float(requests.get("memoryInGB", DEFAULT_MEMORY_GB))}}
    out.setdefault("ports", [])
    out.setdefault("environmentVariables", [])
    out["instanceView"] = {"restartCount": 0, "currentState": {"state": "Waiting", "detailStatus": "ContainerCreating"},
                           "events": []}
    return {"name": c.get("name", ""), "properties": out}


def group_from_request(world: "World", group_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """A container group as ``PUT`` creates it: ``Pending`` until its operation completes. With ``subnetIds`` the
    subnet must exist and be delegated to ACI; the group gets a private IP there and links the subnet."""
    props = body.get("properties") or {}
    if not body.get("location"):
        raise HttpError(400, "LocationRequired", "The location property is required for this definition.")
    containers = props.get("containers") or []
    if not containers or not all((c.get("properties") or {}).get("image") for c in containers):
        raise HttpError(400, "InvalidContainerGroupDefinition" if containers else "NoContainersInContainerGroup",
                        f"The container group '{group_id.rsplit('/', 1)[-1]}' must have at least one container "
                        "with an image.")
    name = group_id.rsplit("/", 1)[-1]
    stored: dict[str, Any] = {
        "id": group_id, "name": name, "type": CG_TYPE, "location": body["location"], "tags": body.get("tags") or {},
        "properties": {"sku": props.get("sku") or "Standard", "provisioningState": "Pending",
                       "containers": [_arm_container(c) for c in containers], "initContainers": [],
                       "restartPolicy": props.get("restartPolicy") or "Always",
                       "osType": props.get("osType") or "Linux",
                       "instanceView": {"events": [], "state": "Pending"}}}
    if body.get("zones"):
        stored["zones"] = list(body["zones"])
    subnets = props.get("subnetIds") or []
    ip_spec = props.get("ipAddress")
    if subnets:
        subnet_id = subnets[0]["id"]
        subnet = world.arm.get(subnet_id)
        if subnet is None:
            raise HttpError(400, "InvalidSubnetId" if "/subnets/" in subnet_id else "InvalidResourceId",
                            f"The subnet '{subnet_id}' of container group '{name}' was not found.")
        if network.ACI_SERVICE not in network.delegated_services(subnet):
            raise HttpError(400, "SubnetMissingRequiredDelegation",
                            f"Subnet missing required delegation 'Microsoft.ContainerInstance' for container group "
                            f"'{name}'.")
        ip = network.allocate_ip(world, subnet_id)
        if ip is None:
            raise HttpError(409, "SubnetIsFull", f"The subnet '{subnet_id}' has no free IP address for container "
                            f"group '{name}'.")
        network.add_service_association_link(world, subnet_id)
        stored["properties"]["subnetIds"] = [{"id": subnet["id"]}]
        stored["properties"]["ipAddress"] = {"type": "Private", "ip": ip,
                                             "ports": copy.deepcopy((ip_spec or {}).get("ports") or [])}
    elif ip_spec:
        stored["properties"]["ipAddress"] = {**copy.deepcopy(ip_spec), "ip": "20.50.0.4"}
    return stored


# -- HTTP ---------------------------------------------------------------------------------------------
def register(sim: "SimContext") -> None:
    def rg_id(req: Request) -> str:
        return require_resource_group(sim.world, req.params["sub"], req.params["rg"])["id"]

    def group(req: Request) -> dict[str, Any]:
        res = sim.world.arm.get(f"{rg_id(req)}/providers/{CG_TYPE}/{req.params['name']}")
        if res is None:
            raise not_found(CG_TYPE, req.params["name"], req.params["rg"])
        return res

    def get_group(req: Request) -> Response:
        require_api_version(req)
        with sim.lock:
            return Response(200, copy.deepcopy(group(req)))

    def list_in_rg(req: Request) -> Response:
        require_api_version(req)
        with sim.lock:
            return ok_list([_listed(g) for g in groups_in(sim.world, rg_id(req))])

    def list_in_sub(req: Request) -> Response:
        require_api_version(req)
        with sim.lock:
            return ok_list([_listed(g) for g in sim.world.arm.of_type(CG_TYPE, f"/subscriptions/{req.params['sub']}/")])

    def delete(req: Request) -> Response:
        require_api_version(req)
        with sim.lock:
            res = group(req)
            authorization.authorize(sim.world, f"{CG_TYPE}/delete", res["id"])
            return Response(200, copy.deepcopy(delete_group(sim.world, res["id"])))

    def put(req: Request) -> Response:
        """201 ``Pending`` + ``Azure-AsyncOperation``; the operation goes ``Pending`` -> ``Succeeded``."""
        version = require_api_version(req)
        body = req.json() or {}
        with sim.lock:
            world = sim.world
            group_id = f"{rg_id(req)}/providers/{CG_TYPE}/{req.params['name']}"
            authorization.authorize(world, f"{CG_TYPE}/write", group_id)
            existing = world.arm.get(group_id)
            new = group_from_request(world, group_id, body)
            if existing is not None:
                delete_group(world, group_id)
            stored = world.arm.put(new)

            def complete() -> dict[str, Any] | None:
                res = world.arm.get(group_id)
                if res is None:
                    return {"code": "ResourceNotFound", "message": f"Container group '{req.params['name']}' vanished."}
                started = utcnow()
                res["properties"]["provisioningState"] = "Succeeded"
                res["properties"]["instanceView"]["state"] = "Running"
                for c in res["properties"]["containers"]:
                    c["properties"]["instanceView"]["currentState"] = {"state": "Running", "startTime": started,
                                                                       "detailStatus": ""}
                return None

            op = world.ops.start(req.params["sub"], "Microsoft.ContainerInstance", body["location"], complete,
                                 delay=sim.timings.aci_create, status="Pending")
            return Response(200 if existing else 201, copy.deepcopy(stored), world.ops.headers(op, version))

    base = "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups"
    sim.arm_router.add("GET", "/subscriptions/{sub}/providers/Microsoft.ContainerInstance/containerGroups", list_in_sub)
    sim.arm_router.add("GET", base, list_in_rg)
    sim.arm_router.add("GET", base + "/{name}", get_group)
    sim.arm_router.add("PUT", base + "/{name}", put)
    sim.arm_router.add("DELETE", base + "/{name}", delete)
