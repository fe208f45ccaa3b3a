"""The ACI provider's pod controller: pods bound to a virtual node become container groups.

A pod bound to a node served by a healthy connector gets, after ``timings.aci_create``, a container group
``<namespace>-<pod>`` in the connector's ACI resource group with an address from its subnet. A failed create
leaves the pod with ``status.reason=ProviderFailed`` (Pending, or Failed with ``restartPolicy: Never``) and a
``ProviderCreateFailed`` event, and is never retried (virtual-kubelet/virtual-kubelet#1257). Deleting the pod
deletes its group while the connector runs; with the connector gone the group is orphaned until the add-on
is disabled. Removing the add-on removes the groups and the subnet's service association link.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aksim.arm import authorization, containerinstance, network
from aksim.controlplane import events
from aksim.controlplane.connector import GROUP_WRITE, SUBNET_JOIN, Connector, authorization_failed
from aksim.controlplane.podutil import Obj, is_active, key_of, mark_running, split_key
from aksim.httpcore import HttpError
from aksim.kube.store import DELETED

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime

PUBLIC_BASE = ipaddress.ip_address("20.50.0.0")     # groups outside a VNet get public addresses


@dataclass
class Group:
    id: str
    node: str


def _controller(node: str) -> str:
    return f"{node}/pod-controller"


class AciProvider:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp
        self._groups: dict[str, Group] = {}       # pod key -> its container group
        self._orphans: list[Group] = []           # groups whose pod went while no connector ran
        self._pending: set[str] = set()
        self._public = 0

    def on_pod(self, event_type: str, pod: Obj) -> None:
        key = key_of(pod)
        if event_type == DELETED:
            self._pending.discard(key)
            group = self._groups.pop(key, None)
            if group is not None:
                self._pod_gone(group)
            return
        if (pod.get("spec") or {}).get("nodeName") in self.cp.connectors.by_node:
            self._consider(key, pod)

    def resync(self, node: str) -> None:
        """A connector (re)registered ``node``: take over the pods already bound to it."""
        for pod in self.cp.store.list_page("pods", field_selector=f"spec.nodeName={node}").items:
            self._consider(key_of(pod), pod)

    def _consider(self, key: str, pod: Obj) -> None:
        status = pod.get("status") or {}
        if (key in self._groups or key in self._pending or not is_active(pod)
                or status.get("phase", "Pending") != "Pending" or status.get("reason") == "ProviderFailed"):
            return
        self._pending.add(key)
        self.cp.later(self.cp.timings.aci_create, lambda: self._create(key))

    # -- create ---------------------------------------------------------------------------------------
    def _create(self, key: str) -> None:
        self._pending.discard(key)
        namespace, name = split_key(key)
        pod = self.cp.store.get_ref("pods", namespace, name)
        node = ((pod or {}).get("spec") or {}).get("nodeName") or ""
        conn = self.cp.connectors.by_node.get(node)
        if pod is None or conn is None or key in self._groups or not is_active(pod):
            return
        assert conn.config is not None
        group_name = f"{namespace}-{name}"
        group_id = f"{conn.config.aci_resource_group_id}/providers/Microsoft.ContainerInstance/containerGroups/" \
                   f"{group_name}"
        error = self._admission(conn, pod, group_id)
        ip = None if error else self._address(conn)
        if error is None and ip is None:
            error = self._subnet_full(conn)
        if error is not None:
            self._failed(pod, node, error)
            return
        assert ip is not None
        try:
            group = self._place(conn, group_name, pod, ip)
        except HttpError as err:
            self._release(conn, ip)
            self._failed(pod, node, f'Code="{err.code}" Message="{err.message}"')
            return
        self._groups[key] = Group(group["id"], node)
        running = self.cp.store.mutate("pods", namespace, name,
                                       lambda p: mark_running(p, ip, conn.pod_ip, runtime="aci"))
        events.record(self.cp, running, "ProviderCreateSuccess", "Create pod in provider successfully",
                      component=_controller(node))

    def _place(self, conn: Connector, group_name: str, pod: Obj, ip: str) -> Obj:
        """The container group: in the connector's subnet (ACI then links the subnet), or with a public IP."""
        assert conn.config is not None
        config, world = conn.config, self.cp.world
        if config.subnet_name:
            return containerinstance.create_group(world, config.aci_resource_group_id, group_name, config.region,
                                                  pod, config.subnet_id, ip)
        group = containerinstance.group_body(config.aci_resource_group_id, group_name, config.region, pod, "", ip)
        group["properties"].pop("subnetIds")
        group["properties"]["ipAddress"]["type"] = "Public"
        return world.arm.put(group)

    def _admission(self, conn: Connector, pod: Obj, group_id: str) -> str | None:
        """What ARM and the ACI RP refuse before placing a group: rights, then images."""
        assert conn.config is not None and conn.principal is not None
        world, principal = self.cp.world, conn.principal
        if not authorization.has_permission(world, principal.object_id, GROUP_WRITE, group_id):
            return authorization_failed(principal, GROUP_WRITE, group_id)
        subnet_id = conn.config.subnet_id
        if conn.config.subnet_name and not authorization.has_permission(world, principal.object_id, SUBNET_JOIN,
                                                                        subnet_id):
            return (f"Code=\"LinkedAuthorizationFailed\" Message=\"The client '{principal.client_id}' with object id "
                    f"'{principal.object_id}' has permission to perform action '{GROUP_WRITE}' on scope "
                    f"'{group_id}'; however, it does not have permission to perform action(s) '{SUBNET_JOIN}' on "
                    f"the linked scope(s) '{subnet_id}' (respectively) or the linked scope(s) are invalid.\"")
        for container in pod["spec"].get("containers") or []:
            image = container.get("image", "")
            if any(re.search(pattern, image) for pattern in world.scenario.unpullable_images):
                return (f"Code=\"InaccessibleImage\" Message=\"The image '{image}' in container group "
                        f"'{group_id.rsplit('/', 1)[-1]}' is not accessible. Please check the image and registry "
                        "credential.\"")
        return None

    def _address(self, conn: Connector) -> str | None:
        assert conn.config is not None
        if conn.config.subnet_name:
            return network.allocate_ip(self.cp.world, conn.config.subnet_id)
        self._public += 1
        return str(PUBLIC_BASE + self._public)

    def _release(self, conn: Connector, ip: str) -> None:
        assert conn.config is not None
        if conn.config.subnet_name:
            network.release_ip(self.cp.world, conn.config.subnet_id, ip)

    def _subnet_full(self, conn: Connector) -> str:
        assert conn.config is not None
        subnet = self.cp.world.arm.get(conn.config.subnet_id) or {}
        prefix = (subnet.get("properties") or {}).get("addressPrefix", "")
        return (f"Code=\"SubnetIsFull\" Message=\"Subnet {conn.config.subnet_name} with address prefix {prefix} "
                "does not have enough capacity for 1 IP addresses.\"")

    def _failed(self, pod: Obj, node: str, error: str) -> None:
        meta = pod["metadata"]
        phase = "Failed" if pod["spec"].get("restartPolicy") == "Never" else "Pending"
        failed = self.cp.store.mutate("pods", meta["namespace"], meta["name"], lambda p: p.setdefault(
            "status", {}).update(phase=phase, reason="ProviderFailed", message=error))
        events.record(self.cp, failed, "ProviderCreateFailed", error, type_=events.WARNING,
                      component=_controller(node))

    # -- delete ---------------------------------------------------------------------------------------
    def _pod_gone(self, group: Group) -> None:
        if group.node in self.cp.connectors.by_node:
            self._delete(group)
        else:
            self._orphans.append(group)

    def _delete(self, group: Group) -> None:
        """Delete the group; ACI gives its address back to the subnet."""
        containerinstance.delete_group(self.cp.world, group.id)

    def teardown(self, node: str, subnet_id: str) -> None:
        """The add-on is removed: every group placed for ``node`` goes, and the subnet's link with them."""
        for key, group in list(self._groups.items()):
            if group.node == node:
                del self._groups[key]
                self._delete(group)
        for group in [g for g in self._orphans if g.node == node]:
            self._orphans.remove(group)
            self._delete(group)
        if subnet_id:
            network.remove_service_association_link(self.cp.world, subnet_id)
