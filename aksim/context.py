"""What the simulated services get from the simulator: a narrow context, so imports point one way.

``aksim.sim.Simulator`` is the composition root: it builds the world, registers the resource providers and
the admin API and wires the control-plane hooks. Providers, the world and the control plane only see the
``SimContext`` protocol below and never import ``aksim.sim``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    import threading

    from aksim.httpcore import FaultTable, Router
    from aksim.scenario import Scenario, Timings
    from aksim.timers import Timers
    from aksim.tls import Tls


def _ignore(*_args: Any) -> None:
    return None


@dataclass
class Hooks:
    """Control-plane callbacks the resource providers trigger (set by the composition root)."""
    cluster_changed: Callable[[Any, Any], None] = field(default=_ignore)   # (World, Cluster): an AKS op finished


class SimContext(Protocol):
    """The parts of the simulator every simulated service may use."""
    lock: "threading.RLock"
    timers: "Timers"
    tls: "Tls"
    faults: "FaultTable"
    arm_router: "Router"
    admin_router: "Router"
    hooks: Hooks
    world: Any        # aksim.world.World — replaced on every scenario load, so always read it at use time

    @property
    def timings(self) -> "Timings": ...

    @property
    def scenario(self) -> "Scenario": ...

    @property
    def arm_url(self) -> str: ...

    @property
    def admin_url(self) -> str: ...

    @property
    def identity_endpoint(self) -> str: ...


class AdminContext(SimContext, Protocol):
    """The admin API also drives the simulator itself."""

    def load(self, scenario: Any) -> None: ...

    def reset_logs(self) -> None: ...

    def request_log(self, endpoint: str = "arm") -> dict[str, Any]: ...
