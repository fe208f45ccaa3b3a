"""Mode ``v2``: Virtual Nodes v2 (Helm chart ``virtualnode``) — what it does differently from the add-on and
the legacy chart, in one place: enable, verify, status, scale, disable.

Shared with the other modes (workflow.py and the domain modules): the Helm runner with its private 0600
kubeconfig/values files and scrubbing (chart.Helm), release discovery from Helm's Secrets
(chart.find_releases), the subnet plan and delegation (workflow.plan_subnet, SubnetClient.ensure_delegated),
the caller's rights check, the role grants (identity.ensure_role: marked, replication retry), the one
deadline and wait_operation, crash-loop healing and the confirmation prompt.

What differs (facts: connectors/v2.py; reference virtual-nodes-v2.md):
- one node per StatefulSet replica, ``<fullname>-<ordinal>``, whose kubelet runs in a pod on a regular node:
  enable and scale check the free room for 2.8 CPU / 9G per replica before installing;
- the cluster must be Azure CNI node-subnet without API-server authorized IP ranges;
- the chart's fixed names (admission webhook, Secret, Service, Deployment, namespace) must not collide;
- the infra pods act as the kubelet identity (the node's azure.json): it gets Azure Container Instances
  Contributor Role on the ACI resource group and Network Contributor on each ACI subnet — not the Contributor
  on two resource groups the VN2 docs suggest;
- node objects outlive their pods (scale-down, uninstall) and stay Ready: scale and disable delete them.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

from azure.cli.core.azclierror import InvalidArgumentValueError, ValidationError
from knack.util import CLIError

from azext_virtualnode import _client_factory as cf
from azext_virtualnode._consts import ACI_PROVIDER, CHART_NAME as LEGACY_CHART, HELM_RELEASE_NAMESPACE, \
    NETWORK_API_VERSION
from azext_virtualnode.access import preflight as access_preflight
from azext_virtualnode.addon import ClusterView, require_azure_cni, wait_until_idle
from azext_virtualnode.chart import ChartRef, Helm, Release, chart_metadata, find_releases, refuse_pending
from azext_virtualnode.connectors import v2
from azext_virtualnode.connectors import v2_kube as vk
from azext_virtualnode.connectors.v2_health import InfraPod, V2Facts, V2Node, V2Subnet, build_status, evaluate
from azext_virtualnode.health import crash_looping
from azext_virtualnode.context import Ctx, Deadline, Timeout, Waiting, node_resource_group_id, progress
from azext_virtualnode.identity import (GROUPS_NEED, SUBNET_NEED, chart_identity, ensure_role, identity_by_client_id,
                                        role_state)
from azext_virtualnode.kube import ClusterUnreachable, owned_by_daemonset
from azext_virtualnode.network import SubnetFacts, check_existing_subnet, subnet_body
from azext_virtualnode.operations import timeout_report, wait_operation
from azext_virtualnode.roles import ROLE_ASSIGNMENT_WRITE, SUBNET_WRITE


def _writes() -> tuple[Any, ...]:
    """What enable/scale write on the cluster (access.preflight checks them first on Entra ID clusters)."""
    from azext_virtualnode.access import CHART_WRITES, READS, Need
    return READS + CHART_WRITES + (
        Need("create", "statefulsets", "apps", "the virtual nodes' StatefulSet"),
        Need("create", "mutatingwebhookconfigurations", "admissionregistration.k8s.io", "the admission webhook"),
        Need("patch", "nodes", why="cordoning the nodes a scale-down removes"))


MAX_REPLICAS = 30       # see _params.py: 30 nodes x 200 pods = 6000 ACI pods; beyond, split across clusters
CHART_NAMES = (LEGACY_CHART, v2.CHART_NAME)
NAT_API_VERSION = NETWORK_API_VERSION


# -- the installed release -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class V2Release:
    """A Helm release of the ``virtualnode`` chart, read as the chart renders it."""
    release: Release

    @property
    def name(self) -> str:
        return self.release.name

    @property
    def chart_version(self) -> str:
        return self.release.chart_version

    @property
    def values(self) -> dict[str, Any]:
        return self.release.values

    @property
    def replicas(self) -> int:
        try:
            return int(self.values.get("replicaCount", 1))
        except (TypeError, ValueError):
            return 1

    @property
    def namespace(self) -> str:
        return v2.target_namespace(self.release.release_namespace, self.values, self.chart_version)

    @property
    def fullname(self) -> str:
        return v2.fullname(self.name, self.values)

    @property
    def subnets(self) -> list[str]:
        return [s.strip() for s in str(self.values.get("aciSubnetName") or v2.SUBNET).split(",") if s.strip()]

    @property
    def aci_resource_group(self) -> str | None:
        return self.values.get("aciResourceGroupName") or None

    @property
    def admission_replicas(self) -> int:
        try:
            return int(self.values.get("admissionControllerReplicaCount", 1))
        except (TypeError, ValueError):
            return 1

    def node_names(self) -> list[str]:
        return v2.node_names(self.fullname, self.replicas)

    def as_status(self) -> dict[str, Any]:
        r = self.release
        return {"release": r.name, "namespace": self.namespace, "releaseNamespace": r.release_namespace,
                "chart": r.chart_name, "version": r.chart_version, "revision": r.revision, "status": r.status,
                "replicas": self.replicas, "fullname": self.fullname}


def connector(release: Release) -> Any:
    """workflow.Connector for a v2 release (detect/status/place/prune)."""
    from azext_virtualnode.workflow import Connector
    rel = V2Release(release)
    return Connector("v2", f"{rel.fullname}-0", rel.namespace, vk.infra_selector(rel.name),
                     rel.subnets[0] if rel.subnets else None, release)


# -- enable ----------------------------------------------------------------------------------------------------
def check_cluster(ctx: Ctx, cluster: ClusterView) -> int:
    """Azure CNI node subnet, no authorized IP ranges; returns the Kubernetes minor."""
    require_azure_cni(cluster)
    access = cluster.model.api_server_access_profile
    ranges = list(getattr(access, "authorized_ip_ranges", None) or []) if access else []
    if ranges:
        raise ValidationError(
            f"Cluster '{ctx.name}' restricts its API server to authorized IP ranges ({', '.join(ranges[:5])}"
            f"{', ...' if len(ranges) > 5 else ''}); Virtual Nodes v2 does not support that (its virtual kubelets "
            "reach the API server from Azure Container Instances). Remove them with 'az aks update "
            f"{ctx.ids} --api-server-authorized-ip-ranges \"\"', or use the add-on ('--mode addon'). Nothing was "
            "changed.")
    version = cluster.model.current_kubernetes_version or cluster.model.kubernetes_version or ""
    try:
        return v2.kubernetes_minor(version)
    except ValueError:
        raise ValidationError(f"Cluster '{ctx.name}' reports Kubernetes version '{version}', which this command "
                              "cannot map to a Virtual Nodes v2 chart.") from None


def resolve_chart(ctx: Ctx, chart: str | None, version: str | None, minor: int) -> ChartRef:
    """The chart to install and its version, checked against the cluster's Kubernetes minor before any change."""
    if chart and "://" not in chart:
        path = os.path.abspath(os.path.expanduser(chart))
        if not os.path.exists(path):
            raise InvalidArgumentValueError(f"--chart '{chart}' does not exist. Pass the virtualnode chart's "
                                            "directory or .tgz package, or a URL; omit --chart to use the published "
                                            "package.")
        meta = chart_metadata(path)
        if (meta.get("name") or "") != v2.CHART_NAME:
            raise InvalidArgumentValueError(f"--chart '{chart}' is chart '{meta.get('name')}', not {v2.CHART_NAME} "
                                            "(Virtual Nodes v2).")
        found = str(meta.get("version") or "")
        if version and found != version:
            raise InvalidArgumentValueError(f"--chart '{chart}' is version {found}, not --chart-version {version}.")
        ref = ChartRef(path, found or None, False)
    elif chart:
        if version and not chart.startswith("oci://"):
            raise InvalidArgumentValueError(f"--chart-version cannot be combined with the chart URL '{chart}'. Put "
                                            "the version in the URL, or omit --chart.")
        ref = ChartRef(chart, version, bool(version))
    else:
        picked = version or v2.pick_version(minor)
        if picked is None:
            raise ValidationError(f"No Virtual Nodes v2 chart is tested with Kubernetes 1.{minor} (cluster "
                                  f"'{ctx.name}'). Upgrade the cluster ('az aks upgrade {ctx.ids} ...') to a version "
                                  f"the compatibility table covers ({', '.join(f'1.{m}' for m in range(29, 35))}).")
        if not version:
            progress(f"Using chart {v2.CHART_NAME} {picked}: the newest chart of a line tested with Kubernetes "
                     f"1.{minor} ({', '.join(v2.tested_lines(minor))}).")
        ref = ChartRef(v2.CHART_URL.format(version=picked), picked, False)
    if ref.version:
        verdict = v2.support(ref.version, minor)
        if verdict == "-":
            pick = v2.pick_version(minor)
            fix = f"Use --chart-version {pick} (or omit it)" if pick else "Upgrade the cluster first"
            raise ValidationError(
                f"Chart {v2.CHART_NAME} {ref.version} does not support Kubernetes 1.{minor} of cluster '{ctx.name}' "
                f"(VersionCompatibility: lines tested with 1.{minor}: {', '.join(v2.tested_lines(minor)) or 'none'})."
                f" {fix}. Nothing was changed.")
        if verdict in ("?", "unknown"):
            progress(f"Warning: chart {v2.CHART_NAME} {ref.version} is "
                     f"{'untested' if verdict == '?' else 'outside the published version scheme'} with Kubernetes "
                     f"1.{minor}.")
    return ref


