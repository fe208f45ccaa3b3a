"""What the controllers of one cluster share: the runtime they are handed, time helpers and a work queue.

Controllers receive the cluster's runtime as ``Runtime`` (a protocol, implemented by
``aksim.controlplane.runtime.ControlPlane``), so they never import the module that wires them together.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Generic, Hashable, Protocol, TypeVar

from aksim.kube.store import KubeError

if TYPE_CHECKING:
    from aksim.kube.store import KubeStore
    from aksim.scenario import Timings
    from aksim.world import Cluster, World

K = TypeVar("K", bound=Hashable)


class Runtime(Protocol):
    """One cluster's control plane as its controllers see it (collaborators are looked up by attribute)."""
    world: "World"
    cluster: "Cluster"
    event_index: dict[tuple[str, ...], str]
    scheduler: Any
    workloads: Any
    kubelet: Any
    connectors: Any
    aci: Any
    addon: Any
    statefulsets: Any
    vn2: Any
    lifecycle: Any
    crds: Any

    @property
    def store(self) -> "KubeStore": ...

    @property
    def timings(self) -> "Timings": ...

    @property
    def managed_cluster(self) -> dict[str, Any] | None: ...

    def later(self, delay: float, fn: Callable[[], None]) -> None: ...


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class WorkQueue(Generic[K]):
    """Keys to reconcile, processed in one timer callback after ``delay()`` (duplicates coalesce)."""

    def __init__(self, cp: "Runtime", delay: Callable[[], float], handler: Callable[[K], None]) -> None:
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
