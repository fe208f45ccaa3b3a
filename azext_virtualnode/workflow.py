"""enable / disable / wait / status, put together from the domain modules.

Every command validates everything it can before its first write to Azure, so bad input changes nothing;
each write is skipped when the state is already right, so a re-run converges and an interrupted run can
simply be repeated.

The connector is either the managed add-on (mode ``addon``) or the self-managed Helm chart
``virtual-kubelet-azure-aci`` (mode ``chart``). Both share the preflight, the subnet, the role grants, the
verification and the status checks; only the step that starts the connector differs (a managed-cluster PUT
or ``helm upgrade --install``), and ``status``/``disable``/``wait`` find out which one is installed.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from azure.cli.core.azclierror import InvalidArgumentValueError, ValidationError
from knack.log import get_logger
from knack.util import CLIError

from azext_virtualnode import _client_factory as cf
from azext_virtualnode._consts import (ACI_PROVIDER, ADDON_NODE_NAME, CHART_NAME, CHART_NODE_NAME,
                                       CONNECTOR_LABEL_SELECTOR, CONNECTOR_NAMESPACE, DEFAULT_SUBNET_NAME,
                                       DEFAULT_TIMEOUT, NETWORK_API_VERSION, NETWORK_CONTRIBUTOR)
from azext_virtualnode.access import CHART_WRITES, READS, caller_name, denial_of
from azext_virtualnode.access import preflight as cluster_access_preflight
from azext_virtualnode.addon import ClusterView, require_azure_cni, set_addon, wait_until_idle
from azext_virtualnode.chart import Helm, Release, find_releases
from azext_virtualnode.connectors import Mode
from azext_virtualnode.connectors.v2 import CHART_NAME as V2_CHART
from azext_virtualnode.connectors.addon import AddonEnable, finite
from azext_virtualnode.connectors.chart import ChartEnable
from azext_virtualnode.context import Ctx, Deadline, Timeout, Waiting, node_resource_group_id, progress
from azext_virtualnode.health import Facts, PodFacts, Sources, build_status, crash_looping, evaluate, gather
from azext_virtualnode.identity import connector_identity, identity_by_client_id, role_state
from azext_virtualnode.kube import ClusterAccessDenied, ClusterUnreachable, owned_by_daemonset
from azext_virtualnode.lro import poll_interval
from azext_virtualnode.network import (SubnetFacts, check_cidr_fits, check_existing_subnet, first_free_block,
                                       parse_cidr, subnet_body)
from azext_virtualnode.operations import timeout_error, timeout_report, wait_operation
from azext_virtualnode.roles import (CLUSTER_WRITE, ROLE_ASSIGNMENT_DELETE, ROLE_ASSIGNMENT_WRITE, SUBNET_WRITE,
                                     MissingRight, action_allowed, caller_object_id, missing_rights_error)

logger = get_logger(__name__)
SAL_API_VERSION = "2021-10-01"
STATUS_RETRY_WINDOW = 5.0   # status retries a failing API server this long, then reports ApiServerError


# -- which connector ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Connector:
    """Where a cluster's connector runs and what it serves: the add-on, or a release of the chart."""
    mode: str
    node_name: str
    namespace: str
    selector: str
    subnet_name: str | None
    release: Release | None = None


def addon_connector(cluster: ClusterView) -> Connector:
    return Connector("addon", ADDON_NODE_NAME, CONNECTOR_NAMESPACE, CONNECTOR_LABEL_SELECTOR, cluster.addon_subnet)


def chart_connector(release: Release) -> Connector:
    return Connector("chart", release.node_name, release.namespace, release.selector, release.subnet_name, release)


def chart_releases(ctx: Ctx) -> list[Release]:
    """Releases of the legacy chart and of Virtual Nodes v2 (mode v2), from one list of Helm's records."""
    with ctx.kube() as kube:
        return find_releases(kube, (CHART_NAME, V2_CHART))


