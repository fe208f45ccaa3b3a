"""Per-cluster control-plane runtime: the controllers of one cluster, its store-event fan-out and timers.

Store subscribers run synchronously under the simulator lock while a write commits, so controllers only
record what changed there and do their writes later, from timer callbacks (``ControlPlane.later``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from aksim.controlplane.aci import AciProvider
from aksim.controlplane.addon import AddonManager
from aksim.controlplane.connector import Connectors
from aksim.controlplane.crds import CustomResources
from aksim.controlplane.kubelet import Kubelet
from aksim.controlplane.nodelifecycle import NodeLifecycle
from aksim.controlplane.scheduler import Scheduler
from aksim.controlplane.statefulsets import StatefulSets
from aksim.controlplane.vn2 import VirtualNodes2
from aksim.controlplane.workloads import Workloads

if TYPE_CHECKING:
    from aksim.kube.store import KubeStore
    from aksim.scenario import Timings
    from aksim.world import Cluster, World


class ControlPlane:
    """Everything the simulated control plane keeps about one cluster."""

    def __init__(self, world: "World", cluster: "Cluster") -> None:
        self.world = world
        self.cluster = cluster
        self.event_index: dict[tuple[str, ...], str] = {}
        self.scheduler = Scheduler(self)
        self.workloads = Workloads(self)
        self.kubelet = Kubelet(self)
        self.connectors = Connectors(self)
        self.aci = AciProvider(self)
        self.addon = AddonManager(self)
        self.statefulsets = StatefulSets(self)
        self.vn2 = VirtualNodes2(self)
        self.lifecycle = NodeLifecycle(self)
        self.crds = CustomResources(self)

    @property
    def store(self) -> "KubeStore":
        return self.cluster.store

    @property
    def timings(self) -> "Timings":
        return self.world.sim.timings

    @property
    def managed_cluster(self) -> dict[str, Any] | None:
        return self.world.arm.get(self.cluster.resource_id)

    def alive(self) -> bool:
        """False once the world was replaced or the cluster deleted: pending timers then do nothing."""
        return (self.world.sim.world is self.world
                and self.world.clusters.get(self.cluster.resource_id.lower()) is self.cluster)

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        def run() -> None:
            if self.alive():
                fn()
        self.world.sim.timers.call_later(delay, run)

    def start(self) -> None:
        self.scheduler.load()
        self.store.subscribe(self.on_event)

    def on_event(self, event_type: str, resource: str, obj: dict[str, Any]) -> None:
        if resource == "pods":
            self.scheduler.on_pod(event_type, obj)
            self.workloads.on_pod(event_type, obj)
            self.kubelet.on_pod(event_type, obj)
            self.connectors.on_pod(event_type, obj)
            self.aci.on_pod(event_type, obj)
            self.statefulsets.on_pod(obj)
            self.vn2.on_pod(event_type, obj)
        elif resource == "nodes":
            self.scheduler.on_node(event_type, obj)
            self.kubelet.on_node(event_type, obj)
            self.vn2.on_node(event_type, obj)
        elif resource in ("deployments.apps", "replicasets.apps"):
            self.workloads.on_workload(event_type, resource, obj)
        elif resource == "statefulsets.apps":
            self.statefulsets.on_statefulset(event_type, obj)
        elif resource == "priorityclasses.scheduling.k8s.io":
            self.statefulsets.on_priority_class()
        elif resource == "leases.coordination.k8s.io":
            self.lifecycle.on_lease(event_type, obj)
        elif resource == "customresourcedefinitions.apiextensions.k8s.io":
            self.crds.on_crd(event_type, obj)
