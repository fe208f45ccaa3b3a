"""Mode ``chart``: the self-managed legacy connector chart ``virtual-kubelet-azure-aci`` — what it does
differently from the other modes: ``helm upgrade --install`` (chart.Helm) instead of a managed-cluster PUT, the
release's own namespace and node name, and the roles this extension grants the kubelet identity (or
``--identity``) instead of AKS. ``workflow.enable`` runs the shared steps around ``connectors.Mode``.
"""
from __future__ import annotations

import time
from typing import Any

from azure.cli.core.azclierror import ValidationError

from azext_virtualnode._consts import (CHART_NAME, CHART_NAMESPACE, CHART_NODE_NAME, CHART_RELEASE,
                                       HELM_RELEASE_NAMESPACE)
from azext_virtualnode.addon import ClusterView
from azext_virtualnode.chart import (ChartSettings, Helm, Release, chart_values, find_releases, fullname,
                                     refuse_pending, resolve_chart)
from azext_virtualnode.connectors.v2 import CHART_NAME as V2_CHART
from azext_virtualnode.context import Ctx, node_resource_group_id, progress
from azext_virtualnode.identity import GROUPS_NEED, SUBNET_NEED, chart_identity, ensure_role, identity_by_client_id
from azext_virtualnode.kube import ClusterUnreachable
from azext_virtualnode.network import subnet_prefixes
from azext_virtualnode.roles import ROLE_ASSIGNMENT_WRITE