def installed(ctx: Ctx, cluster: ClusterView, with_v2: bool = False) -> tuple[Connector | None, Release | None]:
    """The connector in use — the add-on, else a legacy chart release, else Virtual Nodes v2 — and a v2 release
    installed beside a legacy connector (a migration not finished yet). Helm's records are listed once, and
    beside the add-on only ``with_v2``. Raises ClusterUnreachable when they cannot be read."""
    if cluster.addon_enabled and not with_v2:
        return addon_connector(cluster), None
    releases = chart_releases(ctx)
    v2 = next((r for r in releases if r.chart_name == V2_CHART), None)
    legacy = next((r for r in releases if r.chart_name == CHART_NAME), None)
    if cluster.addon_enabled:
        return addon_connector(cluster), v2
    if legacy is not None:
        return chart_connector(legacy), v2
    if v2 is not None:
        from azext_virtualnode.connectors.v2_mode import connector
        return connector(v2), None
    return None, None


def detect(ctx: Ctx, cluster: ClusterView) -> Connector | None:
    """The installed connector, or None. Raises ClusterUnreachable when the add-on is off and the cluster
    cannot be read (a chart release could not be ruled out)."""
    return installed(ctx, cluster)[0]


def unfinished_migration(ctx: Ctx, conn: Connector, v2: Release) -> Any:
    """The ``MigrationUnfinished`` problem: the v2 release ``v2`` runs beside the legacy connector ``conn``."""
    from azext_virtualnode.health import WARNING, Problem
    what = "the ACI connector add-on" if conn.mode == "addon" else "the legacy chart"
    return Problem("MigrationUnfinished",
                   f"Virtual Nodes v2 (Helm release '{v2.name}') runs beside {what}: a migration to v2 is "
                   f"unfinished, and node {conn.node_name} takes no new pods if it was cordoned.",
                   f"Finish it with 'az aks virtual-node migrate {ctx.ids} --to v2' (it continues where it "
                   f"stopped), or go back: 'kubectl uncordon {conn.node_name}', then 'helm uninstall "
                   f"{v2.name} -n {v2.release_namespace}' and delete its nodes.", WARNING)


def _v2_beside_addon(ctx: Ctx, cluster: ClusterView) -> Release | None:
    try:
        return installed(ctx, cluster, with_v2=True)[1]
    except ClusterUnreachable:      # status reports the add-on all the same
        return None


# -- status --------------------------------------------------------------------------------------------------
def collect(ctx: Ctx, cluster: ClusterView, conn: Connector | None, kube_error: str | None = None) -> Facts:
    if conn is None:
        return Facts(cluster=cluster, mode="none", kube_error=kube_error)

    arm = ctx.arm        # status reads ARM as plain GETs (arm_reads: no SDK imports, one connection)
    sub = cluster.id.split("/")[2]

    def subnet(subnet_id: str) -> dict[str, Any] | None:
        return arm.get(subnet_id, NETWORK_API_VERSION)

    def provider_state() -> str | None:
        return arm.provider_state(sub, ACI_PROVIDER)

    def container_groups(cl: ClusterView) -> list[dict[str, Any]] | None:
        return arm.container_groups(sub, cl.node_resource_group)

    def role(ident: dict[str, Any], scope: str) -> dict[str, Any]:
        return role_state(ctx, ident, scope, assignments=arm.role_assignments_for(ident["objectId"], scope))

    def identity(cl: ClusterView) -> dict[str, Any] | None:
        if conn.release is None:
            return connector_identity(ctx, cl)
        return identity_by_client_id(ctx, cl, conn.release.identity_client_id)

    src = Sources(subnet=subnet, provider_state=provider_state, identity=identity,
                  role=role,
                  container_groups=container_groups, kube=ctx.kube)
    facts = gather(cluster, src, conn.mode, conn.subnet_name, conn.node_name, conn.namespace, conn.selector)
    facts.chart = conn.release.as_status() if conn.release else None
    return facts


