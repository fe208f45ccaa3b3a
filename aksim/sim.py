"""The simulator: one object that owns the simulated cloud and its endpoints (the composition root).

- ARM over HTTPS (``arm_url``), one router shared by the resource-provider modules in ``aksim.arm``;
- one Kubernetes API over HTTPS per cluster (``aksim.kube``), started when a scenario creates the cluster;
- a plain-HTTP side endpoint (``admin_url``) with the managed-identity token endpoint (App Service protocol)
  and the admin API (request logs, faults, scenario reload, taking a cluster's API server down).

All state changes happen under ``lock``; time-driven behaviour runs on ``timers``.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from aksim.context import Hooks
from aksim.httpcore import Endpoint, FaultRule, FaultTable, Router
from aksim.scenario import Scenario, Timings, load_scenario
from aksim.timers import Timers
from aksim.tls import Tls


class Simulator:
    def __init__(self, scenario: str | Path | dict[str, Any] | Scenario | None = None,
                 workdir: str | Path | None = None, arm_port: int = 0, admin_port: int = 0) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="aksim-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.timers = Timers(self.lock)
        self.tls = Tls(self.workdir)
        self.faults = FaultTable()
        self.arm_router = Router()
        self.admin_router = Router()
        self.arm = Endpoint("arm", self.arm_router, self.faults, ssl_context=self.tls.server_context(),
                            port=arm_port)
        self.admin = Endpoint("admin", self.admin_router, self.faults, ssl_context=None, port=admin_port)
        self.scenario: Scenario = load_scenario(scenario or {})
        self.world: Any = None          # aksim.world.World, built from the scenario
        self.hooks = Hooks()
        self._register_services()

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> "Simulator":
        self.arm.start()
        self.admin.start()
        self.load(self.scenario)
        return self

    def stop(self) -> None:
        self.timers.clear()
        if self.world is not None:
            self.world.close()
        self.arm.stop()
        self.admin.stop()
        self.timers.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def load(self, scenario: str | Path | dict[str, Any] | Scenario) -> None:
        """Replace the whole simulated world with a fresh one built from ``scenario``."""
        from aksim.seed import build_world
        from aksim.world import World
        scenario = load_scenario(scenario)
        self.timers.clear()
        with self.lock:
            if self.world is not None:
                self.world.close()
            self.scenario = scenario
            self.faults.clear()
            for rule in scenario.faults:
                self.faults.add(FaultRule(**rule))
            self.reset_logs()
            self.world = World(self, scenario)
            build_world(self.world)

    # -- accessors ------------------------------------------------------------------------------------
    @property
    def timings(self) -> Timings:
        return self.scenario.timings

    @property
    def arm_url(self) -> str:
        return self.arm.url

    @property
    def admin_url(self) -> str:
        return self.admin.url

    @property
    def identity_endpoint(self) -> str:
        return f"{self.admin.url}/msi/token"

    def endpoints(self) -> list[Endpoint]:
        eps = [self.arm, self.admin]
        if self.world is not None:
            eps.extend(c.kube_endpoint for c in self.world.clusters.values() if c.kube_endpoint is not None)
        return eps

    def reset_logs(self) -> None:
        for ep in self.endpoints():
            ep.log.reset()

    def request_log(self, endpoint: str = "arm") -> dict[str, Any]:
        for ep in self.endpoints():
            if ep.name == endpoint:
                return ep.log.snapshot()
        return {"total": 0, "counts": {}, "entries": []}

    def _register_services(self) -> None:
        from aksim import admin, controlplane
        from aksim.arm import (authorization, containerinstance, containerservice, entra, graph, identity, network,
                               resources)
        for module in (resources, network, containerservice, authorization, containerinstance, identity, graph,
                       entra):
            module.register(self)
        admin.register(self)
        self.hooks.cluster_changed = controlplane.on_cluster_changed
