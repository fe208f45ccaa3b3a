"""The simulated control plane of each cluster: add-on manager, controllers, scheduler, kubelets, connectors.

``attach`` starts it for a freshly seeded cluster; ``on_cluster_changed`` runs (under the simulator lock)
whenever a managed-cluster operation completed, so the Kubernetes side follows the ARM side.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from aksim.controlplane.runtime import ControlPlane

if TYPE_CHECKING:
    from aksim.world import Cluster, World

__all__ = ["ControlPlane", "attach", "control_plane", "on_cluster_changed"]


def attach(world: "World", cluster: "Cluster") -> ControlPlane:
    cp = ControlPlane(world, cluster)
    cluster.extra["controlplane"] = cp
    cp.start()
    return cp


def control_plane(cluster: "Cluster") -> ControlPlane:
    return cluster.extra["controlplane"]


def on_cluster_changed(world: "World", cluster: "Cluster") -> None:
    cp = cluster.extra.get("controlplane")
    if cp is None:
        cp = attach(world, cluster)
    cp.addon.reconcile()
