"""The simulated world built from a scenario: ARM resources, principals and clusters."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aksim.arm.common import ArmState, Operations
from aksim.scenario import Scenario

if TYPE_CHECKING:
    from aksim.httpcore import Endpoint
    from aksim.kube.store import KubeStore
    from aksim.context import SimContext


@dataclass
class Principal:
    """An Entra ID service principal (an app's SP or a managed identity's SP)."""
    object_id: str
    client_id: str
    display_name: str
    kind: str = "ServicePrincipal"          # ServicePrincipal | ManagedIdentity
    created: float = field(default_factory=time.monotonic)
    secret: str | None = None


@dataclass
class Cluster:
    """Runtime side of a managed cluster: its Kubernetes API and what the control plane keeps about it."""
    resource_id: str
    name: str
    resource_group: str
    location: str
    node_resource_group: str
    store: "KubeStore"
    kube_endpoint: "Endpoint | None" = None
    user_token: str = field(default_factory=lambda: uuid.uuid4().hex)
    admin_token: str = field(default_factory=lambda: uuid.uuid4().hex)
    extra: dict[str, Any] = field(default_factory=dict)   # control-plane bookkeeping

    @property
    def kube_url(self) -> str:
        assert self.kube_endpoint is not None
        return self.kube_endpoint.url


class World:
    def __init__(self, sim: "SimContext", scenario: Scenario) -> None:
        self.sim = sim
        self.scenario = scenario
        self.arm = ArmState()
        self.ops = Operations(sim)
        self.principals: dict[str, Principal] = {}
        self.clusters: dict[str, Cluster] = {}       # by lower-cased managedCluster resource ID
        self.provider_state: dict[str, str] = {k.lower(): v for k, v in scenario.providers.items()}
        self.caller = self.add_principal(scenario.caller["objectId"], scenario.caller.get("clientId",
                                         scenario.caller["objectId"]), "aksim-caller", backdate=True,
                                         secret=scenario.caller.get("secret"))

    # -- principals -----------------------------------------------------------------------------------
    def add_principal(self, object_id: str | None = None, client_id: str | None = None, name: str = "",
                      kind: str = "ServicePrincipal", backdate: bool = False, secret: str | None = None) -> Principal:
        p = Principal(object_id or str(uuid.uuid4()), client_id or str(uuid.uuid4()), name, kind, secret=secret)
        if backdate:
            p.created -= 10 ** 6
        self.principals[p.object_id] = p
        return p

    def principal_by_client_id(self, client_id: str) -> Principal | None:
        for p in self.principals.values():
            if p.client_id.lower() == client_id.lower():
                return p
        return None

    def principal_replicated(self, object_id: str) -> bool:
        """False while a freshly created identity is still replicating (real Entra ID: minutes)."""
        p = self.principals.get(object_id)
        return p is not None and time.monotonic() - p.created >= self.sim.timings.role_replication

    def cluster_by_id(self, resource_id: str) -> Cluster | None:
        return self.clusters.get(resource_id.lower())

    # -- teardown -----------------------------------------------------------------------------
    def close(self) -> None:
        for cluster in self.clusters.values():
            if cluster.kube_endpoint is not None:
                cluster.kube_endpoint.stop()
        self.clusters.clear()
