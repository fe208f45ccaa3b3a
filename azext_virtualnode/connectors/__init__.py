"""One module per connector kind: what differs between the add-on, the legacy chart and Virtual Nodes v2.

- ``addon`` (mode ``addon``): the managed AKS add-on, turned on by a managed-cluster PUT.
- ``chart`` (mode ``chart``): the legacy ``virtual-kubelet-azure-aci`` Helm chart.
- ``v2_mode`` (mode ``v2``): Virtual Nodes v2, the ``virtualnode`` Helm chart (facts in ``v2``, Kubernetes
  reads in ``v2_kube``, status rules in ``v2_health``); one node per replica, its own enable, verify, status,
  scale and disable built from the shared steps.

``workflow.enable`` orchestrates the shared steps (cluster idle, access preflight, subnet plan, region and
provider, caller rights, provider registration, subnet write, crash-loop healing, verification) around the
four steps of ``Mode`` below, which the add-on and the legacy chart implement; v2, whose node count, checks and
verification differ, is dispatched to ``v2_mode.enable`` as a whole and reuses the same shared steps.
"""
from __future__ import annotations

from typing import Any, Protocol


class Mode(Protocol):
    """What ``enable`` asks of a single-node connector kind (add-on, legacy chart)."""
    node_name: str               # the virtual node it registers
    connector_namespace: str     # where its pods run ...
    connector_selector: str      # ... and their label selector
    was_installed: bool          # it ran before this command (a re-run)

    def preflight(self, cluster: Any) -> str | None:
        """Mode checks before any write; returns the subnet the installed connector uses, if any."""

    def prepare(self, cluster: Any, plan: Any) -> None:
        """Compute what the install needs from the cluster and the subnet plan (identity, values)."""

    def rights(self, cluster: Any) -> list[tuple[str, str]]:
        """(action, scope) pairs the caller needs for this mode's writes."""

    def apply(self, cluster: Any, plan: Any) -> bool:
        """Install or update the connector and grant its roles; True when a missing role was granted."""
