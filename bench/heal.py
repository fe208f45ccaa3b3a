#!/usr/bin/env python
"""Heal at once, and enable against the official manual sequence: two timings on aksim with the real ``az``.

1. **Healing** (``grant``): the add-on is enabled with ``--skip-role-assignment``, so the connector crash-loops
   on AuthorizationFailed under aksim's kubelet back-off (10 s, 20 s, 40 s ... capped at 300 s, all times
   ``--scale`` = ``timings.backoff_scale``, set through the admin API). Once its back-off has reached the cap
   (the pod's ``back-off 5m0s restarting failed container`` message), the run waits ``--at`` of one capped
   back-off (0.5: the grant lands half-way through it, the average case) and the missing role is granted:
     * without healing, by ``az role assignment create`` (an administrator fixing it by hand): the connector
       recovers at its next restart, when the kubelet's back-off runs out;
     * with healing, by ``az aks virtual-node enable``, which grants it and deletes the crash-looping pod.
   The clock runs from the role assignment appearing in the simulator to the virtual node being Ready.
2. **Enable vs the manual sequence** (``enable``): on the same timings (LROs of ``--lro`` seconds, aksim's
   realistic default of no Retry-After on AKS/Network operations), the wall time of ``az aks virtual-node
   enable`` (which polls every 2 s) against the official sequence ``az network vnet subnet create ...
   --delegations Microsoft.ContainerInstance/containerGroups`` + ``az aks enable-addons --addons virtual-node
   --subnet-name ...`` + ``kubectl wait --for=create`` / ``--for=condition=Ready node/virtual-node-aci-linux``
   (az's own commands poll every 30 s without a hint: azure-core's default). ``az aks get-credentials`` for
   kubectl runs before the manual clock starts (in the sequence's favour). ``enable-addons`` grants the
   connector's role only after its operation, so its connector may crash-loop until then and wait out a
   back-off (``--scale``) as on Azure; ``enable`` also grants it after the operation, but notices the end of the
   operation within 2 s and then restarts a crash-looping connector.

Prints one JSON object with both times of each part and their ratios (slower / faster). ``--parts`` picks parts;
``--retry-after-hint`` makes aksim send hints (only for a quick smoke run: it is not the realistic comparison).
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
from aksim.controlplane.backoff import CAP  # noqa: E402
from aksim.scenario import read_raw  # noqa: E402
from aksim.sim import Simulator  # noqa: E402
from benchutil import until  # noqa: E402

RG, NAME = "demo-rg", "aks-demo"
IDS = ["-g", RG, "-n", NAME]
NODE = "virtual-node-aci-linux"
SUBNET = "virtual-node-aci"
NC = "4d97b98b-1d4f-4787-a291-c67834d212e7"          # Network Contributor
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
# aksim's default timings (real Azure/Kubernetes durations scaled down); the LRO duration is --lro.
TIMINGS = {"poll": 0.5, "connector_start": 1.0, "node_register": 0.5, "aci_create": 0.5, "pod_start": 0.2,
           "controller": 0.05}


def run(env: dict[str, str], cmd: list[str]) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return proc.stdout


def az(env: dict[str, str], *args: str) -> str:
    return run(env, az_command() + list(args))


def set_timings(sim: Simulator, timings: dict[str, Any]) -> None:
    import urllib.request
    req = urllib.request.Request(sim.admin_url + "/_admin/timings", data=json.dumps(timings).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30):
        pass


def load(sim: Simulator, args: argparse.Namespace, **timings: Any) -> None:
    """A fresh demo cluster; timings through the admin API (what a test would set)."""
    sim.load(read_raw("demo"))
    set_timings(sim, {**TIMINGS, "lro": args.lro, "retry_after_hint": args.retry_after_hint, **timings})


def cluster_of(sim: Simulator) -> Any:
    return next(iter(sim.world.clusters.values()))


def node_ready(sim: Simulator) -> bool:
    with sim.lock:
        node = cluster_of(sim).store.get("nodes", None, NODE)
    conds = (node or {}).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def connector_waiting_message(sim: Simulator) -> str:
    with sim.lock:
        pods = cluster_of(sim).store.list("pods", namespace="kube-system")
    for pod in pods:
        if pod["metadata"].get("labels", {}).get("app") != "aci-connector-linux":
            continue
        for status in pod.get("status", {}).get("containerStatuses") or []:
            message = (status.get("state", {}).get("waiting") or {}).get("message")
            if message:
                return message
    return ""


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

    def run(self, limit: float) -> None:
        end = time.monotonic() + limit
        while time.monotonic() < end and self.ready is None:
            now = time.monotonic()
            if self.granted is None and self._granted():
                self.granted = now
            if self.granted is not None and node_ready(self.sim):
                self.ready = now
            time.sleep(0.02)


def managed_cluster(sim: Simulator) -> dict[str, Any]:
    with sim.lock:
        return sim.world.arm.get(cluster_of(sim).resource_id)


# -- part 1: healing --------------------------------------------------------------------------------------------
def grant_run(sim: Simulator, env: dict[str, str], heal: bool, args: argparse.Namespace) -> float:
    load(sim, args, backoff_scale=args.scale)
    az(env, "aks", "virtual-node", "enable", *IDS, "--skip-role-assignment", "--no-wait", "-o", "none")
    cap = CAP * args.scale
    # the crash whose back-off is the cap: 10+20+40+80+160 s (scaled) after the first one
    until(lambda: "back-off 5m0s" in connector_waiting_message(sim), cap * 1.2 + 60, "the capped back-off")
    time.sleep(cap * args.at)
    mc = managed_cluster(sim)
    principal = mc["properties"]["addonProfiles"]["aciConnectorLinux"]["identity"]["objectId"]
    subnet = mc["properties"]["agentPoolProfiles"][0]["vnetSubnetID"].rsplit("/subnets/", 1)[0] + "/subnets/" + SUBNET
    clock = Clock(sim, principal)
    watcher = threading.Thread(target=clock.run, args=(cap * 2 + 120,), daemon=True)
    watcher.start()
    if heal:
        az(env, "aks", "virtual-node", "enable", *IDS, "--timeout", str(int(cap * 2 + 60)), "-o", "none")
    else:
        az(env, "role", "assignment", "create", "--assignee-object-id", principal, "--assignee-principal-type",
           "ServicePrincipal", "--role", "Network Contributor", "--scope", subnet, "-o", "none")
    watcher.join()
    if clock.granted is None or clock.ready is None:
        raise RuntimeError(f"the node did not become Ready after the grant ({'with' if heal else 'without'} healing)")
    return clock.ready - clock.granted


def part_grant(sim: Simulator, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    without = grant_run(sim, env, heal=False, args=args)
    healed = grant_run(sim, env, heal=True, args=args)
    return {"backoff_scale": args.scale, "backoff_cap_s": round(CAP * args.scale, 2),
            "grant_at_fraction_of_cap": args.at,
            "grant_to_ready_without_healing_s": round(without, 2),
            "grant_to_ready_with_healing_s": round(healed, 2),
            "healing_ratio": round(without / healed, 1)}


# -- part 2: enable vs the manual sequence ----------------------------------------------------------------------
def timed(steps: list[tuple[str, Any]]) -> tuple[float, dict[str, float]]:
    each: dict[str, float] = {}
    started = time.monotonic()
    for name, step in steps:
        t = time.monotonic()
        step()
        each[name] = round(time.monotonic() - t, 2)
    return time.monotonic() - started, each


def part_enable(sim: Simulator, env: dict[str, str], tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    load(sim, args, backoff_scale=args.scale)
    enable, _ = timed([("enable", lambda: az(env, "aks", "virtual-node", "enable", *IDS, "-o", "none"))])
    if not node_ready(sim):
        raise RuntimeError("enable returned before the virtual node was Ready")

    load(sim, args, backoff_scale=args.scale)
    kubeconfig = tmp / "kubeconfig"
    az(env, "aks", "get-credentials", *IDS, "--file", str(kubeconfig), "--overwrite-existing")
    kube_env = {**env, "KUBECONFIG": str(kubeconfig)}
    vnet = managed_cluster(sim)["properties"]["agentPoolProfiles"][0]["vnetSubnetID"].split("/")[8]
    manual, steps = timed([
        ("az network vnet subnet create", lambda: az(
            env, "network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", vnet, "-n", SUBNET,
            "--address-prefixes", "10.241.0.0/16", "--delegations", "Microsoft.ContainerInstance/containerGroups",
            "-o", "none")),
        ("az aks enable-addons", lambda: az(env, "aks", "enable-addons", *IDS, "--addons", "virtual-node",
                                            "--subnet-name", SUBNET, "-o", "none")),
        ("kubectl wait", lambda: [run(kube_env, [str(KUBECTL), "wait", f"--for={cond}", f"node/{NODE}",
                                                 "--timeout=300s"]) for cond in ("create", "condition=Ready")]),
    ])
    if not node_ready(sim):
        raise RuntimeError("the manual sequence ended before the virtual node was Ready")
    return {"lro_s": args.lro, "retry_after_hint": args.retry_after_hint, "backoff_scale": args.scale,
            "enable_s": round(enable, 2), "manual_sequence_s": round(manual, 2), "manual_steps_s": steps,
            "enable_ratio": round(manual / enable, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="grant,enable", help="comma-separated: grant, enable (default: both)")
    parser.add_argument("--scale", type=float, default=0.1,
                        help="timings.backoff_scale: the kubelet back-off 10 s ... 300 s times this (default 0.1)")
    parser.add_argument("--at", type=float, default=0.5,
                        help="when the role is granted, as a fraction of one capped back-off (default 0.5)")
    parser.add_argument("--lro", type=float, default=5.0, help="seconds each ARM long-running operation takes")
    parser.add_argument("--retry-after-hint", action="store_true",
                        help="aksim sends Retry-After on LROs (quick smoke runs only; Azure sends none)")
    parser.add_argument("--extension-dir", help="an AZURE_EXTENSION_DIR with the extension already installed "
                                                "(instead of installing EXTENSION_WHEEL)")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    wheel = os.environ.get("EXTENSION_WHEEL")
    if not wheel and not args.extension_dir:
        print("set EXTENSION_WHEEL to the built wheel (make bench does) or pass --extension-dir", file=sys.stderr)
        return 2
    if not parts or parts - {"grant", "enable"}:
        parser.error("--parts takes grant, enable")
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulator("demo").start()
        try:
            env = login(sim, Path(tmp) / "azure")
            env["AZURE_EXTENSION_DIR"] = args.extension_dir or str(Path(tmp) / "ext")
            env.pop("AZEXT_VIRTUALNODE_POLL_INTERVAL", None)       # the extension's own default (2 s)
            if not args.extension_dir:
                az(env, "extension", "add", "--source", wheel, "-y")
            if "grant" in parts:
                result["heal"] = part_grant(sim, env, args)
            if "enable" in parts:
                result["enable_vs_manual"] = part_enable(sim, env, Path(tmp), args)
        finally:
            sim.stop()
    print(json.dumps(result, indent=2))
    if "heal" in result:
        print(f"healing ratio (grant -> Ready, without / with healing): {result['heal']['healing_ratio']}x")
    if "enable_vs_manual" in result:
        print(f"enable ratio (manual sequence / az aks virtual-node enable): "
              f"{result['enable_vs_manual']['enable_ratio']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
