"""``migrate --to v2``: move a cluster from the legacy virtual node (the add-on or the legacy chart) to Virtual
Nodes v2 without taking its workloads down.

Steps, each checking before it acts (so an interrupted run is re-run to finish, and a migrated cluster has
nothing to do):

1. plan: the v2 preflight (``v2_mode.plan_enable``: capacity, network, chart version, rights), the subnet (the
   legacy connector's, when v2 can use it), and what becomes of every workload (``migration.classify``);
   ``--dry-run`` stops here, having written nothing;
2. install v2 beside the legacy connector (``v2_mode.install``) and wait until its nodes are ready;
3. cordon the legacy node, so nothing new lands there;
4. re-place each workload for v2 with the policy it had, one at a time, and wait until its pods left the
   legacy node (a Deployment's own paced rollout; else evictions one by one, PodDisruptionBudgets respected);
5. when no pod is left there (bare pods stop the run here unless ``--force``): remove the role assignments this
   extension created for the legacy connector that v2 does not use, then turn the legacy connector off as
   ``disable`` does (the subnet stays: v2 uses it, or it was the user's).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from azure.cli.core.azclierror import ValidationError
from knack.util import CLIError

from azext_virtualnode._consts import CHART_NAME as LEGACY_CHART
from azext_virtualnode.connectors import v2
from azext_virtualnode.context import Ctx, Deadline, Timeout, Waiting, node_resource_group_id, progress
from azext_virtualnode.kube import ClusterUnreachable, owned_by_daemonset
from azext_virtualnode.migration import (Move, Stuck, all_ready, classify, deployment_rolled_out, legacy_policy,
                                         owner_workload, replan, restart_patch, statefulset_rolling)
from azext_virtualnode.placement import PlacementError

MIGRATE_TIMEOUT = 1800
_LISTS = {"deployment": "/apis/apps/v1/deployments", "statefulset": "/apis/apps/v1/statefulsets",
          "replicaset": "/apis/apps/v1/replicasets", "job": "/apis/batch/v1/jobs",
          "cronjob": "/apis/batch/v1/cronjobs"}
PDBS = "/apis/policy/v1/poddisruptionbudgets"


@dataclass
class MigrateOptions:  # pylint: disable=too-many-instance-attributes
    to: str = "v2"
    replicas: int | None = None
    subnet_name: str | None = None
    chart: str | None = None
    chart_version: str | None = None
    dry_run: bool = False
    yes: bool = False
    force: bool = False
    timeout: int = MIGRATE_TIMEOUT


@dataclass
class MigrationPlan:  # pylint: disable=too-many-instance-attributes
    cluster: Any
    legacy: Any                          # workflow.Connector of mode addon/chart
    v2: Any                              # v2_mode.V2Plan
    subnet_reused: bool
    subnet_note: str
    moves: list[Move]
    stuck: list[Stuck]
    unaffected: int
    roles_to_remove: list[Any]
    kept_roles: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        p = self.v2
        return {"cluster": self.cluster.id, "from": self.legacy.mode, "to": "v2",
                "legacy": {"mode": self.legacy.mode, "node": self.legacy.node_name,
                           "subnet": self.legacy.subnet_name,
                           "release": self.legacy.release.name if self.legacy.release else None},
                "v2": {"release": p.release, "namespace": p.namespace, "chart": v2.CHART_NAME,
                       "version": p.chart.version, "replicas": p.replicas,
                       "installed": p.existing is not None,
                       "subnets": [{"name": s.name, "id": s.id, "write": s.body is not None} for s in p.subnets],
                       "subnetReused": self.subnet_reused, "subnetNote": self.subnet_note},
                "workloads": {"replace": [m.as_json() for m in self.moves],
                              "notMovable": [s.as_json() for s in self.stuck], "unaffected": self.unaffected},
                "roleAssignmentsToRemove": [ra.id for ra in self.roles_to_remove],
                "roleAssignmentsKept": self.kept_roles}


def _needs() -> tuple[Any, ...]:
    from azext_virtualnode.access import Need
    from azext_virtualnode.connectors.v2_mode import _writes  # pylint: disable=protected-access
    return _writes() + (
        Need("list", "deployments", "apps", "the workloads to move"),
        Need("patch", "deployments", "apps", "re-placing workloads"),
        Need("patch", "statefulsets", "apps", "re-placing workloads"),
        Need("patch", "replicasets", "apps", "re-placing workloads"),
        Need("list", "poddisruptionbudgets", "policy", "the workloads' disruption budgets"),
        Need("delete", "pods", why="moving pods off the legacy node (evictions)"))


# -- the command ---------------------------------------------------------------------------------------------
def migrate(ctx: Ctx, o: MigrateOptions, confirm: Callable[[str, bool], None] | None = None) -> dict[str, Any]:
    from azext_virtualnode.access import preflight as access_preflight
    from azext_virtualnode.addon import wait_until_idle
    from azext_virtualnode.connectors import v2_mode
    from azext_virtualnode.workflow import _confirm, status
    ctx.deadline = Deadline(o.timeout)
    cluster = wait_until_idle(ctx.clusters, ctx.resource_group, ctx.name, ctx.cluster(), ctx.deadline.at,
                              on_wait=progress)
    minor = v2_mode.check_cluster(ctx, cluster)
    access_preflight(ctx, cluster, _needs(), "migrate")
    legacy, installed = connectors(ctx, cluster)
    if legacy is None:
        if installed is None:
            raise ValidationError(
                f"No legacy virtual node (the ACI connector add-on or the {LEGACY_CHART} chart) is installed on "
                f"cluster '{ctx.name}', so there is nothing to migrate. To start with Virtual Nodes v2, run 'az aks "
                f"virtual-node enable {ctx.ids} --mode v2'. Nothing was changed.")
        progress(f"Cluster '{ctx.name}' already runs Virtual Nodes v2 (release '{installed.name}') and no legacy "
                 "virtual node; nothing to do.")
        return {**status(ctx, cluster), "migration": summary("none", [], [], False, [], nothing_to_do=True,
                                                             rel=installed, subnets=installed.subnets)}
    mp = plan(ctx, cluster, minor, legacy, installed, o)
    report(mp, o.force)
    if o.dry_run:
        progress("Dry run: nothing was changed.")
        return {"dryRun": True, **mp.as_json()}
    risky = [m for m in mp.moves if m.risk]
    if risky:
        lines = "\n".join(f"  {m.namespace}/{m.workload}: {m.risk}" for m in risky)
        raise ValidationError(
            f"Moving these workloads to Virtual Nodes v2 would cost them availability:\n{lines}\nAdd replicas, relax "
            "the strategy or PodDisruptionBudget, or re-run with --force to move them anyway. Nothing was changed.")
    (confirm or _confirm)(confirm_text(ctx, mp), o.yes)
    # ---- first write below this line ----
    resume = f"az aks virtual-node migrate {ctx.ids} --to v2"
    v2_mode.install(ctx, mp.v2, resume)
    rel = v2_mode.current_release(ctx)
    v2_mode.verify(ctx, rel, o.timeout)
    moved = move_workloads(ctx, mp, o.force)
    left = legacy_pods(ctx, mp.legacy.node_name)
    if left and not o.force:
        raise stopped_error(ctx, mp, left)
    removed = remove_roles(ctx, mp)
    remove_legacy(ctx, mp)
    final = status(ctx)
    stuck = [s.as_json() for s in mp.stuck]
    return {**final, "migration": summary(mp.legacy.mode, moved, stuck, True, removed, rel=rel,
                                          subnets=[s.name for s in mp.v2.subnets], reused=mp.subnet_reused)}


def summary(source: str, moved: list[dict[str, Any]], skipped: list[dict[str, Any]], removed: bool,
            roles: list[str], *, nothing_to_do: bool = False, rel: Any = None, subnets: list[str] | None = None,
            reused: bool = False) -> dict[str, Any]:
    return {"from": source, "to": "v2", "nothingToDo": nothing_to_do, "release": rel.name if rel else None,
            "subnets": subnets or [], "subnetReused": reused, "moved": moved, "skipped": skipped,
            "connectorRemoved": removed, "roleAssignmentsRemoved": roles}


def connectors(ctx: Ctx, cluster: Any) -> tuple[Any, Any]:
    """(the legacy connector or None, the installed v2 release or None), from the cluster and Helm's records."""
    from azext_virtualnode.connectors.v2_mode import V2Release
    from azext_virtualnode.workflow import installed
    try:
        conn, beside = installed(ctx, cluster, with_v2=True)
    except ClusterUnreachable as exc:
        raise ValidationError(f"Cannot read cluster '{ctx.name}': {exc}. Nothing was changed.") from None
    if conn is not None and conn.mode == "v2":
        return None, V2Release(conn.release)
    return conn, (V2Release(beside) if beside is not None else None)