def refuse_other_modes(ctx: Ctx, cluster: ClusterView, releases: list[Release], release: str,
                       allow_legacy: bool = False) -> V2Release | None:
    """The three modes exclude each other (except while ``migrate`` moves a cluster from a legacy connector to
    v2: ``allow_legacy``); one v2 release per cluster. Returns our existing release."""
    if cluster.addon_enabled and not allow_legacy:
        raise ValidationError(
            f"The managed ACI connector add-on is enabled on cluster '{ctx.name}'; Virtual Nodes v2 would run next to "
            f"it. Remove it first with 'az aks virtual-node disable {ctx.ids}', then enable with --mode v2. Nothing "
            "was changed.")
    legacy = [r for r in releases if r.chart_name == LEGACY_CHART]
    if legacy and not allow_legacy:
        r = legacy[0]
        raise ValidationError(
            f"The legacy ACI connector chart is installed on cluster '{ctx.name}' (Helm release '{r.name}' of chart "
            f"{LEGACY_CHART}); the modes exclude each other. Remove it first with 'az aks virtual-node disable "
            f"{ctx.ids}', then enable with --mode v2. Nothing was changed.")
    mine = [V2Release(r) for r in releases if r.chart_name == v2.CHART_NAME]
    other = [r for r in mine if not (r.name == release and r.release.release_namespace == HELM_RELEASE_NAMESPACE)]
    if other:
        r = other[0]
        raise ValidationError(
            f"Virtual Nodes v2 is already installed on cluster '{ctx.name}' as Helm release '{r.name}' (namespace "
            f"'{r.release.release_namespace}'); its admission controller and webhook names are fixed, so a second "
            f"release would collide. Re-run with --release {r.name} to update it, or remove it with 'az aks "
            f"virtual-node disable {ctx.ids}'. Nothing was changed.")
    return next(iter(mine), None)


def _owned_by(obj: Any, release: str) -> bool:
    annotations = obj.metadata.annotations or {}
    return annotations.get("meta.helm.sh/release-name") == release and \
        annotations.get("meta.helm.sh/release-namespace") == HELM_RELEASE_NAMESPACE