def status(ctx: Ctx, cluster: ClusterView | None = None) -> dict[str, Any]:
    cluster = cluster or ctx.cluster()
    outer, ctx.kube_retry_window = ctx.kube_retry_window, STATUS_RETRY_WINDOW
    denied = None
    try:
        beside = None
        try:
            (conn, beside), kube_error, code = installed(ctx, cluster), None, "ClusterUnreachable"
        except ClusterUnreachable as exc:
            conn, kube_error, code = None, str(exc), exc.code
            denied = exc if isinstance(exc, ClusterAccessDenied) else None
        if conn is not None and conn.mode == "v2":
            from azext_virtualnode.connectors.v2_mode import V2Release, status as v2_status
            return v2_status(ctx, cluster, V2Release(conn.release))
        facts = collect(ctx, cluster, conn, kube_error)
        facts.kube_error_code = facts.kube_error_code if kube_error is None else code
    finally:
        ctx.kube_retry_window = outer
    if denied is not None:
        facts.access_denied.append(denial_of(denied))
    if facts.access_denied:
        facts.caller = caller_name(ctx)
    problems = evaluate(facts)
    if conn is not None and facts.kube_error is None:
        beside = _v2_beside_addon(ctx, cluster) if conn.mode == "addon" else beside
        if beside is not None:
            problems.append(unfinished_migration(ctx, conn, beside))
    return build_status(facts, problems)


# -- enable: shared steps -----------------------------------------------------------------------------------
@dataclass
class SubnetPlan:
    id: str
    name: str
    body: dict[str, Any] | None      # None: nothing to write
    prefix: str = ""
    vnet: dict[str, Any] = field(default_factory=dict)
    etag: str | None = None          # of the existing subnet as read (If-Match); None: a new subnet


def plan_subnet(ctx: Ctx, cluster: ClusterView, name: str, cidr_text: str | None) -> SubnetPlan:
    cidr = parse_cidr(cidr_text) if cidr_text else None
    vnet = ctx.subnets.get(cluster.vnet_id)
    if vnet is None:
        raise ValidationError(f"The virtual network '{cluster.vnet_id}' of the cluster's node pool was not "
                              "found. Check the cluster's network configuration with 'az aks show "
                              f"{ctx.ids} --query agentPoolProfiles[0].vnetSubnetId'.")
    subnet_id = f"{cluster.vnet_id}/subnets/{name}"
    existing = next((s for s in (vnet.get("properties") or {}).get("subnets") or []
                     if s["name"].lower() == name.lower()), None)
    if existing is not None:
        facts = SubnetFacts.of(existing)
        check_existing_subnet(facts, cidr, vnet["name"])
        return SubnetPlan(existing["id"], existing["name"], None if facts.delegated_to_aci else
                          subnet_body(existing, None), str(facts.prefixes[0]) if facts.prefixes else "", vnet,
                          existing.get("etag"))
    if cidr is not None:
        check_cidr_fits(cidr, vnet, cluster.reserved_ranges)
    else:
        cidr = first_free_block(vnet, reserved=cluster.reserved_ranges)
        if cidr is None:
            raise ValidationError(
                f"Virtual network '{vnet['name']}' has no free /24 or larger block for the virtual-node subnet. "
                "Add address space ('az network vnet update --address-prefixes ...') or pass --subnet-cidr.")
    return SubnetPlan(subnet_id, name, subnet_body(None, cidr), str(cidr), vnet)


def check_region_and_provider(ctx: Ctx, cluster: ClusterView) -> bool:
    """Raise when ACI (with VNet) is not offered in the cluster's region; True when the provider needs registering."""
    provider = cf.cf_providers(ctx.cli_ctx).get(ACI_PROVIDER)
    location = cluster.location.replace(" ", "").lower()
    for rtype in provider.resource_types or []:
        if rtype.resource_type.lower() == "containergroups":
            regions = [loc.replace(" ", "").lower() for loc in rtype.locations or []]
            if regions and location not in regions:
                raise ValidationError(
                    f"Azure Container Instances is not available in region '{cluster.location}' of cluster "
                    f"'{cluster.name}', so virtual nodes cannot run there. See 'az provider show -n {ACI_PROVIDER} "
                    "--query \"resourceTypes[?resourceType=='containerGroups'].locations\"'.")
    return (provider.registration_state or "") != "Registered"


def check_caller_rights(ctx: Ctx, needs: list[tuple[str, str]]) -> None:
    """``needs`` lists (action, scope). Read the caller's permissions once per scope; raise listing what lacks."""
    by_scope: dict[str, list[dict[str, Any]]] = {}
    missing: list[MissingRight] = []
    roles = ctx.roles
    for action, scope in dict.fromkeys(needs):
        if scope not in by_scope:
            by_scope[scope] = roles.permissions(scope)
        if not action_allowed(action, by_scope[scope]):
            role = {ROLE_ASSIGNMENT_WRITE: "User Access Administrator",
                    ROLE_ASSIGNMENT_DELETE: "User Access Administrator", SUBNET_WRITE: NETWORK_CONTRIBUTOR,
                    CLUSTER_WRITE: "Azure Kubernetes Service Contributor Role"}.get(action, "Contributor")
            missing.append(MissingRight(action, scope, role))
    if missing:
        raise missing_rights_error(missing, caller_object_id(ctx.cli_ctx))