# -- plan --------------------------------------------------------------------------------------------------
def reusable_subnet(ctx: Ctx, cluster: Any, legacy: Any) -> tuple[str | None, str]:
    """The legacy connector's subnet when v2 can use it (it exists in the cluster's VNet, delegated to ACI, and
    passes v2's subnet checks), else None; with why."""
    from azext_virtualnode.network import SubnetFacts, check_existing_subnet
    name = legacy.subnet_name
    if not name or not cluster.vnet_id:
        return None, "the legacy connector has no subnet (public ACI addresses)"
    raw = ctx.subnets.get(f"{cluster.vnet_id}/subnets/{name}")
    if raw is None:
        return None, f"the legacy subnet '{name}' no longer exists"
    facts = SubnetFacts.of(raw)
    if not facts.delegated_to_aci:
        return None, f"the legacy subnet '{name}' is not delegated to Azure Container Instances"
    try:
        check_existing_subnet(facts, None, cluster.vnet_id.rsplit("/", 1)[-1])
    except (ValidationError, CLIError) as exc:
        return None, f"the legacy subnet '{name}' cannot be used: {exc}"
    return name, f"the legacy connector's subnet '{name}' is reused"


# pylint: disable-next=too-many-positional-arguments,too-many-locals
def plan(ctx: Ctx, cluster: Any, minor: int, legacy: Any, installed: Any, o: MigrateOptions) -> MigrationPlan:
    from azext_virtualnode.connectors.v2_mode import plan_enable
    from azext_virtualnode.roles import ROLE_ASSIGNMENT_DELETE
    from azext_virtualnode.workflow import EnableOptions, check_caller_rights
    reuse, note = (None, "") if (o.subnet_name or installed) else reusable_subnet(ctx, cluster, legacy)
    if o.subnet_name:
        note = f"--subnet-name {o.subnet_name}"
    elif installed is not None:
        note = "the installed release's subnets"
    elif reuse is None:
        note = f"{note}; a new subnet '{v2.SUBNET}' is used"
    opts = EnableOptions(mode="v2", subnet_name=o.subnet_name or reuse, replicas=o.replicas, chart=o.chart,
                         chart_version=o.chart_version, timeout=o.timeout)
    p = plan_enable(ctx, opts, cluster, minor, allow_legacy=True)
    reused = bool(legacy.subnet_name) and any(s.name.lower() == legacy.subnet_name.lower() for s in p.subnets)
    roles, kept = legacy_roles(ctx, cluster, legacy, p)
    if roles:
        check_caller_rights(ctx, [(ROLE_ASSIGNMENT_DELETE, ra.scope) for ra in roles])
    try:
        with ctx.kube() as kube:
            workloads = {kind: kube.list_raw(path) for kind, path in _LISTS.items()}
            pdbs = kube.list_raw(PDBS)
            pods = legacy_pods_raw(kube, legacy.node_name)
    except ClusterUnreachable as exc:
        raise ValidationError(f"Cannot read the workloads of cluster '{ctx.name}': {exc}. Nothing was "
                              "changed.") from None
    moves, stuck, unaffected = classify(workloads, pods, pdbs, o.force)
    return MigrationPlan(cluster, legacy, p, reused, note, moves, stuck, unaffected, roles, kept)