def check_collisions(ctx: Ctx, kube: Any, release: str, namespace: str) -> None:
    """The chart's fixed names: the webhook configuration, the namespace and the admission objects in it, and
    another VN2 installation (the AKS extension or a raw install: infra pods of another instance)."""
    clashes = []
    hook = vk.webhook(kube)
    if hook is not None and not _owned_by(hook, release):
        clashes.append(f"MutatingWebhookConfiguration '{v2.ADMISSION_NAME}'")
    ns = kube.namespace(namespace)
    if ns is not None and not _owned_by(ns, release):
        clashes.append(f"namespace '{namespace}' (not created by Helm release '{release}'; the chart creates it and "
                       "deletes it on uninstall)")
    if ns is not None:
        for kind, obj in (("Secret", vk.named(kube, "secrets", namespace, v2.ADMISSION_NAME)),
                          ("Service", vk.named(kube, "services", namespace, v2.ADMISSION_NAME)),
                          ("Deployment", vk.admission_deployment(kube, namespace))):
            if obj is not None and not _owned_by(obj, release):
                clashes.append(f"{kind} '{namespace}/{v2.ADMISSION_NAME}'")
    foreign = [p for p in vk.items(kube.get("/api/v1/pods", labelSelector="app.kubernetes.io/name=virtualnode"))
               if (p.metadata.labels or {}).get("app.kubernetes.io/instance") != release]
    if foreign:
        p = foreign[0]
        clashes.append(f"another Virtual Nodes v2 installation (pod {p.metadata.namespace}/{p.metadata.name}; the AKS "
                       f"extension {v2.AKS_EXTENSION_TYPE} runs in 'vn-system')")
    if clashes:
        raise ValidationError(
            f"Virtual Nodes v2 cannot be installed on cluster '{ctx.name}': these objects already exist and the "
            f"chart's names are fixed: {'; '.join(clashes)}. Remove them (an AKS extension with 'az k8s-extension "
            f"delete --cluster-type managedClusters -g {ctx.resource_group} -c {ctx.name} -n <name>'), or pass "
            "another --namespace for a namespace clash. Nothing was changed.")


def check_priority_classes(ctx: Ctx, kube: Any, values: dict[str, Any]) -> None:
    names = [str(values.get(k)) for k in ("priorityClassName", "admissionControllerPriorityClassName")
             if values.get(k)]
    missing = [n for n in dict.fromkeys(names) if vk.priority_class(kube, n) is None]
    if missing:
        raise ValidationError(
            f"The chart values name PriorityClass(es) {', '.join(missing)} that do not exist on cluster "
            f"'{ctx.name}'; the StatefulSet could create no pod. Create them first ('kubectl create priorityclass "
            f"{missing[0]} --value=1000000') or clear the value. Nothing was changed.")


def check_capacity(ctx: Ctx, kube: Any, needed: int, chart_version: str | None) -> None:
    """``needed`` more infra pods must fit on the regular Linux nodes: one node list, then the pods of the
    largest nodes until they fit (``v2_kube.node_rooms``)."""
    if needed <= 0:
        return
    requests = v2.infra_requests(chart_version)
    read = vk.node_rooms(kube, needed, requests)
    error = v2.capacity_error(read.rooms, needed, requests)
    if error:
        raise ValidationError(f"Not enough room on cluster '{ctx.name}' (checked {len(read.rooms)} of "
                              f"{read.nodes_listed} schedulable regular Linux node(s)): {error} Nothing was changed.")