@dataclass
class EnableOptions:  # pylint: disable=too-many-instance-attributes
    subnet_name: str | None = None
    subnet_cidr: str | None = None
    skip_role_assignment: bool = False
    timeout: int = DEFAULT_TIMEOUT
    no_wait: bool = False
    mode: str = "addon"
    chart: str | None = None
    chart_version: str | None = None
    release: str | None = None
    namespace: str | None = None
    node_name: str | None = None
    identity: str | None = None
    replicas: int | None = None          # mode v2
    nat_gateway: str | None = None       # mode v2


def enable(ctx: Ctx, opts: EnableOptions) -> dict[str, Any] | None:
    if opts.mode == "v2":
        from azext_virtualnode.connectors import v2_mode
        return v2_mode.enable(ctx, opts)
    ctx.deadline = Deadline(opts.timeout)
    deadline = ctx.deadline.at
    cluster = wait_until_idle(ctx.clusters, ctx.resource_group, ctx.name, ctx.cluster(), deadline,
                              on_wait=progress)
    require_azure_cni(cluster)
    cluster_access_preflight(ctx, cluster, READS + (CHART_WRITES if opts.mode == "chart" else ()), "enable")
    mode: Mode = (ChartEnable if opts.mode == "chart" else AddonEnable)(ctx, opts, deadline)
    current_subnet = mode.preflight(cluster)
    plan = plan_subnet(ctx, cluster, opts.subnet_name or current_subnet or DEFAULT_SUBNET_NAME, opts.subnet_cidr)
    needs_register = check_region_and_provider(ctx, cluster)
    mode.prepare(cluster, plan)
    needs = ([(SUBNET_WRITE, cluster.vnet_id)] if plan.body is not None else []) + mode.rights(cluster)
    if needs:
        check_caller_rights(ctx, needs)

    # ---- first write below this line ----
    resume = f"az aks virtual-node enable {ctx.ids}{' --mode chart' if opts.mode == 'chart' else ''}"
    if needs_register:
        register_provider(ctx, deadline)
        ctx.done.append(f"registered the {ACI_PROVIDER} provider")
    if plan.body is not None:
        progress(f"Creating/delegating subnet '{plan.name}' for Azure Container Instances...")
        ctx.subnets.ensure_delegated(
            plan.id, plan.body, plan.etag,
            lambda current: check_existing_subnet(SubnetFacts.of(current), None, plan.vnet.get("name", "")),
            wait=lambda poller: wait_operation(ctx, poller, f"creating/delegating subnet '{plan.name}'", resume))
        ctx.done.append(f"created/delegated subnet '{plan.name}'")
    fixed = mode.apply(cluster, plan) or needs_register or plan.body is not None
    if fixed or mode.was_installed:
        heal_crash_loops(ctx, mode.connector_namespace, mode.connector_selector)
    if opts.no_wait:
        progress(f"Started. Run 'az aks virtual-node wait {ctx.ids} --ready' to wait for the virtual node.")
        return None
    verify_ready(ctx, deadline, opts.timeout, mode.node_name, mode.connector_namespace, mode.connector_selector)
    return status(ctx)


def heal_crash_loops(ctx: Ctx, namespace: str, selector: str) -> list[str]:
    """Delete the connector pods in CrashLoopBackOff, so their controller recreates them now: the cause this
    run fixed (a role, the subnet, the provider) need not wait out the kubelet's back-off (up to 5 minutes)."""
    healed: list[str] = []
    try:
        with ctx.kube() as kube:
            for pod in kube.connector_pods(namespace, selector):
                facts = PodFacts.of(pod)
                # in its back-off, or in the few seconds it runs between two of its crashes
                if facts.reason != "CrashLoopBackOff" and not any(
                        crash_looping(s) for s in pod.status.container_statuses or []):
                    continue
                progress(f"Restarting connector pod {facts.name} (crash-looping, {facts.restarts} restarts) so it "
                         "starts again now instead of after its back-off...")
                if kube.delete_pod(facts.namespace, facts.name):
                    healed.append(facts.name)
    except ClusterUnreachable as exc:
        progress(f"Warning: could not check the connector pods for a crash loop ({exc}); continuing.")
    return healed