def legacy_roles(ctx: Ctx, cluster: Any, legacy: Any, p: Any) -> tuple[list[Any], list[str]]:
    """The role assignments this extension created for the legacy connector (at its subnet and the node
    resource group) that v2 does not use (same principal, same scope): those go; the rest are kept."""
    scopes = [node_resource_group_id(cluster)]
    if legacy.subnet_name and cluster.vnet_id:
        scopes.append(f"{cluster.vnet_id}/subnets/{legacy.subnet_name}")
    v2_scopes = {node_resource_group_id(cluster).lower()} | {s.id.lower() for s in p.subnets}
    v2_principal = (p.identity or {}).get("objectId")
    go, kept = [], []
    for ra in [ra for scope in scopes for ra in ctx.roles.marked_at(scope)]:
        if ra.principal_id == v2_principal and ra.scope.lower() in v2_scopes:
            kept.append(ra.id)
        else:
            go.append(ra)
    return go, kept


def legacy_pods_raw(kube: Any, node: str) -> list[dict[str, Any]]:
    """The pods on the legacy node that must go before it does: not DaemonSet pods, not finished, not already
    terminating."""
    from azext_virtualnode.connectors.v2_kube import live
    from azext_virtualnode.kube_rest import view
    return [p for p in kube.list_raw("/api/v1/pods", fieldSelector=f"spec.nodeName={node}")
            if not owned_by_daemonset(view(p)) and live(view(p)) and not (p.get("metadata") or {}).get(
                "deletionTimestamp")]