def chart_defaults(ref: ChartRef) -> dict[str, Any]:
    """values.yaml of a local chart (the published one sets no PriorityClass)."""
    import yaml
    path = ref.ref
    if "://" in path or not os.path.isdir(path):
        return {}
    try:
        with open(os.path.join(path, "values.yaml"), encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return {}


def split_subnets(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def resolve_nat_gateway(ctx: Ctx, cluster: ClusterView, value: str) -> str:
    """--nat-gateway NAME (in the VNet's resource group) or ID: must exist, be in the cluster's region, Standard."""
    vnet_rg = (cluster.vnet_id or "").split("/")[4] if (cluster.vnet_id or "").count("/") > 4 else ctx.resource_group
    sub = cluster.id.split("/")[2]
    nat_id = value if value.startswith("/") else \
        f"/subscriptions/{sub}/resourceGroups/{vnet_rg}/providers/Microsoft.Network/natGateways/{value}"
    nat = ctx.subnets.get(nat_id)
    if nat is None:
        raise InvalidArgumentValueError(
            f"NAT gateway '{value}' was not found ({nat_id}). Create one ('az network nat gateway create -g {vnet_rg} "
            f"-n {value.rsplit('/', 1)[-1]} --public-ip-addresses <ip> --location {cluster.location}') or list them "
            f"with 'az network nat gateway list -g {vnet_rg} -o table'. Nothing was changed.")
    location = (nat.get("location") or "").replace(" ", "").lower()
    if location and location != cluster.location.replace(" ", "").lower():
        raise InvalidArgumentValueError(f"NAT gateway '{value}' is in region '{nat.get('location')}', not in the "
                                        f"cluster's region '{cluster.location}'. Nothing was changed.")
    sku = ((nat.get("sku") or {}).get("name") or "Standard")
    if sku != "Standard":
        raise InvalidArgumentValueError(f"NAT gateway '{value}' has SKU '{sku}'; subnets take a Standard NAT gateway. "
                                        "Nothing was changed.")
    return str(nat.get("id") or nat_id)


@dataclass
class V2Plan:  # pylint: disable=too-many-instance-attributes
    cluster: ClusterView
    release: str
    namespace: str
    replicas: int
    chart: ChartRef
    existing: V2Release | None
    subnets: list[Any]                # workflow.SubnetPlan, bodies ready (delegation, NAT gateway)
    nat: dict[str, str | None]        # subnet name -> NAT gateway id after this run
    values: dict[str, Any]
    identity: dict[str, Any] | None
    needs_register: bool
    helm: Helm


# pylint: disable-next=too-many-locals
def plan_enable(ctx: Ctx, opts: Any, cluster: ClusterView, minor: int, allow_legacy: bool = False) -> V2Plan:
    """Every read and check of enable --mode v2 after the cluster's own (``check_cluster``), before any write."""
    from azext_virtualnode.workflow import check_caller_rights, check_region_and_provider, plan_subnet
    helm = Helm.discover()
    release = opts.release or v2.RELEASE
    try:
        with ctx.kube() as kube:
            existing = refuse_other_modes(ctx, cluster, find_releases(kube, CHART_NAMES), release, allow_legacy)
            if existing is not None:
                refuse_pending(ctx, existing.release)
            chart = resolve_chart(ctx, opts.chart, opts.chart_version, minor)
            namespace = opts.namespace or (existing.namespace if existing else v2.NAMESPACE)
            replicas = opts.replicas or (existing.replicas if existing else 1)
            subnets = split_subnets(opts.subnet_name) or (existing.subnets if existing else [v2.SUBNET])
            values = v2.values(replicas, subnets, cluster.node_resource_group, namespace)
            check_collisions(ctx, kube, release, namespace)
            check_priority_classes(ctx, kube, {**chart_defaults(chart), **values})
            running = [p for p in vk.infra_pods(kube, namespace, release) if p.spec.node_name] if existing else []
            check_capacity(ctx, kube, replicas - len(running), chart.version)
    except ClusterUnreachable as exc:
        raise ValidationError(f"Cannot reach the Kubernetes API server of cluster '{ctx.name}' ({exc}), which Helm "
                              "needs. Run from a network that reaches it. Nothing was changed.") from None
    nat_id = resolve_nat_gateway(ctx, cluster, opts.nat_gateway) if opts.nat_gateway else None
    plans, nat = [], {}
    for i, name in enumerate(subnets):
        plan = plan_subnet(ctx, cluster, name, opts.subnet_cidr if i == 0 else None)
        if plan.etag is None and plan.body is not None and i > 0 and any(p.etag is None and p.body for p in plans):
            raise ValidationError(f"Only one new ACI subnet can be created per run; create '{name}' first (or list "
                                  "existing subnets). Nothing was changed.")
        current = next((s for s in (plan.vnet.get("properties") or {}).get("subnets") or []
                        if s["name"].lower() == name.lower()), None)
        current_nat = ((current or {}).get("properties") or {}).get("natGateway", {}) or {}
        nat[plan.name] = current_nat.get("id")
        if nat_id and (current_nat.get("id") or "").lower() != nat_id.lower():
            plan.body = plan.body or subnet_body(current, None)
            plan.body["properties"]["natGateway"] = {"id": nat_id}
            nat[plan.name] = nat_id
        plans.append(plan)
    needs_register = check_region_and_provider(ctx, cluster)
    identity = None if opts.skip_role_assignment else chart_identity(ctx, cluster, opts.identity)
    needs = [(SUBNET_WRITE, cluster.vnet_id)] if any(p.body is not None for p in plans) else []
    if not opts.skip_role_assignment:
        # role grants on the subnets: checked at the VNet (a new subnet has no scope of its own yet)
        needs += [(ROLE_ASSIGNMENT_WRITE, node_resource_group_id(cluster)), (ROLE_ASSIGNMENT_WRITE, cluster.vnet_id)]
    if needs:
        check_caller_rights(ctx, needs)
    return V2Plan(cluster, release, namespace, replicas, chart, existing, plans, nat, values, identity,
                  needs_register, helm)


def enable(ctx: Ctx, opts: Any) -> dict[str, Any] | None:
    ctx.deadline = Deadline(opts.timeout)
    deadline = ctx.deadline.at
    cluster = wait_until_idle(ctx.clusters, ctx.resource_group, ctx.name, ctx.cluster(), deadline,
                              on_wait=progress)
    minor = check_cluster(ctx, cluster)
    access_preflight(ctx, cluster, _writes(), "enable")
    p = plan_enable(ctx, opts, cluster, minor)
    # ---- first write below this line ----
    install(ctx, p, f"az aks virtual-node enable {ctx.ids} --mode v2")
    if opts.no_wait:
        progress(f"Started. Run 'az aks virtual-node wait {ctx.ids} --ready' to wait for the virtual nodes.")
        return None
    rel = current_release(ctx)
    verify(ctx, rel, opts.timeout)
    return status(ctx, cluster, rel)


def install(ctx: Ctx, p: V2Plan, resume: str) -> None:
    """The writes of a v2 plan, each skipped when already done: provider, subnets, roles, the Helm release."""
    from azext_virtualnode.workflow import register_provider
    cluster, deadline = p.cluster, ctx.deadline.at
    if p.needs_register:
        register_provider(ctx, deadline)
        ctx.done.append(f"registered the {ACI_PROVIDER} provider")
    for plan in p.subnets:
        if plan.body is None:
            continue
        progress(f"Creating/updating subnet '{plan.name}' for Azure Container Instances (delegation"
                 f"{', NAT gateway' if 'natGateway' in plan.body['properties'] else ''})...")
        ctx.subnets.ensure_delegated(
            plan.id, plan.body, plan.etag,
            lambda current, vnet=plan.vnet.get("name", ""): check_existing_subnet(
                SubnetFacts.of(current), None, vnet),
            wait=lambda poller, name=plan.name: wait_operation(ctx, poller, f"writing subnet '{name}'", resume))
        ctx.done.append(f"created/updated subnet '{plan.name}'")
    for name, nat in p.nat.items():
        if not nat:
            progress(f"Warning: subnet '{name}' has no NAT gateway, so pods on Virtual Nodes v2 get no outbound "
                     f"internet access. Attach one with 'az aks virtual-node enable {ctx.ids} --mode v2 --nat-gateway "
                     "<name-or-id>'.")
    granted = False
    if p.identity is not None:
        aci_rg = node_resource_group_id(cluster)
        granted = ensure_role(ctx, p.identity, aci_rg, cluster, deadline, GROUPS_NEED)
        for plan in p.subnets:
            granted = ensure_role(ctx, p.identity, plan.id, cluster, deadline, SUBNET_NEED) or granted
    r = p.existing
    if r and r.release.status == "deployed" and r.release.config == p.values and r.chart_version == p.chart.version:
        progress(f"Helm release '{p.release}' is up to date ({v2.CHART_NAME} {r.chart_version}, {p.replicas} "
                 "replica(s)).")
    else:
        progress(f"Installing chart {v2.CHART_NAME} {p.chart.version or ''} as Helm release '{p.release}' (namespace "
                 f"'{p.namespace}', {p.replicas} replica(s))...")
        p.helm.upgrade_install(p.release, p.chart, HELM_RELEASE_NAMESPACE, p.values, ctx.kubeconfig(),
                               max(ctx.deadline.remaining(), 1))
        ctx.done.append(f"installed Helm release '{p.release}'")
    if granted or p.needs_register or any(plan.body is not None for plan in p.subnets):
        heal(ctx, p.namespace, p.release)


def current_release(ctx: Ctx) -> V2Release:
    with ctx.kube() as kube:
        found = [V2Release(r) for r in find_releases(kube, (v2.CHART_NAME,))]
    if not found:
        raise CLIError(f"No Virtual Nodes v2 release was found on cluster '{ctx.name}'.")
    return found[0]


# -- verify ------------------------------------------------------------------------------------------------
def not_ready(kube: Any, rel: V2Release) -> list[str]:
    """What is still missing for every replica, the admission controller and its webhook (empty: ready)."""
    missing = []
    pods = {p.metadata.name: p for p in vk.infra_pods(kube, rel.namespace, rel.name)}
    for name in rel.node_names():
        pod = pods.get(name)
        statuses = (pod.status.container_statuses or []) if pod is not None else []
        if pod is None:
            missing.append(f"{name}: no infra pod yet")
            continue
        if not statuses or not all(s.ready for s in statuses):
            ready = sum(1 for s in statuses if s.ready)
            missing.append(f"{name}: infra pod {ready}/{len(pod.spec.containers or [])} containers ready")
            continue
        node = kube.node(name)
        if node is None:
            missing.append(f"{name}: node not registered")
            continue
        cond = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
        labelled = (node.metadata.labels or {}).get(v2.NODE_LABEL[0]) == v2.NODE_LABEL[1]
        tainted = any(t.key == v2.TAINT_KEY and t.effect == "NoSchedule" for t in node.spec.taints or [])
        if not (cond and cond.status == "True" and labelled and tainted):
            missing.append(f"{name}: node not Ready/labelled/tainted yet")
    if rel.admission_replicas:
        dep = vk.admission_deployment(kube, rel.namespace)
        if dep is None or not (dep.status.ready_replicas or 0):
            missing.append("admission controller not ready")
        if vk.webhook(kube) is None:
            missing.append("admission webhook not configured")
    return missing


def verify(ctx: Ctx, rel: V2Release, timeout: int) -> None:
    progress(f"Waiting for {rel.replicas} virtual node(s) {', '.join(rel.node_names())} (up to {timeout}s)...")
    deadline = ctx.deadline.at
    last: list[str] = ["not checked yet"]
    try:
        with ctx.kube() as kube, Waiting(ctx, "waiting for the virtual nodes") as waiting:
            while True:
                last = not_ready(kube, rel)
                if not last:
                    return
                waiting.set("; ".join(last))
                if time.monotonic() + 1 > deadline:
                    break
                time.sleep(1)
    except ClusterUnreachable as exc:
        raise diagnose(ctx, rel, f"Could not verify the virtual nodes on the cluster: {exc}.", []) from None
    raise diagnose(ctx, rel, f"The virtual nodes did not become ready within {timeout}s.", last)


def diagnose(ctx: Ctx, rel: V2Release, headline: str, missing: list[str]) -> CLIError:
    st = status(ctx, ctx.cluster(), rel)
    lines = [headline] + [f"  still missing: {m}" for m in missing]
    for pod in st.get("infraPods") or []:
        lines.append(f"  infra pod {pod['name']}: {pod['phase']}, {pod['containersReady']} ready, restarts="
                     f"{pod['restarts']}{', ' + pod['reason'] if pod['reason'] else ''}"
                     f"{': ' + pod['message'] if pod['message'] else ''}")
    return timeout_report(ctx, lines, st["problems"])


# -- status ------------------------------------------------------------------------------------------------
def infra_pod(kube: Any, pod: Any) -> InfraPod:
    statuses = pod.status.container_statuses or []
    crashing = next((s for s in statuses if crash_looping(s)), None)
    waiting = next((s.state.waiting for s in statuses if s.state and s.state.waiting), None)
    cond = next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)
    reason = ("CrashLoopBackOff" if crashing else None) or (waiting.reason if waiting else None) or \
        (cond.reason if cond is not None and cond.status == "False" else None) or pod.status.reason
    message = cond.message if cond is not None and cond.status == "False" else None
    if crashing is not None:
        log = kube.pod_log_tail(pod.metadata.namespace, pod.metadata.name, 20, crashing.name)
        message = azure_error(log) or (crashing.last_state.terminated.message if crashing.last_state and
                                       crashing.last_state.terminated else None)
    ready = bool(statuses) and all(s.ready for s in statuses)
    return InfraPod(pod.metadata.name, pod.status.phase or "Unknown", ready,
                    f"{sum(1 for s in statuses if s.ready)}/{len(pod.spec.containers or [])}",
                    sum(s.restart_count or 0 for s in statuses), pod.spec.node_name, reason, message,
                    crashing.name if crashing else None)


def heal(ctx: Ctx, namespace: str, release: str) -> list[str]:
    """Delete the crash-looping infra pods so the StatefulSet recreates them now: the cause this run fixed (a
    role, a subnet) need not wait out the kubelet's back-off (up to 5 minutes)."""
    healed = []
    try:
        with ctx.kube() as kube:
            for pod in vk.infra_pods(kube, namespace, release):
                if any(crash_looping(c) for c in pod.status.container_statuses or []):
                    progress(f"Restarting infra pod {pod.metadata.name} (crash-looping) so it starts again now "
                             "instead of after its back-off...")
                    if kube.delete_pod(namespace, pod.metadata.name):
                        healed.append(pod.metadata.name)
    except ClusterUnreachable as exc:
        progress(f"Warning: could not check the infra pods for a crash loop ({exc}); continuing.")
    return healed


def azure_error(log: str) -> str | None:
    """The last line of a container log that carries an Azure error (Code="..." Message="...")."""
    lines = [line.strip() for line in (log or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if "Code=" in line or "AuthorizationFailed" in line or "StatusCode=" in line:
            return line
    return lines[-1] if lines else None


def gather_kube(ctx: Ctx, f: V2Facts) -> None:
    from azext_virtualnode.kube import _age_seconds  # pylint: disable=protected-access
    rel = f.release
    with ctx.kube() as kube:
        pods = vk.infra_pods(kube, rel.namespace, rel.name)
        f.pods = [infra_pod(kube, p) for p in pods]
        nodes = {n.metadata.name: n for n in vk.release_nodes(kube, rel.fullname)}
        for name in rel.node_names():
            node = nodes.get(name)
            if node is None:
                f.nodes.append(V2Node(name, False))
                continue
            cond = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
            lease = kube.lease(name)
            on_node = [p for p in kube.pods_on_node(name) if vk.live(p)]
            f.nodes.append(V2Node(
                name, True, bool(cond and cond.status == "True"),
                (node.metadata.labels or {}).get(v2.NODE_LABEL[0]) == v2.NODE_LABEL[1],
                any(t.key == v2.TAINT_KEY and t.effect == "NoSchedule" for t in node.spec.taints or []),
                _age_seconds(lease.spec.renew_time) if lease is not None and lease.spec else None,
                len(on_node), int(vk.quantity((node.status.capacity or {}).get("pods")) or v2.MAX_PODS_PER_NODE),
                bool(node.spec.unschedulable)))
        f.ghosts = v2.ghost_nodes(rel.fullname, list(nodes), [p.metadata.name for p in pods])
        f.pending = pending_on_v2(kube, [nodes[n.name] for n in f.nodes if n.registered], f.nodes)
        dep = vk.admission_deployment(kube, rel.namespace)
        f.admission = None if dep is None else {"desired": dep.spec.replicas if dep.spec.replicas is not None else 1,
                                                "ready": dep.status.ready_replicas or 0}
        f.webhook = vk.webhook(kube) is not None


def pending_on_v2(kube: Any, nodes: list[Any], facts: list[V2Node]) -> list[Any]:
    """Pending pods that target a virtual node, judged against the v2 nodes (one selector-scoped list)."""
    from azext_virtualnode import workload
    ready = {n.name: n.ready for n in facts}
    seen = [workload.VirtualNode(n.metadata.name, dict(n.metadata.labels or {}),
                                 [t.raw for t in n.spec.taints or []], ready.get(n.metadata.name, False))
            for n in nodes]
    return workload.pending_findings(workload.read_pending(kube), workload.MODES["v2"], seen)


def gather_arm(ctx: Ctx, f: V2Facts) -> None:
    cluster, rel, arm = f.cluster, f.release, ctx.arm
    sub = cluster.id.split("/")[2]
    f.provider_state = arm.provider_state(sub, ACI_PROVIDER)
    for name in rel.subnets:
        sid = name if name.startswith("/") else f"{cluster.vnet_id}/subnets/{name}"
        raw = arm.get(sid, NETWORK_API_VERSION)
        f.subnets.append(V2Subnet(sid.rsplit("/", 1)[-1], sid, SubnetFacts.of(raw) if raw else None,
                                  (((raw or {}).get("properties") or {}).get("natGateway") or {}).get("id")))
    groups = arm.container_groups(sub, cluster.node_resource_group)
    f.container_groups = len(groups) if groups is not None else None
    f.identity = identity_by_client_id(ctx, cluster, None)
    if f.identity is not None:
        aci_rg = node_resource_group_id(cluster)
        for scope, need in [(aci_rg, GROUPS_NEED)] + [(s.id, SUBNET_NEED) for s in f.subnets if s.facts]:
            f.roles.append(role_state(ctx, f.identity, scope, need,
                                      assignments=arm.role_assignments_for(f.identity["objectId"], scope)))


def status(ctx: Ctx, cluster: ClusterView, rel: V2Release) -> dict[str, Any]:
    f = V2Facts(cluster, rel)
    try:
        f.k8s_minor = v2.kubernetes_minor(cluster.model.current_kubernetes_version or
                                          cluster.model.kubernetes_version or "")
    except ValueError:
        f.k8s_minor = None
    gather_arm(ctx, f)
    try:
        gather_kube(ctx, f)
    except ClusterUnreachable as exc:
        f.kube_error, f.kube_error_code = str(exc), exc.code
    return build_status(f, evaluate(f))


# -- scale ------------------------------------------------------------------------------------------------------
# pylint: disable-next=too-many-positional-arguments,too-many-locals
def scale(ctx: Ctx, replicas: int, force: bool, yes: bool, timeout: int, no_wait: bool,
          confirm: Callable[[str, bool], None] | None = None) -> dict[str, Any] | None:
    from azext_virtualnode.workflow import _confirm, detect
    ctx.deadline = Deadline(timeout)
    cluster = ctx.cluster()
    try:
        conn = detect(ctx, cluster)
    except ClusterUnreachable as exc:
        raise ValidationError(f"Cannot read cluster '{ctx.name}': {exc}. Nothing was changed.") from None
    if conn is None or conn.mode != "v2":
        mode = "not enabled" if conn is None else f"mode '{conn.mode}'"
        raise ValidationError(
            f"'scale' applies to Virtual Nodes v2 only; cluster '{ctx.name}' has virtual nodes {mode}"
            f"{', which has one virtual node' if conn is not None else ''}. Enable v2 with 'az aks virtual-node "
            f"enable {ctx.ids} --mode v2 --replicas {replicas}'"
            f"{' after disable' if conn is not None else ''}. Nothing was changed.")
    access_preflight(ctx, cluster, _writes(), "scale")
    rel = V2Release(conn.release)
    current = rel.replicas
    result: dict[str, Any] = {"release": rel.name, "from": current, "to": replicas, "cordoned": [], "evicted": [],
                              "nodesDeleted": []}
    if replicas == current:
        progress(f"Release '{rel.name}' already runs {current} replica(s); nothing to change.")
        return result
    helm = Helm.discover()
    going = [f"{rel.fullname}-{i}" for i in range(replicas, current)]
    try:
        with ctx.kube() as kube:
            if replicas > current:
                running = [p for p in vk.infra_pods(kube, rel.namespace, rel.name) if p.spec.node_name]
                check_capacity(ctx, kube, replicas - len(running), rel.chart_version)
                busy: list[Any] = []
            else:
                busy = [p for name in going for p in kube.pods_on_node(name)
                        if not owned_by_daemonset(p) and vk.live(p)]
    except ClusterUnreachable as exc:
        raise ValidationError(f"Cannot reach the API server of cluster '{ctx.name}': {exc}. Nothing was "
                              "changed.") from None
    if busy and not force:
        listing = "\n".join(f"  {p.metadata.namespace}/{p.metadata.name} on {p.spec.node_name}" for p in busy[:50])
        raise ValidationError(
            f"{len(busy)} pod(s) run on the virtual node(s) that scaling to {replicas} removes ({', '.join(going)}):\n"
            f"{listing}\nMove them first, or re-run with --force to evict them (their controllers re-create them "
            "elsewhere; PodDisruptionBudgets are respected). Nothing was changed.")
    if going:
        (confirm or _confirm)(f"This will remove virtual node(s) {', '.join(going)} of cluster '{ctx.name}'"
                              f"{f' and evict {len(busy)} pod(s) from them' if busy else ''}. Continue?", yes)
        with ctx.kube() as kube:
            for name in going:
                if vk.cordon(kube, name):
                    result["cordoned"].append(name)
            if busy:
                result["evicted"] = evict_all(ctx, kube, busy)
    values = {**rel.release.config, "replicaCount": replicas}
    progress(f"Scaling Helm release '{rel.name}' from {current} to {replicas} replica(s)...")
    with installed_chart(rel.release) as ref:
        helm.upgrade_install(rel.name, ref, rel.release.release_namespace, values, ctx.kubeconfig(),
                             max(ctx.deadline.remaining(), 1))
    ctx.done.append(f"upgraded Helm release '{rel.name}' to {replicas} replica(s)")
    if going:
        result["nodesDeleted"] = remove_nodes(ctx, rel, going)
    if no_wait:
        return result
    new = current_release(ctx)
    verify(ctx, new, timeout)
    return {**result, "status": status(ctx, cluster, new)}


def evict_all(ctx: Ctx, kube: Any, pods: list[Any]) -> list[str]:
    """Evict each pod through the Eviction API; a PodDisruptionBudget that forbids it now is retried until the
    deadline (its controller may bring a replacement up elsewhere meanwhile)."""
    left = {(p.metadata.namespace, p.metadata.name) for p in pods}
    evicted: list[str] = []
    why = ""
    while left:
        for ns, name in sorted(left):
            refusal = vk.evict(kube, ns, name)
            if refusal is None:
                progress(f"Evicted pod {ns}/{name}.")
                evicted.append(f"{ns}/{name}")
                left.discard((ns, name))
            else:
                why = refusal
        if left:
            if ctx.deadline.remaining() < 2:
                raise Timeout(f"Could not evict {', '.join(f'{n}/{p}' for n, p in sorted(left))}: {why}. The nodes "
                              "stay cordoned; nothing else was changed. Relax the PodDisruptionBudget or add "
                              "replicas, then re-run.")
            time.sleep(2)
    return evicted


def remove_nodes(ctx: Ctx, rel: V2Release, names: list[str]) -> list[str]:
    """Once their infra pods are gone (else their kubelets register them again), delete the nodes the chart
    leaves behind (still Ready: 'ghost nodes')."""
    deleted = []
    try:
        with ctx.kube() as kube, Waiting(ctx, "waiting for the infra pods to go") as waiting:
            while True:
                pods = {p.metadata.name for p in vk.infra_pods(kube, rel.namespace, rel.name)} & set(names)
                if not pods:
                    break
                if ctx.deadline.remaining() < 1:
                    raise Timeout(f"Infra pod(s) {', '.join(sorted(pods))} did not terminate in time; re-run the "
                                  "command to finish (it deletes the nodes left behind).")
                waiting.set(f"{len(pods)} infra pod(s) terminating")
                time.sleep(1)
            for name in names:
                if kube.delete_node(name):
                    progress(f"Deleted node {name}.")
                    deleted.append(name)
    except ClusterUnreachable as exc:
        progress(f"Warning: could not delete node(s) {', '.join(names)}: {exc}. Delete them with 'kubectl delete "
                 f"node {' '.join(names)}'.")
    return deleted


class installed_chart:  # pylint: disable=invalid-name
    """The chart of an installed release, rebuilt from Helm's record into a private temporary directory (so
    scale upgrades with exactly the installed chart, wherever it came from)."""

    def __init__(self, release: Release) -> None:
        self.release = release
        self.directory = ""

    def __enter__(self) -> ChartRef:
        import base64
        import yaml
        chart = self.release.record.get("chart") or {}
        self.directory = tempfile.mkdtemp(prefix="azvn-chart-")
        os.chmod(self.directory, 0o700)
        root = os.path.join(self.directory, v2.CHART_NAME)

        def write(rel_path: str, data: bytes) -> None:
            path = os.path.normpath(os.path.join(root, rel_path))
            if not path.startswith(root + os.sep):
                return
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        write("Chart.yaml", yaml.safe_dump(chart.get("metadata") or {}).encode())
        write("values.yaml", yaml.safe_dump(chart.get("values") or {}).encode())
        for item in (chart.get("templates") or []) + (chart.get("files") or []):
            write(item["name"], base64.b64decode(item.get("data") or ""))
        return ChartRef(root, self.release.chart_version, False)

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


# -- disable ---------------------------------------------------------------------------------------------------
# pylint: disable-next=too-many-positional-arguments,too-many-locals
def disable(ctx: Ctx, cluster: ClusterView, release: Release, delete_subnet: bool, force: bool, yes: bool,
            confirm: Callable[[str, bool], None] | None = None) -> dict[str, Any]:
    from azext_virtualnode.workflow import _confirm
    rel = V2Release(release)
    deadline = ctx.deadline.at
    helm = Helm.discover()
    try:
        with ctx.kube() as kube:
            nodes = [n.metadata.name for n in vk.release_nodes(kube, rel.fullname)]
            busy = [p for name in nodes for p in kube.pods_on_node(name) if not owned_by_daemonset(p) and vk.live(p)]
    except ClusterUnreachable as exc:
        raise ValidationError(f"Cannot read cluster '{ctx.name}': {exc}. Nothing was changed.") from None
    if busy and not force:
        listing = "\n".join(f"  {p.metadata.namespace}/{p.metadata.name} on {p.spec.node_name}" for p in busy[:50])
        raise ValidationError(
            f"{len(busy)} pod(s) still run on the virtual nodes; disabling would delete their container groups:\n"
            f"{listing}\nMove or delete them first, or re-run with --force. Nothing was changed.")
    subnet_ids = [s if s.startswith("/") else f"{cluster.vnet_id}/subnets/{s}" for s in rel.subnets]
    scopes = [node_resource_group_id(cluster)] + subnet_ids
    marked = [ra for scope in scopes for ra in ctx.roles.marked_at(scope)]
    subnets = []
    if delete_subnet:
        for sid in subnet_ids:
            raw = ctx.subnets.get(sid)
            if raw is None:
                continue
            facts = SubnetFacts.of(raw)
            if facts.ip_configurations or not facts.delegated_to_aci:
                raise ValidationError(
                    f"Refusing to delete subnet '{facts.name}': it is not an ACI subnet (delegated to "
                    f"{', '.join(facts.delegations) or 'nothing'}, {facts.ip_configurations} other resource(s) use "
                    "it). Nothing was changed; run again without --delete-subnet.")
            subnets.append((sid, facts))
    actions = [f"uninstall Helm release '{rel.name}' and remove node(s) {', '.join(nodes) or 'none'}"]
    if marked:
        actions.append(f"remove {len(marked)} role assignment(s) this extension created")
    if subnets:
        actions.append(f"delete subnet(s) {', '.join(f.name for _, f in subnets)}")
    (confirm or _confirm)(f"This will {', '.join(actions)} on cluster '{ctx.name}'. Continue?", yes)
    result = {"cluster": cluster.id, "mode": "v2", "addonDisabled": False, "chartUninstalled": False,
              "nodeRemoved": None, "nodesRemoved": [], "roleAssignmentsRemoved": [], "subnetDeleted": False}
    progress(f"Uninstalling Helm release '{rel.name}' (namespace '{rel.release.release_namespace}')...")
    result["chartUninstalled"] = helm.uninstall(rel.name, rel.release.release_namespace, ctx.kubeconfig(),
                                                max(deadline - time.monotonic(), 1))
    ctx.done.append(f"uninstalled Helm release '{rel.name}'")
    names = sorted(set(nodes) | set(rel.node_names()))
    result["nodesRemoved"] = remove_nodes(ctx, rel, names)
    result["nodeRemoved"] = all(n in result["nodesRemoved"] for n in nodes)
    delete_groups(ctx, cluster, names)
    for ra in marked:
        ctx.roles.delete(ra.id)
        result["roleAssignmentsRemoved"].append(ra.id)
    for sid, facts in subnets:
        delete_subnet_when_released(ctx, sid, facts, deadline)
        result["subnetDeleted"] = True
    return result


def delete_groups(ctx: Ctx, cluster: ClusterView, nodes: list[str]) -> None:
    """Container groups the removed nodes leave (pods deleted while their node was gone)."""
    from azext_virtualnode.lro import poll_interval
    groups = cf.cf_container_groups(ctx.cli_ctx)
    for group in groups.list_by_resource_group(cluster.node_resource_group):
        if (group.tags or {}).get("NodeName") in nodes:
            progress(f"Deleting container group '{group.name}' left by a removed virtual node...")
            wait_operation(ctx, groups.begin_delete(cluster.node_resource_group, group.name,
                                                    polling_interval=poll_interval()),
                           f"deleting container group '{group.name}'", f"az aks virtual-node disable {ctx.ids}")


def delete_subnet_when_released(ctx: Ctx, sid: str, facts: SubnetFacts, deadline: float) -> None:
    from azure.core.exceptions import ResourceNotFoundError
    from azext_virtualnode.lro import poll_interval
    from azext_virtualnode.workflow import SAL_API_VERSION
    resume = f"az aks virtual-node disable {ctx.ids} --delete-subnet"
    if facts.service_association_links:
        sal = f"{sid}/providers/Microsoft.ContainerInstance/serviceAssociationLinks/default"
        try:
            poller = cf.cf_resources(ctx.cli_ctx).begin_delete_by_id(sal, SAL_API_VERSION,
                                                                     polling_interval=poll_interval())
            wait_operation(ctx, poller, "removing the subnet's service association link", resume)
        except ResourceNotFoundError:
            pass
    progress(f"Deleting subnet '{facts.name}' (waits until Azure Container Instances releases it)...")
    ctx.subnets.delete_with_retry(sid, deadline, on_wait=progress,
                                  wait=lambda poller: wait_operation(ctx, poller, f"deleting subnet '{facts.name}'",
                                                                     resume))