def register_provider(ctx: Ctx, deadline: float) -> None:
    providers = cf.cf_providers(ctx.cli_ctx)
    progress(f"Registering the {ACI_PROVIDER} resource provider...")
    providers.register(ACI_PROVIDER)
    with Waiting(ctx, f"registering {ACI_PROVIDER}") as waiting:
        while (state := providers.get(ACI_PROVIDER).registration_state or "") != "Registered":
            waiting.set(f"{ACI_PROVIDER} {state}")
            if time.monotonic() + 2 > deadline:
                raise timeout_error(ctx, f"The {ACI_PROVIDER} provider did not finish registering in time (check "
                                    f"with 'az provider show -n {ACI_PROVIDER} --query registrationState').",
                                    f"registration of {ACI_PROVIDER}", f"az aks virtual-node enable {ctx.ids}")
            time.sleep(2)


# -- verification ----------------------------------------------------------------------------------------------
# pylint: disable-next=too-many-positional-arguments
def verify_ready(ctx: Ctx, deadline: float, timeout: int, node_name: str = ADDON_NODE_NAME,
                 namespace: str = CONNECTOR_NAMESPACE, selector: str = CONNECTOR_LABEL_SELECTOR) -> None:
    """Watch until the node is registered, Ready, labelled, tainted and its Lease fresh; diagnose on timeout."""
    from azext_virtualnode.kube import node_facts_from
    progress(f"Waiting for node '{node_name}' to register (up to {timeout}s)...")
    try:
        with ctx.kube() as kube:
            def state() -> str:
                pods = [PodFacts.of(p) for p in kube.connector_pods(namespace, selector)]
                if not pods:
                    return "connector pod not created yet"
                pod = pods[0]
                return f"connector {pod.reason or pod.phase}" + (", node not Ready yet" if pod.ready else "")
            with Waiting(ctx, f"waiting for node {node_name}", state):
                kube.wait_node(node_name, deadline, lambda n: _node_ok(node_facts_from(n, None, node_name)))
                kube.wait_lease_fresh(node_name, 40.0, deadline)
    except TimeoutError:
        raise diagnose(ctx, f"The virtual node did not become ready within {timeout}s.") from None
    except ClusterUnreachable as exc:
        if ctx.deadline.expired:      # a read cut short by the deadline is the same timeout
            raise diagnose(ctx, f"The virtual node did not become ready within {timeout}s.") from None
        raise diagnose(ctx, f"Could not verify the virtual node on the cluster: {exc}.") from None


def _node_ok(n: Any) -> bool:
    return n.registered and n.ready and n.taint_ok and n.label_ok


def diagnose(ctx: Ctx, headline: str) -> CLIError:
    st = status(ctx)
    lines = [headline]
    for pod in (st.get("connector") or {}).get("pods", []):
        lines.append(f"  connector pod {pod['name']}: {pod['phase']}, ready={pod['ready']}, "
                     f"restarts={pod['restarts']}{', ' + pod['reason'] if pod['reason'] else ''}")
    for event in (st.get("connector") or {}).get("events", [])[-3:]:
        lines.append(f"  event: {event}")
    return timeout_report(ctx, lines, st["problems"])


# -- disable ------------------------------------------------------------------------------------------------
@dataclass
class DisablePlan:
    conn: Connector | None
    subnet_name: str
    subnet_id: str | None
    subnet: dict[str, Any] | None
    marked: list[Any]
    helm: Helm | None = None


