#!/usr/bin/env python
"""Simulator speed and size: start-up, loading large.yaml, memory, and a field-selected pod list on it.

Prints one JSON object; `--check` exits 1 when a number misses the issue's limits
(start < 1 s, large load < 30 s and < 2 GiB, field-selected list < 100 ms).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aksim.sim import Simulator  # noqa: E402

LIMITS = {"start_s": 1.0, "large_load_s": 30.0, "large_rss_mib": 2048.0, "field_list_ms": 100.0}


def measure() -> dict[str, float]:
    started = time.perf_counter()
    sim = Simulator("demo").start()
    start_s = time.perf_counter() - started
    try:
        loaded = time.perf_counter()
        sim.load("large")
        large_load_s = time.perf_counter() - loaded
        rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cluster = next(iter(sim.world.clusters.values()))
        from kubernetes import client, config
        from aksim.arm.containerservice import kubeconfig
        import yaml
        api = client.CoreV1Api(config.new_client_from_config_dict(
            yaml.safe_load(kubeconfig(cluster, sim.tls.ca_data_b64, admin=True))))
        node = cluster.store.list("nodes", field_selector="")[1234]["metadata"]["name"]
        timings = []
        for _ in range(20):
            t = time.perf_counter()
            pods = api.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}")
            timings.append((time.perf_counter() - t) * 1000)
        total_pods = len(cluster.store.list("pods", namespace="apps-0"))
    finally:
        sim.stop()
    return {"start_s": round(start_s, 3), "large_load_s": round(large_load_s, 2), "large_rss_mib": round(rss_mib),
            "field_list_ms": round(statistics.median(timings), 2), "pods_on_node": len(pods.items),
            "pods_in_one_namespace": total_pods}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when a limit is exceeded")
    args = parser.parse_args()
    result = measure()
    result["limits"] = LIMITS
    result["within_limits"] = all(result[k] < v for k, v in LIMITS.items())
    print(json.dumps(result, indent=2))
    return 0 if result["within_limits"] or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
