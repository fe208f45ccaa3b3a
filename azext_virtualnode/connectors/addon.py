"""Mode ``addon``: the managed AKS add-on ``aciConnectorLinux`` — what it does differently from the other modes.

A managed-cluster PUT turns the connector on and AKS creates its identity, which gets Network Contributor on
the subnet. ``workflow.enable`` runs the shared steps around the four of ``connectors.Mode``: preflight,
prepare, rights, apply. Imports of ``workflow`` stay inside functions (workflow imports this module).
"""
from __future__ import annotations

import time
from typing import Any

from azure.cli.core.azclierror import ValidationError

from azext_virtualnode._consts import (ADDON_NODE_NAME, CHART_NAME, CONNECTOR_LABEL_SELECTOR, CONNECTOR_NAMESPACE,
                                       DEFAULT_SUBNET_NAME)
from azext_virtualnode.addon import ClusterView, set_addon
from azext_virtualnode.connectors.v2 import CHART_NAME as V2_CHART
from azext_virtualnode.context import Ctx, progress
from azext_virtualnode.identity import connector_identity, ensure_role
from azext_virtualnode.kube import ClusterUnreachable
from azext_virtualnode.operations import timeout_error, wait_operation
from azext_virtualnode.roles import CLUSTER_WRITE, ROLE_ASSIGNMENT_WRITE


class AddonEnable:
    """Mode ``addon``: a managed-cluster PUT turns the connector on; AKS creates its identity."""
    node_name = ADDON_NODE_NAME
    connector_namespace, connector_selector = CONNECTOR_NAMESPACE, CONNECTOR_LABEL_SELECTOR

    def __init__(self, ctx: Ctx, opts: Any, deadline: float) -> None:
        self.ctx, self.opts, self.deadline = ctx, opts, deadline
        self.identity: dict[str, Any] | None = None
        self.was_installed = False

    def preflight(self, cluster: ClusterView) -> str | None:
        ctx, name = self.ctx, self.opts.subnet_name or cluster.addon_subnet or DEFAULT_SUBNET_NAME
        if cluster.addon_enabled and (cluster.addon_subnet or "").lower() != name.lower():
            raise ValidationError(
                f"Virtual nodes are already enabled on cluster '{ctx.name}' with subnet '{cluster.addon_subnet}'. To "
                f"move to subnet '{name}', first run 'az aks virtual-node disable {ctx.ids}' (add --delete-subnet to "
                f"remove the old subnet), then 'az aks virtual-node enable {ctx.ids} --subnet-name {name}'.")
        if not cluster.addon_enabled:
            refuse_if_chart_installed(ctx)
        self.was_installed = cluster.addon_enabled
        return cluster.addon_subnet

    def prepare(self, cluster: ClusterView, plan: Any) -> None:  # pylint: disable=unused-argument
        self.identity = None if cluster.is_msi else connector_identity(self.ctx, cluster)

    def rights(self, cluster: ClusterView) -> list[tuple[str, str]]:
        needs = [] if self.opts.skip_role_assignment else [(ROLE_ASSIGNMENT_WRITE, cluster.vnet_id)]
        return needs + ([] if cluster.addon_enabled else [(CLUSTER_WRITE, cluster.id)])

    def apply(self, cluster: ClusterView, plan: Any) -> bool:
        """Turn the add-on on and grant its role; True when a missing role was granted."""
        if not cluster.addon_enabled:
            cluster = turn_on_addon(self.ctx, cluster, plan.name, self.opts.no_wait)
        if self.opts.skip_role_assignment:
            return False
        identity = self.identity or wait_for_identity(self.ctx, cluster, self.deadline)
        return ensure_role(self.ctx, identity, plan.id, cluster, self.deadline)


def refuse_if_chart_installed(ctx: Ctx) -> None:
    """Two connectors must not share a subnet: no add-on while a chart release runs."""
    from azext_virtualnode.workflow import chart_releases
    try:
        releases = chart_releases(ctx)
    except ClusterUnreachable as exc:
        progress(f"Warning: could not check the cluster for a chart-installed connector ({exc}); continuing.")
        return
    if releases and releases[0].chart_name == V2_CHART:
        r = releases[0]
        raise ValidationError(
            f"Virtual Nodes v2 is installed on cluster '{ctx.name}' (Helm release '{r.name}' of chart {V2_CHART}); "
            f"the modes exclude each other. Remove it first with 'az aks virtual-node disable {ctx.ids}', then enable "
            "the add-on, or keep it ('az aks virtual-node enable ... --mode v2'). Nothing was changed.")
    if releases:
        r = releases[0]
        raise ValidationError(
            f"A self-managed ACI connector is installed on cluster '{ctx.name}' (Helm release '{r.name}' of chart "
            f"{CHART_NAME} in namespace '{r.release_namespace}'); the add-on would run a second connector on the same "
            f"subnet. Remove it first with 'az aks virtual-node disable {ctx.ids}', then enable the add-on, or keep "
            "the chart ('az aks virtual-node enable ... --mode chart').")


def finite(at: float) -> float | None:
    return at if at != float("inf") else None


def turn_on_addon(ctx: Ctx, cluster: ClusterView, subnet: str, no_wait: bool) -> ClusterView:
    poller = set_addon(ctx.clusters, ctx.resource_group, cluster, subnet, no_wait=no_wait,
                       deadline=finite(ctx.deadline.at))
    if no_wait:
        return ClusterView(poller.result())
    progress("Turning on the ACI connector add-on...")
    result = wait_operation(ctx, poller, f"turning on the ACI connector add-on of cluster '{ctx.name}'",
                            f"az aks virtual-node enable {ctx.ids}")
    ctx.done.append("turned on the ACI connector add-on")
    return ClusterView(result)


def wait_for_identity(ctx: Ctx, cluster: ClusterView, deadline: float) -> dict[str, Any]:
    identity = connector_identity(ctx, cluster)
    while identity is None:
        if time.monotonic() > deadline:
            raise timeout_error(ctx, f"Cluster '{ctx.name}' did not report the ACI connector identity in time.",
                                None, f"az aks virtual-node enable {ctx.ids}")
        time.sleep(2)
        identity = connector_identity(ctx, ctx.cluster())
    return identity