# pylint: disable-next=too-many-positional-arguments
def disable(ctx: Ctx, delete_subnet: bool, force: bool, yes: bool, timeout: int,
            subnet_name: str | None = None, confirm: Callable[[str, bool], None] | None = None) -> dict[str, Any]:
    ctx.deadline = Deadline(timeout)
    deadline = ctx.deadline.at
    cluster = wait_until_idle(ctx.clusters, ctx.resource_group, ctx.name, ctx.cluster(), deadline,
                              on_wait=progress)
    cluster_access_preflight(ctx, cluster, READS, "disable")
    plan = plan_disable(ctx, cluster, delete_subnet, force, subnet_name)
    conn = plan.conn
    if conn is not None and conn.mode in ("chart", "v2"):
        cluster_access_preflight(ctx, cluster, READS + CHART_WRITES, "disable")
    if conn is not None and conn.mode == "v2":
        from azext_virtualnode.connectors.v2_mode import disable as v2_disable
        return v2_disable(ctx, cluster, conn.release, delete_subnet, force, yes, confirm)
    result = {"cluster": cluster.id, "mode": conn.mode if conn else "none", "addonDisabled": False,
              "chartUninstalled": False, "nodeRemoved": None, "roleAssignmentsRemoved": [], "subnetDeleted": False}
    if conn is None and not plan.marked and plan.subnet is None:
        progress(f"Virtual nodes are not enabled on cluster '{ctx.name}'; nothing to do.")
        return result
    (confirm or _confirm)(f"This will {', '.join(_disable_actions(plan))} on cluster '{ctx.name}'. Continue?", yes)
    if conn is not None:
        removed, result["nodeRemoved"] = remove_connector(ctx, cluster, conn, plan.helm,
                                                          f"az aks virtual-node disable {ctx.ids}")
        result["addonDisabled" if conn.mode == "addon" else "chartUninstalled"] = removed
    for ra in plan.marked:
        ctx.roles.delete(ra.id)
        result["roleAssignmentsRemoved"].append(ra.id)
    if plan.subnet is not None:
        delete_virtual_node_subnet(ctx, plan, deadline)
        result["subnetDeleted"] = True
    return result


def plan_disable(ctx: Ctx, cluster: ClusterView, delete_subnet: bool, force: bool,
                 subnet_name: str | None) -> DisablePlan:
    """Every read and check of ``disable``, before its first change."""
    conn = detect_for_disable(ctx, cluster, force)
    if conn is not None and conn.mode == "v2":       # connectors/v2_mode.disable reads and checks on its own
        return DisablePlan(conn, conn.subnet_name or "", None, None, [])
    helm = Helm.discover() if conn is not None and conn.mode == "chart" else None
    name = (conn.subnet_name if conn else None) or subnet_name or DEFAULT_SUBNET_NAME
    subnet_id = f"{cluster.vnet_id}/subnets/{name}" if cluster.vnet_id else None
    if conn is not None:
        refuse_if_busy_node(ctx, force, conn.node_name)
    scopes = [s for s in (subnet_id, node_resource_group_id(cluster)) if s]
    marked = [ra for scope in scopes for ra in ctx.roles.marked_at(scope)]
    subnet = ctx.subnets.get(subnet_id) if (subnet_id and delete_subnet) else None
    if subnet is not None:
        facts = SubnetFacts.of(subnet)
        if facts.ip_configurations or not facts.delegated_to_aci:
            raise ValidationError(
                f"Refusing to delete subnet '{name}': it is not a virtual-node subnet (delegated to "
                f"{', '.join(facts.delegations) or 'nothing'}, {facts.ip_configurations} other resource(s) use it). "
                "Nothing was changed; run again without --delete-subnet.")
    return DisablePlan(conn, name, subnet_id, subnet, marked, helm)


def detect_for_disable(ctx: Ctx, cluster: ClusterView, force: bool) -> Connector | None:
    try:
        return detect(ctx, cluster)
    except ClusterUnreachable as exc:
        if force:
            progress(f"Warning: could not check the cluster for a chart-installed connector ({exc}); cleaning up "
                     "Azure only (--force).")
            return None
        raise ValidationError(f"Cannot check the cluster for a chart-installed connector: {exc}. Nothing was "
                              "changed. Use --force to clean up the Azure side anyway.") from None


def _disable_actions(plan: DisablePlan) -> list[str]:
    conn, actions = plan.conn, []
    if conn is not None and conn.mode == "addon":
        actions.append(f"turn off the ACI connector add-on and remove node {conn.node_name}")
    elif conn is not None and conn.release is not None:
        actions.append(f"uninstall Helm release '{conn.release.name}' and remove node {conn.node_name}")
    if plan.marked:
        actions.append(f"remove {len(plan.marked)} role assignment(s) this extension created")
    if plan.subnet is not None:
        actions.append(f"delete subnet '{plan.subnet_name}'")
    return actions


