"""Per-cluster control-plane runtime: the controllers of one cluster, its store-event fan-out and timers.

Store subscribers run synchronously under the simulator lock while a write commits, so controllers only
record what changed there and do their writes later, from timer callbacks (``ControlPlane.later``).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Generic, Hashable, TypeVar

from aksim.kube.store import KubeError

if TYPE_CHECKING:
    from aksim.kube.store import KubeStore
    from aksim.scenario import Timings
    from aksim.world import Cluster, World

K = TypeVar("K", bound=Hashable)


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class ControlPlane:
    """Everything the simulated control plane keeps about one cluster."""

    def __init__(self, world: "World", cluster: "Cluster") -> None:
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
            self.workloads.on_pod(obj)
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


class WorkQueue(Generic[K]):
    """Keys to reconcile, processed in one timer callback after ``delay()`` (duplicates coalesce)."""

    def __init__(self, cp: ControlPlane, delay: Callable[[], float], handler: Callable[[K], None]) -> None:
        self._cp = cp
        self._delay = delay
        self._handler = handler
        self._keys: dict[K, None] = {}
        self._scheduled = False

    def add(self, key: K) -> None:
        self._keys[key] = None
        if not self._scheduled:
            self._scheduled = True
            self._cp.later(self._delay(), self._run)

    def discard(self, key: K) -> None:
        self._keys.pop(key, None)

    def _run(self) -> None:
        self._scheduled = False
        keys, self._keys = list(self._keys), {}
        for key in keys:
            try:
                self._handler(key)
            except KubeError:       # lost a race with a user write; the next event re-queues the key
                continue