def legacy_pods(ctx: Ctx, node: str) -> list[dict[str, Any]]:
    try:
        with ctx.kube() as kube:
            return legacy_pods_raw(kube, node)
    except ClusterUnreachable as exc:
        raise CLIError(f"Cannot check the pods left on node '{node}': {exc}. Re-run 'az aks virtual-node migrate "
                       f"{ctx.ids} --to v2' to finish.") from None


def _legacy_name(legacy: Any) -> str:
    return "the ACI connector add-on" if legacy.mode == "addon" else f"Helm release '{legacy.release.name}'"


def report(mp: MigrationPlan, force: bool) -> None:
    p, legacy = mp.v2, mp.legacy
    progress(f"Plan: move cluster '{mp.cluster.name}' from {_legacy_name(legacy)} (node {legacy.node_name}) to "
             "Virtual Nodes v2.")
    install = f"release '{p.release}' is installed" if p.existing else \
        f"install chart {v2.CHART_NAME} {p.chart.version or ''} as release '{p.release}'"
    progress(f"  v2: {install}, {p.replicas} node(s), subnet(s) {', '.join(s.name for s in p.subnets)} "
             f"({mp.subnet_note}).")
    for m in mp.moves:
        how = "rollout" if m.kind.name == "deployment" else "evictions" if m.pods_on_legacy else "template only"
        progress(f"  re-place {m.namespace}/{m.workload} (policy {m.policy}; {m.pods_on_legacy} pod(s) on the legacy "
                 f"node; {how}){' - RISK: ' + m.risk if m.risk else ''}")
    for s in mp.stuck:
        progress(f"  cannot move {s.namespace}/{s.workload}: {s.reason}")
    if mp.stuck:
        progress("  " + ("--force: the legacy connector is removed anyway (the container groups of these pods are "
                         "deleted)." if force else "migrate stops before removing the legacy connector while pods "
                         "of these remain on the legacy node."))
    progress(f"  unaffected workloads: {mp.unaffected}; role assignments to remove: {len(mp.roles_to_remove)}.")


def confirm_text(ctx: Ctx, mp: MigrationPlan) -> str:
    p, what = mp.v2, _legacy_name(mp.legacy)
    return (f"This will {'use' if p.existing else 'install'} Virtual Nodes v2 ({p.replicas} node(s)) beside {what}, "
            f"cordon node {mp.legacy.node_name}, re-place {len(mp.moves)} workload(s) onto v2, then remove "
            f"{len(mp.roles_to_remove)} role assignment(s) and {what} on cluster '{ctx.name}'. Continue?")


