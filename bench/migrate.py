#!/usr/bin/env python
"""What ``az aks virtual-node migrate --to v2`` saves against the hand-made runbook: availability and wall time on
aksim with the real ``az`` (the installed wheel), helm and kubectl.

The world is tests/extension/test_scenario_v2.py's ``vn2_world(nodes=4)`` with its fast timings (the v2 test chart
tests/fixtures/charts/virtualnode, passed with ``--chart``). In it the managed add-on is enabled (``enable
--subnet-name virtual-node-aci --subnet-cidr 10.241.0.0/16``) and a Deployment ``web`` (3 replicas, 100m CPU) is
pinned on its virtual node (``place --policy only``), all 3 pods Ready there. Then, each in a freshly loaded world:

A. **migrate**: ``az aks virtual-node migrate -g vn2-rg -n aks-vn2 --to v2 --chart <chart> --yes``;
B. **the runbook** a user types today: ``az aks virtual-node disable ... --force --yes`` (the add-on goes and with
   it the pods' node), ``az aks virtual-node enable ... --mode v2 --chart <chart> --subnet-name virtual-node-aci``
   (the same subnet), ``az aks virtual-node place ... --workload deployment/web --policy only``.

A sampler thread reads the simulator's store under ``sim.lock`` every 20 ms and counts the pods labelled
``app=web`` that are Ready and not terminating (as test_scenario_migrate.py's ``Watcher``), from just before the
first command until the commands have returned and all 3 pods are Ready again. Per variant: the wall time of the
commands, the time until 3 pods are Ready again, the fewest Ready pods seen, the unavailable replica-seconds (the
integral over time of max(0, 3 - ready)) and the seconds with no Ready pod at all. Ratios: runbook / migrate for
unavailability (null, with a note, when migrate loses nothing: it keeps all 3 pods Ready by design, so there is
nothing to divide by) and both ways for wall time.

aksim's timings are scaled down (LROs of 0.05 s, virtual nodes registering in 0.2 s, pods starting in 0.03 s; the
extension polls LROs every ``--poll-interval`` s instead of 2 s): the absolute seconds are not Azure's. The point is
the availability floor (migrate never drops below 3 Ready: it installs v2 beside the add-on and rolls the pods over
before the add-on goes; the runbook drops to 0 when ``disable`` deletes the pods' node and container groups, and the
re-created pods stay Pending until the v2 nodes register during ``enable --mode v2``: aksim labels them
``type=virtual-kubelet`` too, so the add-on placement already fits them and ``place`` then only rolls the pods onto
the v2 placement) and the order of magnitude of the gap. On Azure the outage lasts as long as the VN2 chart takes to
install and register (minutes), where aksim takes about a second. ``ready_changes`` lists (seconds, Ready pods) at
each change.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aksim.azconfig import az_command, login  # noqa: E402
from aksim.scenario import read_raw  # noqa: E402
from aksim.sim import Simulator  # noqa: E402
from benchutil import until  # noqa: E402

RG, NAME = "vn2-rg", "aks-vn2"
IDS = ["-g", RG, "-n", NAME]
APP, REPLICAS = "web", 3
ADDON_NODE, SUBNET = "virtual-node-aci-linux", "virtual-node-aci"
CHART = str(ROOT / "tests" / "fixtures" / "charts" / "virtualnode")
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
HELM_DIR = ROOT / ".tools" / "bin"
IMAGE = "mcr.microsoft.com/azuredocs/aci-helloworld"
# tests/conftest.py's FAST_TIMINGS with tests/extension/test_scenario_v2.py's VN2 timings on top
TIMINGS = {"lro": 0.05, "poll": 0.05, "connector_start": 0.3, "connector_restart": 0.6, "node_register": 0.05,
           "aci_create": 0.05, "pod_start": 0.03, "controller": 0.01, "vn2_register": 0.2, "lease_renew": 0.1,
           "lease_duration": 0.5, "backoff_scale": 0.02}
SAMPLE = 0.02


def run(env: dict[str, str], cmd: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, input=stdin, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return proc.stdout


def az(env: dict[str, str], *args: str) -> str:
    return run(env, az_command() + list(args))


def world() -> dict[str, Any]:
    raw = read_raw("vn2")
    raw["clusters"][0].update(nodes=4)
    raw["timings"] = dict(TIMINGS)
    return raw


def deployment() -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP, "namespace": "default"},
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": APP}},
                     "template": {"metadata": {"labels": {"app": APP}},
                                  "spec": {"containers": [{"name": APP, "image": IMAGE,
                                                           "resources": {"requests": {"cpu": "100m"}}}]}}}}


def cluster_of(sim: Simulator) -> Any:
    with sim.lock:
        return next(c for c in sim.world.clusters.values() if c.name == NAME)


def ready_pods(sim: Simulator) -> list[dict[str, Any]]:
    """Pods of the app that are Ready and not terminating, read from the store (caller holds no lock)."""
    store = cluster_of(sim).store
    with sim.lock:
        pods = store.list_page("pods", "default", f"app={APP}").items
        return [p for p in pods if not p["metadata"].get("deletionTimestamp") and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or [])]


class Sampler(threading.Thread):
    """Ready pods of the app every 20 ms; integrates max(0, REPLICAS - ready) and the time at zero (left Riemann
    sums over the real intervals between samples). Stops once ``done`` is set and all replicas are Ready."""

    def __init__(self, sim: Simulator, limit: float) -> None:
        super().__init__(daemon=True)
        self.sim, self.limit = sim, limit
        self.done = threading.Event()
        self.low = REPLICAS
        self.unavailable = 0.0
        self.zero = 0.0
        self.samples = 0
        self.started = self.recovered = 0.0
        self.changes: list[tuple[float, int]] = []     # (seconds since start, ready) whenever ready changes

    def run(self) -> None:
        self.started = last = time.monotonic()
        ready = len(ready_pods(self.sim))
        self.changes.append((0.0, ready))
        while True:
            time.sleep(SAMPLE)
            now = time.monotonic()
            self.unavailable += max(0, REPLICAS - ready) * (now - last)
            self.zero += (now - last) if ready == 0 else 0.0
            last = now
            ready = len(ready_pods(self.sim))
            self.low = min(self.low, ready)
            if ready != self.changes[-1][1]:
                self.changes.append((round(now - self.started, 2), ready))
            self.samples += 1
            if (self.done.is_set() and ready >= REPLICAS) or now - self.started > self.limit:
                self.recovered = now
                return


def prepare(sim: Simulator, env: dict[str, str], tmp: Path) -> None:
    """A fresh world: the add-on enabled, web pinned on its node, all 3 Ready there."""
    from aksim.arm.containerservice import kubeconfig
    sim.load(world())
    path = tmp / "kubeconfig"          # the new world's API server listens on a new port
    path.write_text(kubeconfig(cluster_of(sim), sim.tls.ca_data_b64, True))
    path.chmod(0o600)
    kube_env = {**env, "KUBECONFIG": str(path)}
    az(env, "aks", "virtual-node", "enable", *IDS, "--subnet-name", SUBNET, "--subnet-cidr", "10.241.0.0/16",
       "--timeout", "120", "-o", "none")
    run(kube_env, [str(KUBECTL), "apply", "-f", "-"], stdin=json.dumps(deployment()))
    az(env, "aks", "virtual-node", "place", *IDS, "--workload", f"deployment/{APP}", "--policy", "only", "-o", "none")

    def settled() -> bool:
        pods = ready_pods(sim)
        with sim.lock:
            everything = cluster_of(sim).store.list_page("pods", "default", f"app={APP}").items
        return len(pods) == REPLICAS == len(everything) and {p["spec"].get("nodeName") for p in pods} == {ADDON_NODE}
    until(settled, 60, f"{REPLICAS} Ready pods of {APP} on {ADDON_NODE}", interval=0.05)


def measure(sim: Simulator, env: dict[str, str], tmp: Path, commands: list[tuple[str, list[str]]]) -> dict[str, Any]:
    prepare(sim, env, tmp)
    sampler = Sampler(sim, limit=120)
    sampler.start()
    time.sleep(SAMPLE * 2)
    steps: dict[str, float] = {}
    started = time.monotonic()
    for name, args in commands:
        t = time.monotonic()
        az(env, *args)
        steps[name] = round(time.monotonic() - t, 2)
    wall = time.monotonic() - started
    sampler.done.set()
    sampler.join(130)
    pods = ready_pods(sim)
    nodes = sorted({p["spec"].get("nodeName", "") for p in pods})
    if len(pods) < REPLICAS or not all(n.startswith("virtualnode-") for n in nodes):
        raise RuntimeError(f"{APP} did not end with {REPLICAS} Ready pods on the v2 nodes: {nodes}")
    return {"wall_s": round(wall, 2), "steps_s": steps,
            "all_ready_again_s": round(max(0.0, sampler.recovered - started), 2),
            "min_ready": sampler.low, "unavailable_replica_s": round(sampler.unavailable, 2),
            "zero_ready_s": round(sampler.zero, 2), "samples": sampler.samples,
            "ready_changes": [list(c) for c in sampler.changes]}


def ratio(slow: float, fast: float) -> float | None:
    return round(slow / fast, 1) if fast > 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll-interval", default="0.1",
                        help="AZEXT_VIRTUALNODE_POLL_INTERVAL, the extension's LRO poll (default 0.1, as the tests: "
                             "aksim's LROs take 0.05 s; the production default is 2 s)")
    parser.add_argument("--extension-dir", help="an AZURE_EXTENSION_DIR with the extension already installed "
                                                "(instead of installing EXTENSION_WHEEL)")
    args = parser.parse_args()
    wheel = os.environ.get("EXTENSION_WHEEL")
    if not wheel and not args.extension_dir:
        print("set EXTENSION_WHEEL to the built wheel (make bench does) or pass --extension-dir", file=sys.stderr)
        return 2
    migrate = [("migrate", ["aks", "virtual-node", "migrate", *IDS, "--to", "v2", "--chart", CHART, "--yes",
                            "--timeout", "240", "-o", "none"])]
    runbook = [("disable", ["aks", "virtual-node", "disable", *IDS, "--force", "--yes", "-o", "none"]),
               ("enable --mode v2", ["aks", "virtual-node", "enable", *IDS, "--mode", "v2", "--chart", CHART,
                                     "--subnet-name", SUBNET, "--timeout", "120", "-o", "none"]),
               ("place", ["aks", "virtual-node", "place", *IDS, "--workload", f"deployment/{APP}", "--policy",
                          "only", "-o", "none"])]
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator(world()).start()
        try:
            env = login(sim, Path(tmp) / "azure")
            env["AZURE_EXTENSION_DIR"] = args.extension_dir or str(Path(tmp) / "ext")
            env["AZEXT_VIRTUALNODE_POLL_INTERVAL"] = args.poll_interval
            env["PATH"] = f"{HELM_DIR}{os.pathsep}{env.get('PATH', '')}"        # the real helm for --mode v2
            if not args.extension_dir:
                az(env, "extension", "add", "--source", wheel, "-y")
            a = measure(sim, env, Path(tmp), migrate)
            b = measure(sim, env, Path(tmp), runbook)
        finally:
            sim.stop()
    result: dict[str, Any] = {
        "world": "vn2_world(nodes=4), fast test timings (scaled down: seconds are not Azure's)",
        "workload": f"deployment/{APP}: {REPLICAS} x 100m, place --policy only on {ADDON_NODE}",
        "poll_interval_s": float(args.poll_interval),
        "migrate": a, "runbook": b,
        "unavailable_replica_s_ratio": ratio(b["unavailable_replica_s"], a["unavailable_replica_s"]),
        "zero_ready_s_ratio": ratio(b["zero_ready_s"], a["zero_ready_s"]),
        "wall_ratio_runbook_over_migrate": ratio(b["wall_s"], a["wall_s"]),
        "wall_ratio_migrate_over_runbook": ratio(a["wall_s"], b["wall_s"]),
    }
    notes = [f"{k} is null: migrate's {k[:-6]} is 0 (nothing to divide by); the runbook's is "
             f"{b[k[:-6]]}" for k in ("unavailable_replica_s_ratio", "zero_ready_s_ratio") if result[k] is None]
    if notes:
        result["notes"] = notes
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