class ChartEnable:  # pylint: disable=too-many-instance-attributes
    """Mode ``chart``: ``helm upgrade --install`` of virtual-kubelet-azure-aci, running as the kubelet identity (or
    the given one), which gets its roles from this extension instead of from AKS."""

    def __init__(self, ctx: Ctx, opts: Any, deadline: float) -> None:
        self.ctx, self.opts, self.deadline = ctx, opts, deadline
        self.release = opts.release or CHART_RELEASE
        self.node_name = opts.node_name or CHART_NODE_NAME
        self.namespace = opts.namespace or CHART_NAMESPACE
        self.existing: Release | None = None
        self.helm: Helm | None = None
        self.chart: Any = None
        self.identity: dict[str, Any] = {}
        self.values: dict[str, Any] = {}

    @property
    def connector_namespace(self) -> str:
        return self.namespace

    @property
    def connector_selector(self) -> str:
        return f"app={fullname(self.release)}"

    @property
    def was_installed(self) -> bool:
        return self.existing is not None

    def preflight(self, cluster: ClusterView) -> str | None:
        ctx = self.ctx
        if cluster.addon_enabled:
            raise ValidationError(
                f"The managed ACI connector add-on is enabled on cluster '{ctx.name}'; a chart-installed connector "
                f"would run a second connector on the same subnet. Run 'az aks virtual-node disable {ctx.ids}' "
                "first, then enable with --mode chart.")
        self.helm = Helm.discover()
        self.chart = resolve_chart(self.opts.chart, self.opts.chart_version)
        try:
            with ctx.kube() as kube:
                releases = find_releases(kube, (CHART_NAME, V2_CHART))
                self._refuse_v2([r for r in releases if r.chart_name == V2_CHART])
                self._check_releases([r for r in releases if r.chart_name == CHART_NAME])
                if self.existing is not None:
                    refuse_pending(ctx, self.existing)
                self._check_namespace(kube.namespace(self.namespace))
        except ClusterUnreachable as exc:
            raise ValidationError(f"Cannot reach the Kubernetes API server of cluster '{ctx.name}' ({exc}), which "
                                  "Helm needs. Run from a network that reaches it. Nothing was changed.") from None
        self.identity = self._current_identity(cluster) or chart_identity(ctx, cluster, self.opts.identity)
        return self.existing.subnet_name if self.existing else None

    def _refuse_v2(self, releases: list[Release]) -> None:
        if releases:
            raise ValidationError(
                f"Virtual Nodes v2 is installed on cluster '{self.ctx.name}' (Helm release '{releases[0].name}' of "
                f"chart {V2_CHART}); the modes exclude each other. Remove it first with 'az aks virtual-node disable "
                f"{self.ctx.ids}', then enable with --mode chart. Nothing was changed.")

    def _current_identity(self, cluster: ClusterView) -> dict[str, Any] | None:
        """On a re-run without --identity, the identity the installed release already uses (like its subnet,
        namespace and node name, it stays unless given anew)."""
        if self.opts.identity or self.existing is None or not self.existing.identity_client_id:
            return None
        return identity_by_client_id(self.ctx, cluster, self.existing.identity_client_id)

    def _check_releases(self, releases: list[Release]) -> None:
        mine = [r for r in releases if r.name == self.release and r.release_namespace == HELM_RELEASE_NAMESPACE]
        others = [r for r in releases if r not in mine]
        if others:
            r = others[0]
            raise ValidationError(
                f"Chart {CHART_NAME} is already installed on cluster '{self.ctx.name}' as Helm release '{r.name}' "
                f"(namespace '{r.release_namespace}', node '{r.node_name}'). Two connectors would share the subnet. "
                f"Re-run with --release {r.name} to update it, or remove it with 'az aks virtual-node disable "
                f"{self.ctx.ids}'.")
        self.existing = mine[0] if mine else None
        if self.existing:
            self.namespace = self.opts.namespace or self.existing.namespace
            self.node_name = self.opts.node_name or self.existing.node_name

    def _check_namespace(self, namespace: Any | None) -> None:
        """The chart creates (and on uninstall deletes) its namespace, so it must not exist unless Helm made it
        for this release."""
        if namespace is None:
            return
        meta = namespace.metadata
        annotations, labels = meta.annotations or {}, meta.labels or {}
        if labels.get("app.kubernetes.io/managed-by") == "Helm" and \
                annotations.get("meta.helm.sh/release-name") == self.release and \
                annotations.get("meta.helm.sh/release-namespace") == HELM_RELEASE_NAMESPACE:
            return
        raise ValidationError(
            f"Namespace '{self.namespace}' already exists and was not created by Helm release '{self.release}'. The "
            f"chart creates its own namespace and deletes it on uninstall, so it needs one that does not exist yet: "
            f"pass another --namespace (default '{CHART_NAMESPACE}'). Nothing was changed.")

    def prepare(self, cluster: ClusterView, plan: Any) -> None:
        vnet_parts = (cluster.vnet_id or "").split("/")
        master = cluster.model.fqdn or getattr(cluster.model, "private_fqdn", None)
        if not master:
            raise ValidationError(f"Cluster '{self.ctx.name}' reports no API server FQDN (needed for MASTER_URI).")
        net = cluster.model.network_profile
        self.values = chart_values(ChartSettings(
            namespace=self.namespace, node_name=self.node_name, aci_resource_group=cluster.node_resource_group,
            aci_region=cluster.location.replace(" ", "").lower(), master_uri=f"https://{master}:443",
            vnet_resource_group=vnet_parts[4] if len(vnet_parts) > 4 else "", vnet_name=vnet_parts[-1],
            subnet_name=plan.name, subnet_cidr=plan.prefix, cluster_cidr=pod_cidr(cluster, plan.vnet),
            kube_dns_ip=(net.dns_service_ip if net else None) or "10.0.0.10",
            identity_client_id=None if self.identity["kind"] == "servicePrincipal" else self.identity["clientId"]))

    def rights(self, cluster: ClusterView) -> list[tuple[str, str]]:
        if self.opts.skip_role_assignment:
            return []
        return [(ROLE_ASSIGNMENT_WRITE, cluster.vnet_id), (ROLE_ASSIGNMENT_WRITE, node_resource_group_id(cluster))]

    def apply(self, cluster: ClusterView, plan: Any) -> bool:
        """Grant the roles and install/upgrade the release; True when a missing role was granted."""
        ctx, granted = self.ctx, False
        if not self.opts.skip_role_assignment:
            granted = ensure_role(ctx, self.identity, plan.id, cluster, self.deadline, SUBNET_NEED)
            granted = ensure_role(ctx, self.identity, node_resource_group_id(cluster), cluster, self.deadline,
                                  GROUPS_NEED) or granted
        if self._up_to_date():
            progress(f"Helm release '{self.release}' is up to date.")
            return granted
        assert self.helm is not None
        progress(f"Installing chart {CHART_NAME} {self.chart.version or ''} as Helm release '{self.release}' "
                 f"(namespace '{self.namespace}', node '{self.node_name}')...")
        self.helm.upgrade_install(self.release, self.chart, HELM_RELEASE_NAMESPACE, self.values, ctx.kubeconfig(),
                                  max(self.deadline - time.monotonic(), 1))
        ctx.done.append(f"installed Helm release '{self.release}'")
        return granted

    def _up_to_date(self) -> bool:
        r = self.existing
        return bool(r and r.status == "deployed" and r.config == self.values and self.chart.version and
                    r.chart_version == self.chart.version)


def pod_cidr(cluster: ClusterView, vnet: dict[str, Any]) -> str:
    """The range pods take addresses from: Azure CNI gives them node-subnet (or pod-subnet) addresses."""
    pools = cluster.model.agent_pool_profiles or []
    subnet_id = (getattr(pools[0], "pod_subnet_id", None) or pools[0].vnet_subnet_id) if pools else None
    for subnet in (vnet.get("properties") or {}).get("subnets") or []:
        if subnet_id and subnet["id"].lower() == subnet_id.lower():
            prefixes = subnet_prefixes(subnet)
            return str(prefixes[0]) if prefixes else ""
    net = cluster.model.network_profile
    return (net.pod_cidr if net else None) or ""
