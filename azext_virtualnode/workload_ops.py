"""``place`` and ``prune``: the reads and writes around the pure rules of ``placement`` and ``workload``.

Everything is read and checked before the one write (a JSON merge patch of the workload carrying its
resourceVersion, so a concurrent change is re-read instead of overwritten; deletes of container groups for
``prune``). ``--dry-run`` of either writes nothing.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from azure.cli.core.azclierror import ValidationError
from knack.log import get_logger
from knack.util import CLIError

from azext_virtualnode import _client_factory as cf
from azext_virtualnode.context import Ctx, progress
from azext_virtualnode.kube import REQUEST_TIMEOUT, ClusterUnreachable, Kube
from azext_virtualnode.lro import poll_interval
from azext_virtualnode.placement import (MODES, Kind, Plan, PlacementError, parse_workload, plan, pod_spec,
                                         unsupported)
from azext_virtualnode.workload import ghost_nodes, group_facts, orphaned_groups

logger = get_logger(__name__)
MERGE_PATCH = "application/merge-patch+json"
_CONFLICT_RETRIES = 3

# Kubernetes client methods per kind: (API class, read method, patch method).
_API = {"deployment": ("AppsV1Api", "read_namespaced_deployment", "patch_namespaced_deployment"),
        "statefulset": ("AppsV1Api", "read_namespaced_stateful_set", "patch_namespaced_stateful_set"),
        "replicaset": ("AppsV1Api", "read_namespaced_replica_set", "patch_namespaced_replica_set"),
        "job": ("BatchV1Api", "read_namespaced_job", "patch_namespaced_job"),
        "cronjob": ("BatchV1Api", "read_namespaced_cron_job", "patch_namespaced_cron_job")}


class Conflict(Exception):
    """409: the workload changed since it was read."""


def _raw(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    """Call ``fn`` for raw JSON (the workload as the server has it, unknown fields kept); None on 404."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError
    try:
        response = fn(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        return json.loads(response.data)
    except ApiException as exc:
        if exc.status == 404:
            return None
        if exc.status == 409:
            raise Conflict() from exc
        message = _status_message(exc)
        if exc.status in (401, 403):
            raise ValidationError(f"The cluster's API server refused the request ({exc.status}): {message}. "
                                  "Nothing was changed.") from None
        if exc.status in (400, 422):
            raise ValidationError(f"The cluster's API server rejected the change: {message}. Nothing was "
                                  "changed.") from None
        raise ClusterUnreachable(f"the API server answered {exc.status} {exc.reason}: {message}") from exc
    except (HTTPError, OSError) as exc:
        raise ClusterUnreachable(f"cannot reach the API server: {exc}") from exc


def _status_message(exc: Any) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


class Workloads:
    """Raw reads and merge patches of the five workload kinds."""

    def __init__(self, kube: Kube) -> None:
        from kubernetes import client
        self.kube = kube
        self.apis = {"AppsV1Api": client.AppsV1Api(kube.api), "BatchV1Api": client.BatchV1Api(kube.api)}

    def _method(self, kind: Kind, which: int) -> Callable[..., Any]:
        api, read, patch = _API[kind.name]
        return getattr(self.apis[api], (read, patch)[which - 1])

    def read(self, kind: Kind, name: str, namespace: str) -> dict[str, Any] | None:
        return _raw(self._method(kind, 1), name, namespace)

    def patch(self, kind: Kind, name: str, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return _raw(self._method(kind, 2), name, namespace, body, _content_type=MERGE_PATCH)


# -- place --------------------------------------------------------------------------------------------------
def place(ctx: Ctx, workload: str, namespace: str, policy: str, dry_run: bool) -> dict[str, Any]:
    try:
        kind, name = parse_workload(workload)
    except PlacementError as exc:
        raise ValidationError(str(exc)) from None
    cluster = ctx.cluster()
    target = None
    if policy != "off":
        from azext_virtualnode.workflow import detect
        try:
            conn = detect(ctx, cluster)
        except ClusterUnreachable as exc:
            raise ValidationError(f"Cannot read cluster '{ctx.name}' to find its virtual node: {exc}. Nothing was "
                                  "changed.") from None
        if conn is None:
            raise ValidationError(
                f"Virtual nodes are not enabled on cluster '{ctx.name}', so there is nowhere to place "
                f"{kind.name}/{name}. Enable them first: 'az aks virtual-node enable {ctx.ids}'. Nothing was changed.")
        target = MODES[conn.mode]
    try:
        with ctx.kube() as kube:
            return _place(ctx, Workloads(kube), kind, name, namespace, policy, dry_run, target)
    except ClusterUnreachable as exc:
        raise ValidationError(f"Cannot reach the API server of cluster '{ctx.name}': {exc}. Nothing was "
                              "changed.") from None


# pylint: disable-next=too-many-positional-arguments
def _place(ctx: Ctx, api: Workloads, kind: Kind, name: str, namespace: str, policy: str, dry_run: bool,
           target: Any) -> dict[str, Any]:
    if api.kube.namespace(namespace) is None:
        raise ValidationError(f"Namespace '{namespace}' does not exist on cluster '{ctx.name}'. List the namespaces "
                              "with 'kubectl get namespaces' and pass the right one with --namespace. Nothing was "
                              "changed.")
    for attempt in range(_CONFLICT_RETRIES):
        obj = api.read(kind, name, namespace)
        if obj is None:
            raise ValidationError(
                f"{kind.kind} '{name}' was not found in namespace '{namespace}' of cluster '{ctx.name}'. List them "
                f"with 'kubectl get {kind.name}s -n {namespace}'. Nothing was changed.")
        refuse_unplaceable(kind, obj, dry_run)
        try:
            p = plan(obj, kind, policy, target)
        except PlacementError as exc:
            raise ValidationError(f"{exc} Nothing was changed.") from None
        if target is not None:
            p.warnings = [f"{target.description} cannot run: {w}" for w in unsupported(pod_spec(obj, kind), target)]
            if attempt == 0:
                for warning in p.warnings:
                    logger.warning("%s.", warning)
        if dry_run:
            return p.fragment(obj)
        patch = p.merge_patch((obj.get("metadata") or {}).get("resourceVersion"))
        if patch is None:
            progress(f"{kind.kind} '{name}' already has placement policy '{policy}'; nothing to change.")
            return p.result(applied=False)
        try:
            api.patch(kind, name, namespace, patch)
        except Conflict:
            time.sleep(0.2 * (attempt + 1))
            continue
        _report(p)
        return p.result(applied=True)
    raise CLIError(f"{kind.kind} '{name}' kept changing while it was being updated; re-run the command.")


def _report(p: Plan) -> None:
    what = {"only": "pinned to the virtual node", "burst": "allowed to burst to the virtual node",
            "off": "no longer placed by this extension"}[p.policy]
    progress(f"{p.kind.kind} '{p.name}' is {what}; its pods are replaced by a rollout of the changed pod template."
             if p.kind.name in ("deployment", "statefulset") else
             f"{p.kind.kind} '{p.name}' is {what}; pods created from now on follow it (existing pods keep their "
             "spec).")


def refuse_unplaceable(kind: Kind, obj: dict[str, Any], dry_run: bool) -> None:
    """What can never work: editing a ReplicaSet or Job another controller owns, or a started Job's template."""
    meta = obj.get("metadata") or {}
    owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    name = meta.get("name")
    if owner and kind.name in ("replicaset", "job") and owner.get("kind") in ("Deployment", "CronJob"):
        raise ValidationError(
            f"{kind.kind} '{name}' is managed by {owner['kind']} '{owner.get('name')}', which would undo the change. "
            f"Place the {owner['kind']}: --workload {owner['kind'].lower()}/{owner.get('name')}. Nothing was changed.")
    if kind.name == "job" and not dry_run:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not (spec.get("suspend") and not status.get("startTime")):
            raise ValidationError(
                f"Job '{name}' has started, and a started Job's pod template cannot change (Kubernetes allows it "
                "only for a suspended Job that never ran). Re-create the Job with the fields printed by --dry-run, "
                "or place the CronJob that creates it. Nothing was changed.")


# -- prune --------------------------------------------------------------------------------------------------
def prune(ctx: Ctx, dry_run: bool, yes: bool, confirm: Callable[[str, bool], None] | None = None) -> dict[str, Any]:
    from azext_virtualnode.workflow import detect
    cluster = ctx.cluster()
    result: dict[str, Any] = {"cluster": cluster.id, "dryRun": dry_run, "orphanedContainerGroups": [],
                              "ghostNodes": [], "deleted": [], "skipped": []}
    try:
        conn = detect(ctx, cluster)
        if conn is None:
            progress(f"Virtual nodes are not enabled on cluster '{ctx.name}'; nothing to prune.")
            return result
        # Groups first, then pods: a pod created in between cannot make its fresh group look orphaned.
        groups = [group_facts(g) for g in cf.cf_container_groups(ctx.cli_ctx).list_by_resource_group(
            cluster.node_resource_group)]
        with ctx.kube() as kube:
            pods = {node: {(p.metadata.namespace, p.metadata.name) for p in kube.pods_on_node(node)}
                    for node in virtual_node_names(kube, conn)}
            ghosts = release_ghosts(kube, conn)
    except ClusterUnreachable as exc:
        raise ValidationError(f"Cannot read cluster '{ctx.name}': {exc}. Without the pod list no container group "
                              "can be called orphaned; nothing was deleted.") from None
    orphans = [g for node, on_node in pods.items() for g in orphaned_groups(groups, node, on_node)]
    result["orphanedContainerGroups"], result["ghostNodes"] = orphans, ghosts
    if not orphans and not ghosts:
        progress("No orphaned container groups or ghost nodes; nothing to prune.")
        return result
    for g in orphans:
        progress(f"  container group {g['name']} (pod {g['namespace']}/{g['podName']} no longer exists)")
    for n in ghosts:
        progress(f"  node {n} (no pod backs it)")
    if dry_run:
        progress(f"Dry run: {len(orphans) + len(ghosts)} item(s) would be deleted; nothing was changed.")
        return result
    (confirm or _confirm)(f"Delete {len(orphans)} orphaned container group(s) and {len(ghosts)} ghost node(s) "
                          f"of cluster '{ctx.name}'?", yes)
    delete_orphans(ctx, cluster.node_resource_group, orphans, result)
    if ghosts:
        delete_ghosts(ctx, conn, ghosts, result)
    return result


def virtual_node_names(kube: Kube, conn: Any) -> list[str]:
    """The connector's virtual nodes: the add-on's or the chart's one node; for Virtual Nodes v2 every node of the
    release (ghosts included) and every node its replicas would have (one pod list per node follows)."""
    if conn.mode != "v2":
        return [conn.node_name]
    from azext_virtualnode.connectors import v2_kube
    from azext_virtualnode.connectors.v2_mode import V2Release
    rel = V2Release(conn.release)
    return sorted({n.metadata.name for n in v2_kube.release_nodes(kube, rel.fullname)} | set(rel.node_names()))


def release_ghosts(kube: Kube, conn: Any) -> list[str]:
    """Ghost nodes of a Virtual Nodes v2 release (``workload.ghost_nodes`` over the release's nodes and its
    StatefulSet pods). The add-on and the chart have one node served by a Deployment: never a ghost."""
    if conn.mode != "v2":
        return []
    from azext_virtualnode.connectors import v2_kube
    from azext_virtualnode.connectors.v2_mode import V2Release
    rel = V2Release(conn.release)
    nodes = [n.metadata.name for n in v2_kube.release_nodes(kube, rel.fullname)]
    pods = {p.metadata.name for p in v2_kube.infra_pods(kube, rel.namespace, rel.name)}
    return ghost_nodes(nodes, pods)


def delete_ghosts(ctx: Ctx, conn: Any, ghosts: list[str], result: dict[str, Any]) -> None:
    """Delete each ghost node unless its infra pod came back meanwhile (a scale-up reuses the name)."""
    with ctx.kube() as kube:
        still = set(release_ghosts(kube, conn))
        for name in ghosts:
            if name not in still:
                progress(f"Skipping node {name}: its infra pod exists again.")
                result["skipped"].append(f"node/{name}")
                continue
            progress(f"Deleting ghost node {name}...")
            if kube.delete_node(name):
                result["deleted"].append(f"node/{name}")


def delete_orphans(ctx: Ctx, resource_group: str, orphans: list[dict[str, Any]], result: dict[str, Any]) -> None:
    """Delete each group unless its pod came back meanwhile (a StatefulSet re-creates a pod under its old name,
    and the connector would then use that group)."""
    groups = cf.cf_container_groups(ctx.cli_ctx)
    with ctx.kube() as kube:
        for g in orphans:
            if kube.pod(g["namespace"], g["podName"]) is not None:
                progress(f"Skipping {g['name']}: pod {g['namespace']}/{g['podName']} exists again.")
                result["skipped"].append(g["name"])
                continue
            progress(f"Deleting container group {g['name']}...")
            groups.begin_delete(resource_group, g["name"], polling_interval=poll_interval()).result()
            result["deleted"].append(g["name"])


def _confirm(message: str, yes: bool) -> None:
    from azure.cli.core.util import user_confirmation
    user_confirmation(message, yes)
