"""The kubelets of the regular (VM) nodes, and pod garbage collection for deleted nodes.

A pod bound to a regular node starts after ``timings.pod_start``: Running and Ready with an address from the
node's pod range. A pod running the virtual-kubelet image is handed to the connector runtime instead, which
decides whether its container keeps running or crash-loops.
"""
from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from aksim.controlplane import events
from aksim.controlplane.connector import is_connector
from aksim.controlplane.podutil import Obj, is_active, key_of, mark_running, split_key
from aksim.controlplane.vn2 import is_infra_pod
from aksim.kube.store import DELETED

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime
    from aksim.controlplane.scheduler import NodeInfo

POD_RANGE_BASE = ipaddress.ip_address("10.128.0.0")    # node N gets 10.128.0.0 + N*256 .. +255


class Kubelet:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp
        self._started: set[str] = set()
        self._addresses: dict[str, int] = {}

    def on_pod(self, event_type: str, pod: Obj) -> None:
        key = key_of(pod)
        if event_type == DELETED:
            self._started.discard(key)
            return
        node = (pod.get("spec") or {}).get("nodeName")
        info = self.cp.scheduler.nodes.get(node or "")
        if (info is None or info.virtual or key in self._started or not is_active(pod)
                or (pod.get("status") or {}).get("phase", "Pending") != "Pending"):
            return
        self._started.add(key)
        self.cp.later(self.cp.timings.pod_start, lambda: self._start(key, info.name))

    def on_node(self, event_type: str, node: Obj) -> None:
        if event_type == DELETED:
            name = node["metadata"]["name"]
            self.cp.later(self.cp.timings.controller, lambda: self._collect_pods(name))

    def pod_ip(self, node: "NodeInfo") -> str:
        count = self._addresses.get(node.name, 0) + 1
        self._addresses[node.name] = count
        return str(POD_RANGE_BASE + node.index * 256 + (count - 1) % 254 + 1)

    def _start(self, key: str, node_name: str) -> None:
        namespace, name = split_key(key)
        pod = self.cp.store.get_ref("pods", namespace, name)
        node = self.cp.scheduler.nodes.get(node_name)
        if (pod is None or node is None or pod["spec"].get("nodeName") != node_name
                or pod.get("status", {}).get("phase") != "Pending"):
            return
        pod_ip = self.pod_ip(node)
        if is_connector(pod):
            self.cp.connectors.start(pod, pod_ip, node)
            return
        if is_infra_pod(pod):
            self.cp.vn2.start(pod, pod_ip, node)
            return
        running = self.cp.store.mutate("pods", namespace, name, lambda p: mark_running(p, pod_ip, node.host_ip))
        for container in running["spec"]["containers"]:
            events.container_started(self.cp, running, container, node_name)

    def _collect_pods(self, node: str) -> None:
        """PodGC: pods bound to a node that no longer exists are deleted."""
        if self.cp.store.get_ref("nodes", None, node) is not None:
            return
        for pod in self.cp.store.list("pods", field_selector=f"spec.nodeName={node}"):
            self.cp.store.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