def _confirm(message: str, yes: bool) -> None:
    from azure.cli.core.util import user_confirmation
    user_confirmation(message, yes)


def refuse_if_busy_node(ctx: Ctx, force: bool, node_name: str = ADDON_NODE_NAME) -> None:
    try:
        with ctx.kube() as kube:
            pods = [p for p in kube.pods_on_node(node_name) if not owned_by_daemonset(p)]
    except ClusterUnreachable as exc:
        if force:
            progress(f"Warning: could not check for pods on the virtual node ({exc}); continuing (--force).")
            return
        raise ValidationError(f"Cannot check whether pods still run on the virtual node: {exc}. Nothing was "
                              "changed. Use --force to disable anyway.") from None
    if pods and not force:
        listing = "\n".join(f"  {p.metadata.namespace}/{p.metadata.name}" for p in pods[:50])
        raise ValidationError(
            f"{len(pods)} pod(s) still run on the virtual node; disabling would delete their container groups:\n"
            f"{listing}\nMove or delete them first, or re-run with --force. Nothing was changed.")


def remove_connector(ctx: Ctx, cluster: ClusterView, conn: Connector, helm: Helm | None,
                     resume: str) -> tuple[bool, bool | None]:
    """Turn the add-on off (and wait for its node to go), or uninstall the legacy chart and delete the node and
    container groups it leaves. Returns (turned off / uninstalled, node removed)."""
    deadline = ctx.deadline.at
    if conn.mode == "addon":
        progress("Turning off the ACI connector add-on...")
        wait_operation(ctx, set_addon(ctx.clusters, ctx.resource_group, cluster, None, deadline=finite(deadline)),
                       f"turning off the ACI connector add-on of cluster '{ctx.name}'", resume)
        ctx.done.append("turned off the ACI connector add-on")
        return True, wait_node_gone(ctx, deadline, conn.node_name)
    return uninstall_chart(ctx, conn, helm, deadline), remove_chart_node(ctx, cluster, conn, deadline)


def uninstall_chart(ctx: Ctx, conn: Connector, helm: Helm | None, deadline: float) -> bool:
    assert conn.release is not None and helm is not None
    progress(f"Uninstalling Helm release '{conn.release.name}' (namespace '{conn.release.release_namespace}')...")
    return helm.uninstall(conn.release.name, conn.release.release_namespace, ctx.kubeconfig(),
                          max(deadline - time.monotonic(), 1))


def remove_chart_node(ctx: Ctx, cluster: ClusterView, conn: Connector, deadline: float) -> bool | None:
    """The chart leaves its node behind: once its connector pods are gone (else it would register the node
    again), delete the node, and the container groups no connector will delete now."""
    try:
        with ctx.kube() as kube, Waiting(ctx, "waiting for the connector pods to terminate") as waiting:
            while (pods := kube.connector_pods(conn.namespace, conn.selector)) and time.monotonic() < deadline:
                waiting.set(f"{len(pods)} connector pod(s) terminating")
                time.sleep(1)
            kube.delete_node(conn.node_name)
    except ClusterUnreachable as exc:
        progress(f"Warning: could not delete node '{conn.node_name}': {exc}")
        return None
    gone = wait_node_gone(ctx, deadline, conn.node_name)
    groups = cf.cf_container_groups(ctx.cli_ctx)
    for group in groups.list_by_resource_group(cluster.node_resource_group):
        if (group.tags or {}).get("NodeName") == conn.node_name:
            progress(f"Deleting container group '{group.name}' left by the virtual node...")
            wait_operation(ctx, groups.begin_delete(cluster.node_resource_group, group.name,
                                                    polling_interval=poll_interval()),
                           f"deleting container group '{group.name}'", f"az aks virtual-node disable {ctx.ids}")
    return gone


