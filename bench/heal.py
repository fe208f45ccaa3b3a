#!/usr/bin/env python
"""Heal at once: time from the missing role being granted to the virtual node being Ready, with and without
``enable``'s restart of the crash-looping connector.

Both runs start the same way: the add-on is enabled with ``--skip-role-assignment``, so the connector
crash-loops on AuthorizationFailed, and is left crash-looping for ``--grow`` seconds (its back-off grows).
Then the role is granted:
  * without healing, by an administrator (``az rest`` PUT of the role assignment, as ``az role assignment
    create`` does): the connector only recovers at its next restart, after its back-off;
  * with healing, by ``az aks virtual-node enable``, which grants it and deletes the crash-looping pod.
The clock runs from the role assignment appearing in the simulator to the node being Ready. Prints JSON with
both times and their ratio (without / with).

Timings are set through the admin API (scaled: ``--restart`` is the back-off the connector has reached).
aksim restarts a crash-looping connector every ``connector_restart`` seconds today; once its kubelet
back-off (10, 20, 40 … capped at 300 s, scaled) lands, pass its timings with ``--timings '{...}'`` and the
same script shows the real ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aksim.azconfig import az_command, login  # noqa: E402
from aksim.scenario import read_raw  # noqa: E402
from aksim.sim import Simulator  # noqa: E402

IDS = ["-g", "demo-rg", "-n", "aks-demo"]
NODE = "virtual-node-aci-linux"
NC = "4d97b98b-1d4f-4787-a291-c67834d212e7"
FAST = {"lro": 0.3, "poll": 0.1, "connector_start": 0.3, "node_register": 0.2, "aci_create": 0.2,
        "pod_start": 0.1, "controller": 0.02}


def az(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(az_command() + list(args), env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"az {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def set_timings(sim: Simulator, timings: dict[str, float]) -> None:
    import urllib.request
    req = urllib.request.Request(sim.admin_url + "/_admin/timings", data=json.dumps(timings).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30):
        pass


class Clock:
    """Watches the simulator: when the connector's role assignment appears, and when the node is Ready."""

    def __init__(self, sim: Simulator, principal: str) -> None:
        self.sim, self.principal = sim, principal
        self.granted: float | None = None
        self.ready: float | None = None

    def _granted(self) -> bool:
        with self.sim.lock:
            return any(r["properties"]["principalId"] == self.principal and r["properties"]["roleDefinitionId"]
                       .endswith(NC) for r in self.sim.world.arm.of_type("Microsoft.Authorization/roleAssignments"))

    def _node_ready(self) -> bool:
        cluster = next(iter(self.sim.world.clusters.values()))
        with self.sim.lock:
            node = cluster.store.get("nodes", None, NODE)
        conds = (node or {}).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    def run(self, limit: float) -> None:
        end = time.monotonic() + limit
        while time.monotonic() < end and self.ready is None:
            now = time.monotonic()
            if self.granted is None and self._granted():
                self.granted = now
            if self.granted is not None and self._node_ready():
                self.ready = now
            time.sleep(0.02)


def addon_identity(sim: Simulator) -> dict[str, str]:
    cluster = next(iter(sim.world.clusters.values()))
    with sim.lock:
        mc = sim.world.arm.get(cluster.resource_id)
    return mc["properties"]["addonProfiles"]["aciConnectorLinux"]["identity"]


def one_run(sim: Simulator, env: dict[str, str], heal: bool, args: argparse.Namespace) -> float:
    raw = read_raw("demo")
    raw["timings"] = {**raw.get("timings", {}), **FAST}
    sim.load(raw)
    set_timings(sim, {"connector_restart": args.restart, **json.loads(args.timings)})
    az(env, "aks", "virtual-node", "enable", *IDS, "--skip-role-assignment", "--no-wait", "-o", "none")
    time.sleep(args.grow)                       # the connector crash-loops; its back-off grows
    principal = addon_identity(sim)["objectId"]
    clock = Clock(sim, principal)
    watcher = threading.Thread(target=clock.run, args=(args.restart * 3 + 120,), daemon=True)
    watcher.start()
    if heal:
        az(env, "aks", "virtual-node", "enable", *IDS, "--timeout", str(int(args.restart * 3 + 60)), "-o", "none")
    else:
        subnet = f"{raw_vnet_id(sim)}/subnets/virtual-node-aci"
        sub = subnet.split("/")[2]
        body = {"properties": {"roleDefinitionId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/"
                                                   f"roleDefinitions/{NC}",
                               "principalId": principal, "principalType": "ServicePrincipal"}}
        az(env, "rest", "--method", "put", "--url", f"{subnet}/providers/Microsoft.Authorization/roleAssignments/"
           f"{uuid.uuid4()}?api-version=2022-04-01", "--body", json.dumps(body), "-o", "none")
    watcher.join()
    if clock.granted is None or clock.ready is None:
        raise RuntimeError("the node did not become Ready after the grant")
    return clock.ready - clock.granted


def raw_vnet_id(sim: Simulator) -> str:
    cluster = next(iter(sim.world.clusters.values()))
    with sim.lock:
        mc = sim.world.arm.get(cluster.resource_id)
    return mc["properties"]["agentPoolProfiles"][0]["vnetSubnetID"].rsplit("/subnets/", 1)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restart", type=float, default=15.0,
                        help="seconds until the crash-looping connector restarts (its back-off, scaled)")
    parser.add_argument("--grow", type=float, default=3.0, help="seconds the connector crash-loops before the grant")
    parser.add_argument("--timings", default="{}", help="extra aksim timings as JSON (e.g. the kubelet back-off)")
    args = parser.parse_args()
    wheel = os.environ.get("EXTENSION_WHEEL")
    if not wheel:
        print("set EXTENSION_WHEEL to the built wheel (make bench does)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator("demo").start()
        try:
            env = login(sim, Path(tmp) / "azure")
            env["AZURE_EXTENSION_DIR"] = str(Path(tmp) / "ext")
            az(env, "extension", "add", "--source", wheel, "-y")
            without = one_run(sim, env, heal=False, args=args)
            with_heal = one_run(sim, env, heal=True, args=args)
        finally:
            sim.stop()
    print(json.dumps({"restart_s": args.restart, "grant_to_ready_without_healing_s": round(without, 2),
                      "grant_to_ready_with_healing_s": round(with_heal, 2),
                      "ratio_without_to_with": round(without / with_heal, 1) if with_heal else None}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