# -- moving workloads ----------------------------------------------------------------------------------------
def move_workloads(ctx: Ctx, mp: MigrationPlan, force: bool) -> list[dict[str, Any]]:
    from azext_virtualnode.connectors import v2_kube as vk
    from azext_virtualnode.workload_ops import Workloads
    moved = []
    try:
        with ctx.kube() as kube:
            node = kube.node(mp.legacy.node_name)
            if node is not None and not node.spec.unschedulable:
                progress(f"Cordoning node {mp.legacy.node_name}, so no new pod lands on the legacy virtual node...")
                vk.cordon(kube, mp.legacy.node_name)
                ctx.done.append(f"cordoned node {mp.legacy.node_name}")
            api = Workloads(kube)
            for m in mp.moves:
                moved.append(move_one(ctx, kube, api, m, mp.legacy.node_name, force))
    except ClusterUnreachable as exc:
        raise CLIError(f"Lost the cluster's API server while moving workloads: {exc}. {_continue(ctx, moved)}") \
            from None
    except ValidationError as exc:      # the API server refused a read or a change (403, 422, ...)
        raise CLIError(f"{str(exc).replace(' Nothing was changed.', '')} {_continue(ctx, moved)}") from None
    except Exception as exc:  # pylint: disable=broad-except
        from kubernetes.client.exceptions import ApiException
        if not isinstance(exc, ApiException):
            raise
        status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
        raise CLIError(f"The cluster's API server answered {status} {reason} while moving workloads. "
                       f"{_continue(ctx, moved)}") from None
    return moved


def _continue(ctx: Ctx, moved: list[dict[str, Any]]) -> str:
    return (f"Virtual Nodes v2 is installed and {len(moved)} workload(s) were moved in this run; the legacy "
            f"connector is untouched. Fix the cause, then re-run 'az aks virtual-node migrate {ctx.ids} --to v2' to "
            "continue where it stopped.")


def _replace(api: Any, m: Move) -> bool:
    """Re-place the workload for v2 (re-read, re-planned on a conflict); True when its template changed."""
    from azext_virtualnode.workload_ops import Conflict
    for attempt in range(3):
        obj = api.read(m.kind, m.name, m.namespace)
        if obj is None:
            return False
        try:
            policy = legacy_policy(obj, m.kind)
            p = replan(obj, m.kind, policy) if policy else None
        except PlacementError as exc:
            raise CLIError(f"{m.kind.kind} '{m.namespace}/{m.name}' changed since the plan: {exc}.") from None
        patch = p.merge_patch((obj.get("metadata") or {}).get("resourceVersion")) if p else None
        if patch is None:
            return False
        try:
            api.patch(m.kind, m.name, m.namespace, patch)
        except Conflict:
            time.sleep(0.2 * (attempt + 1))
            continue
        progress(f"Re-placed {m.kind.kind} '{m.namespace}/{m.name}' for Virtual Nodes v2 (policy {p.policy}).")
        return True
    raise CLIError(f"{m.kind.kind} '{m.namespace}/{m.name}' kept changing while it was being updated; re-run the "
                   "command.")


