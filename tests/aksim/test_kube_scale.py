"""Scale: 5,000 nodes and 100,000 pods load fast and field-selected lists stay fast over HTTPS."""
from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from kubernetes import client

from kube_harness import KUBECTL, KubeServer, node

NODES = 5_000
PODS = 100_000


def pods() -> Iterator[dict[str, Any]]:
    for i in range(PODS):
        node_name = f"aks-nodepool1-{i % NODES:05d}"
        app = f"app-{i // 20}"
        yield {"metadata": {"name": f"{app}-{i:06x}", "namespace": f"apps-{i % 10}",
                            "labels": {"app": app, "pod-template-hash": "5d4f8c7b9"},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": app,
                                                 "uid": f"00000000-0000-0000-0000-{i // 20:012d}",
                                                 "controller": True, "blockOwnerDeletion": True}]},
               "spec": {"nodeName": node_name,
                        "containers": [{"name": "app", "image": "mcr.microsoft.com/azuredocs/aci-helloworld",
                                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                                        "ports": [{"containerPort": 80, "protocol": "TCP"}]}]},
               "status": {"phase": "Running", "podIP": f"10.{16 + i // 65536}.{(i >> 8) & 255}.{i & 255}",
                          "hostIP": "10.224.0.4", "qosClass": "Burstable",
                          "conditions": [{"type": t, "status": "True"} for t in ("Initialized", "Ready",
                                                                                 "ContainersReady", "PodScheduled")],
                          "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0, "started": True,
                                                 "image": "mcr.microsoft.com/azuredocs/aci-helloworld",
                                                 "imageID": "", "state": {"running": {
                                                     "startedAt": "2025-01-01T00:00:00Z"}}}]}}


@pytest.mark.slow
def test_scale_load_and_field_selected_list(tmp_path: Path) -> None:
    with KubeServer(tmp_path) as kube:
        node_objects, pod_objects = [node(f"aks-nodepool1-{i:05d}") for i in range(NODES)], list(pods())
        started = time.monotonic()
        kube.store.bulk_load("nodes", node_objects)
        kube.store.bulk_load("pods", pod_objects)
        load_seconds = time.monotonic() - started
        assert load_seconds < 30, f"bulk load took {load_seconds:.1f}s"
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 2 * 1024 * 1024   # KiB: < 2 GiB

        core = client.CoreV1Api(kube.client())
        core.list_pod_for_all_namespaces(field_selector="spec.nodeName=aks-nodepool1-00000")     # warm connection
        timings = []
        for n in (17, 1234, 2500, 3999, 4999):
            t0 = time.perf_counter()
            result = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName=aks-nodepool1-{n:05d}")
            timings.append(time.perf_counter() - t0)
            assert len(result.items) == PODS // NODES
        assert statistics.median(timings) < 0.1, f"field-selected list timings: {timings}"

        t0 = time.perf_counter()
        status, body = kube.raw_json("GET", "/api/v1/pods?labelSelector=app%3Dapp-42")
        assert status == 200 and len(body["items"]) == 20 and time.perf_counter() - t0 < 0.5
        status, page = kube.raw_json("GET", "/api/v1/pods?limit=500")
        assert len(page["items"]) == 500 and page["metadata"]["remainingItemCount"] == PODS - 500

        if KUBECTL.exists():
            out = kube.kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=aks-nodepool1-00042",
                               "--no-headers").stdout
            assert len(out.strip().splitlines()) == PODS // NODES
