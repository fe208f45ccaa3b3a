#!/usr/bin/env python
"""`az aks virtual-node status` on demo.yaml (3 nodes) vs large.yaml (5,000 nodes, 100,000 pods).

Runs the real az with the extension wheel ($EXTENSION_WHEEL) against the simulator and prints, per
scenario, the requests status sent to ARM and to Kubernetes and its median wall time over a few runs, plus
the large/demo ratios. Request counts must be equal (ratio 1.0); time should stay flat. It also times
`az aks show` on the same cluster (median of 5, interleaved with status) and prints status/show per scenario
(target: at most 1.5).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aksim.azconfig import az_command, login  # noqa: E402
from aksim.scenario import read_raw  # noqa: E402
from aksim.sim import Simulator  # noqa: E402

IDS = ["-g", "demo-rg", "-n", "aks-demo"]
FAST = {"lro": 0.3, "poll": 0.1, "connector_start": 0.3, "node_register": 0.2}


def az(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(az_command() + list(args), env=env, capture_output=True, text=True, check=True)
    return proc.stdout


def run(sim: Simulator, env: dict[str, str], scenario: str, runs: int) -> dict[str, object]:
    raw = read_raw(scenario)
    raw["timings"] = {**raw.get("timings", {}), **FAST}
    sim.load(raw)
    az(env, "aks", "virtual-node", "enable", *IDS, "--timeout", "180", "-o", "none")
    durations, show = [], []
    for _ in range(runs):
        t = time.perf_counter()
        az(env, "aks", "show", *IDS, "-o", "none")
        show.append(time.perf_counter() - t)
        sim.reset_logs()
        t = time.perf_counter()
        az(env, "aks", "virtual-node", "status", *IDS, "-o", "none")
        durations.append(time.perf_counter() - t)
    median, show_median = statistics.median(durations), statistics.median(show)
    return {"arm_requests": sim.request_log("arm")["total"], "kube_requests": sim.request_log("kube")["total"],
            "median_s": round(median, 2), "aks_show_median_s": round(show_median, 2),
            "status_to_aks_show": round(median / show_median, 2)}


def main() -> int:
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
            demo = run(sim, env, "demo", 5)
            large = run(sim, env, "large", 5)
        finally:
            sim.stop()
    ratios = {k: round(large[k] / demo[k], 2) for k in ("arm_requests", "kube_requests", "median_s") if demo[k]}
    print(json.dumps({"demo": demo, "large": large, "ratio_large_to_demo": ratios}, indent=2))
    return 0 if ratios["arm_requests"] == 1.0 and ratios["kube_requests"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