# pylint: disable-next=too-many-positional-arguments
def move_one(ctx: Ctx, kube: Any, api: Any, m: Move, legacy_node: str, force: bool) -> dict[str, Any]:
    from azext_virtualnode.connectors import v2_kube as vk
    changed = _replace(api, m)
    restarted, evicted = False, []
    with Waiting(ctx, f"moving {m.namespace}/{m.workload} off {legacy_node}") as waiting:
        while True:
            pods = sorted((p for p in legacy_pods_raw(kube, legacy_node)
                           if p["metadata"].get("namespace") == m.namespace
                           and owner_workload(p) == (m.kind.name, m.name)),
                          key=lambda p: p["metadata"]["name"], reverse=True)
            if not pods:
                break
            obj = api.read(m.kind, m.name, m.namespace)
            if obj is None:
                break
            waiting.set(f"{len(pods)} pod(s) of {m.workload} left on {legacy_node}")
            if ctx.deadline.remaining() < 1:
                raise Timeout(f"{len(pods)} pod(s) of {m.kind.kind} '{m.namespace}/{m.name}' are still on node "
                              f"{legacy_node}. Virtual Nodes v2 is installed; re-run 'az aks virtual-node migrate "
                              f"{ctx.ids} --to v2' to continue (done so far: {'; '.join(ctx.done) or 'nothing'}).")
            if m.kind.name == "deployment":
                if not deployment_rolled_out(obj):
                    time.sleep(1)
                    continue
                if not restarted:           # its template did not change (or the rollout left some): restart it
                    api.patch(m.kind, m.name, m.namespace, restart_patch(
                        m.kind, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")))
                    restarted = True
                    time.sleep(1)
                    continue
            elif m.kind.name == "statefulset" and statefulset_rolling(obj):
                time.sleep(1)
                continue
            if all_ready(obj):
                name = pods[0]["metadata"]["name"]
                refusal = vk.evict(kube, m.namespace, name)
                if refusal is None:
                    progress(f"Evicted pod {m.namespace}/{name} from {legacy_node}.")
                    evicted.append(name)
                elif force:
                    progress(f"Deleting pod {m.namespace}/{name} (--force; eviction refused: {refusal}).")
                    kube.delete_pod(m.namespace, name)
                    evicted.append(name)
            time.sleep(1)
    ctx.done.append(f"moved {m.namespace}/{m.workload}")
    return {"workload": m.workload, "namespace": m.namespace, "policy": m.policy, "templateChanged": changed,
            "restarted": restarted, "evicted": evicted}


# -- the legacy connector goes ---------------------------------------------------------------------------------
def stopped_error(ctx: Ctx, mp: MigrationPlan, left: list[dict[str, Any]]) -> CLIError:
    listing = "\n".join(f"  {p['metadata'].get('namespace')}/{p['metadata'].get('name')}" for p in left[:50])
    return CLIError(
        f"Virtual Nodes v2 is installed and the movable workloads were moved, but {len(left)} pod(s) still run on "
        f"the legacy node {mp.legacy.node_name}, so the legacy connector was left in place (its node stays "
        f"cordoned):\n{listing}\nRe-create them aimed at Virtual Nodes v2 (nodeSelector virtualization=virtualnode2, "
        f"toleration virtual-kubelet.io/provider) or delete them, then re-run 'az aks virtual-node migrate {ctx.ids} "
        "--to v2'; or re-run with --force to remove the legacy connector anyway (their container groups are "
        "deleted).")


def remove_roles(ctx: Ctx, mp: MigrationPlan) -> list[str]:
    from azure.core.exceptions import ResourceNotFoundError
    removed = []
    for ra in mp.roles_to_remove:
        progress(f"Removing role assignment {ra.id.rsplit('/', 1)[-1]} this extension created for the legacy "
                 "connector...")
        try:
            ctx.roles.delete(ra.id)
        except ResourceNotFoundError:
            pass
        removed.append(ra.id)
    return removed


def remove_legacy(ctx: Ctx, mp: MigrationPlan) -> None:
    """Turn the legacy connector off as ``disable`` does."""
    from azext_virtualnode.addon import wait_until_idle
    from azext_virtualnode.chart import Helm
    from azext_virtualnode.workflow import remove_connector
    cluster = mp.cluster
    if mp.legacy.mode == "addon":           # a managed-cluster PUT: on the cluster as it is now, once idle
        cluster = wait_until_idle(ctx.clusters, ctx.resource_group, ctx.name, ctx.cluster(), ctx.deadline.at,
                                  on_wait=progress)
    remove_connector(ctx, cluster, mp.legacy, Helm.discover() if mp.legacy.mode == "chart" else None,
                     f"az aks virtual-node migrate {ctx.ids} --to v2")