def delete_virtual_node_subnet(ctx: Ctx, plan: DisablePlan, deadline: float) -> None:
    assert plan.subnet_id is not None and plan.subnet is not None
    chart = plan.conn is not None and plan.conn.mode == "chart"
    if chart and SubnetFacts.of(plan.subnet).service_association_links:
        # AKS removes the service association link with the add-on; after a chart it is ours to remove.
        from azure.core.exceptions import ResourceNotFoundError
        sal = f"{plan.subnet_id}/providers/Microsoft.ContainerInstance/serviceAssociationLinks/default"
        with contextlib.suppress(ResourceNotFoundError):
            poller = cf.cf_resources(ctx.cli_ctx).begin_delete_by_id(sal, SAL_API_VERSION,
                                                                     polling_interval=poll_interval())
            wait_operation(ctx, poller,
                           "removing the subnet's service association link", f"az aks virtual-node disable {ctx.ids}")
    progress(f"Deleting subnet '{plan.subnet_name}' (waits until Azure Container Instances releases it)...")
    with Waiting(ctx, f"waiting for Azure Container Instances to release subnet '{plan.subnet_name}'") as waiting:
        ctx.subnets.delete_with_retry(plan.subnet_id, deadline,
                                      on_wait=progress if not waiting.on_terminal() else waiting.set,
                                      wait=lambda poller: wait_operation(
                                          ctx, poller, f"deleting subnet '{plan.subnet_name}'",
                                          f"az aks virtual-node disable {ctx.ids} --delete-subnet"))


def wait_node_gone(ctx: Ctx, deadline: float, node_name: str = ADDON_NODE_NAME) -> bool | None:
    try:
        with ctx.kube() as kube, Waiting(ctx, f"waiting for node {node_name} to go"):
            kube.wait_node(node_name, deadline, lambda n: n is None)
        return True
    except TimeoutError:
        raise Timeout(f"The connector is off but node '{node_name}' is still registered. Re-run 'az aks "
                      f"virtual-node disable {ctx.ids}' to finish, or delete it with 'kubectl delete node "
                      f"{node_name}'.") from None
    except ClusterUnreachable as exc:
        progress(f"Warning: could not confirm the node was removed: {exc}")
        return None


# -- wait ---------------------------------------------------------------------------------------------------
def wait(ctx: Ctx, ready: bool, deleted: bool, timeout: int, interval: int) -> None:
    if ready == deleted:
        raise InvalidArgumentValueError("Specify exactly one of --ready or --deleted.")
    ctx.deadline = Deadline(timeout)
    deadline = ctx.deadline.at
    cluster = wait_until_idle(ctx.clusters, ctx.resource_group, ctx.name, ctx.cluster(), deadline,
                              interval=interval, on_wait=None)
    cluster_access_preflight(ctx, cluster, READS, "wait")
    try:
        conn = detect(ctx, cluster)
    except ClusterUnreachable as exc:
        raise Timeout(f"Could not read the cluster to find its connector: {exc}") from None
    if ready and conn is None:
        raise ValidationError(f"Virtual nodes are not enabled on cluster '{ctx.name}'; nothing to wait for. "
                              f"Run 'az aks virtual-node enable {ctx.ids}'.")
    if deleted and conn is not None:
        raise ValidationError(f"Virtual nodes are still enabled on cluster '{ctx.name}' (mode {conn.mode}). Run "
                              f"'az aks virtual-node disable {ctx.ids}' first.")
    if ready and conn.mode == "v2":
        from azext_virtualnode.connectors.v2_mode import V2Release, verify
        verify(ctx, V2Release(conn.release), timeout)
        return
    if ready:
        verify_ready(ctx, deadline, timeout, conn.node_name, conn.namespace, conn.selector)
        return
    try:
        with ctx.kube() as kube:
            from azext_virtualnode.connectors.v2_kube import vn2_nodes
            # the add-on's and the chart's default node, and any Virtual Nodes v2 node (one selector-scoped list)
            for node in (ADDON_NODE_NAME, CHART_NODE_NAME, *(n.metadata.name for n in vn2_nodes(kube))):
                kube.wait_node(node, deadline, lambda n: n is None)
    except TimeoutError as exc:
        raise Timeout(f"Timed out after {timeout}s: node '{exc}' is still registered. A node no connector serves any "
                      f"more (a Virtual Nodes v2 node left by 'helm uninstall') stays until it is deleted: 'az aks "
                      f"virtual-node prune {ctx.ids}' while v2 is installed, else 'kubectl delete node {exc}'.") \
            from None
    except ClusterUnreachable as exc:
        raise Timeout(f"Could not confirm the node was removed: {exc}") from None
