"""Rights on the cluster's Kubernetes API: what each command needs, who grants it, and explaining denials.

On a cluster with Microsoft Entra ID and Azure RBAC, every API request is an Azure data action,
``Microsoft.ContainerService/managedClusters/[<group>/]<resource>/<read|write|delete>``, granted by role assignments
on the cluster (or a namespace of it). The four built-in roles:

- *Azure Kubernetes Service RBAC Reader*: reads of namespaced workload kinds; **no nodes, leases or secrets**
  (so it cannot see the virtual node, its heartbeat, or Helm's release records);
- *… RBAC Writer*: the Reader's kinds writable, plus secrets; still no nodes or leases;
- *… RBAC Admin*: everything except writing namespaces and resource quotas — the least built-in role that lets
  ``status``, ``wait`` and the add-on mode of ``enable``/``disable`` read what they read;
- *… RBAC Cluster Admin*: everything — chart mode needs it (Helm creates and deletes the chart's namespace and
  cluster-wide RBAC objects).

``preflight`` checks these rights before a command's first write: Azure RBAC through ARM's ``permissions`` API
at the cluster scope (dataActions; what it finds missing is confirmed with a ``SelfSubjectAccessReview``, which
also counts admin-group membership), Kubernetes RBAC (Entra ID without Azure RBAC) through
``SelfSubjectAccessReview``. Denials met while reading (401/403) become the ``ClusterAccessDenied`` problem.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any, Iterable

from azure.cli.core.azclierror import UnauthorizedError

MCS = "Microsoft.ContainerService/managedClusters"
READER = "Azure Kubernetes Service RBAC Reader"
WRITER = "Azure Kubernetes Service RBAC Writer"
ADMIN = "Azure Kubernetes Service RBAC Admin"
CLUSTER_ADMIN = "Azure Kubernetes Service RBAC Cluster Admin"

_READER_KINDS = (
    "apps/controllerrevisions", "apps/daemonsets", "apps/deployments", "apps/replicasets", "apps/statefulsets",
    "autoscaling/horizontalpodautoscalers", "batch/cronjobs", "batch/jobs", "configmaps",
    "discovery.k8s.io/endpointslices", "endpoints", "events.k8s.io/events", "events", "extensions/daemonsets",
    "extensions/deployments", "extensions/ingresses", "extensions/networkpolicies", "extensions/replicasets",
    "limitranges", "metrics.k8s.io/pods", "metrics.k8s.io/nodes", "namespaces", "networking.k8s.io/ingresses",
    "networking.k8s.io/networkpolicies", "persistentvolumeclaims", "pods", "policy/poddisruptionbudgets",
    "replicationcontrollers", "resourcequotas", "serviceaccounts", "services")
# (role, dataActions, notDataActions), least privileged first
BUILTIN: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (READER, tuple(f"{MCS}/{k}/read" for k in _READER_KINDS), ()),
    (WRITER, tuple(f"{MCS}/{k}/*" for k in _READER_KINDS if k not in ("namespaces", "resourcequotas"))
     + (f"{MCS}/namespaces/read", f"{MCS}/resourcequotas/read", f"{MCS}/secrets/*"), ()),
    (ADMIN, (f"{MCS}/*",), tuple(f"{MCS}/{k}/{v}" for k in ("resourcequotas", "namespaces")
                                 for v in ("write", "delete"))),
    (CLUSTER_ADMIN, (f"{MCS}/*",), ()),
)


@dataclass(frozen=True)
class Need:
    """One request a command makes: verb, resource, API group (and, for messages, why)."""
    verb: str
    resource: str
    group: str = ""
    why: str = ""

    @property
    def action(self) -> str:
        kind = {"get": "read", "list": "read", "watch": "read", "create": "write", "update": "write",
                "patch": "write", "delete": "delete", "deletecollection": "delete"}[self.verb]
        return f"{MCS}/{self.group + '/' if self.group else ''}{self.resource}/{kind}"

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}{'.' + self.group if self.group else ''}"


# What the commands read and write on the cluster (all cluster-wide).
READS = (Need("get", "nodes", why="the virtual node"), Need("watch", "nodes", why="waiting for the node"),
         Need("get", "leases", "coordination.k8s.io", "the node's heartbeat"),
         Need("list", "pods", why="connector and workload pods"), Need("list", "events", why="connector events"),
         Need("list", "secrets", why="Helm's release records (chart mode)"))
CHART_WRITES = (Need("create", "namespaces", why="the chart's namespace"),
                Need("delete", "namespaces", why="helm uninstall"),
                Need("create", "clusterroles", "rbac.authorization.k8s.io", "the connector's ClusterRole"),
                Need("create", "clusterrolebindings", "rbac.authorization.k8s.io", "its binding"),
                Need("create", "deployments", "apps", "the connector"),
                Need("create", "secrets", why="Helm's release record"),
                Need("delete", "nodes", why="the node the chart leaves behind"))


def _allowed(action: str, grants: Iterable[tuple[Iterable[str], Iterable[str]]]) -> bool:
    action = action.lower()
    return any(any(fnmatch.fnmatchcase(action, a.lower()) for a in allow)
               and not any(fnmatch.fnmatchcase(action, n.lower()) for n in deny) for allow, deny in grants)


def least_role(actions: Iterable[str]) -> str:
    """The least privileged built-in AKS RBAC role that grants every one of ``actions``."""
    wanted = list(actions)
    for role, allow, deny in BUILTIN:
        if all(_allowed(a, [(allow, deny)]) for a in wanted):
            return role
    return CLUSTER_ADMIN


def grant_command(assignee: str, role: str, cluster_id: str) -> str:
    return f"az role assignment create --assignee {assignee} --role \"{role}\" --scope {cluster_id}"


# -- denials ---------------------------------------------------------------------------------------------
_FORBIDDEN = re.compile(r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<resource>[^"/]+)(?:/[^"]*)?" '
                        r'in API group "(?P<group>[^"]*)"(?: in the namespace "(?P<ns>[^"]+)"| at the cluster scope)?'
                        r'(?::\s*(?P<reason>.*))?', re.S)


@dataclass(frozen=True)
class Denial:
    status: int
    message: str
    user: str | None = None
    need: Need | None = None
    namespace: str | None = None
    reason: str | None = None

    @classmethod
    def of(cls, status: int, message: str) -> "Denial":
        m = _FORBIDDEN.search(message or "")
        if status != 403 or not m:
            return cls(status, message)
        verb = m.group("verb")
        need = Need(verb, m.group("resource"), m.group("group")) if verb in (
            "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection") else None
        return cls(status, message, m.group("user"), need, m.group("ns"), (m.group("reason") or "").strip() or None)

    def what(self) -> str:
        if self.status == 401:
            return "the API server rejected the token (401 Unauthorized)"
        if self.need is not None:
            where = f" in namespace '{self.namespace}'" if self.namespace else ""
            return f"'{self.need}'{where} ({self.need.action})"
        return f"make this request ({self.status}: {self.message})"


def denial_of(exc: Any) -> Denial:
    """A Denial from kube.ClusterAccessDenied (status + the API server's message)."""
    return Denial.of(getattr(exc, "status", 403), getattr(exc, "server_message", str(exc)))


def denied_problem(denials: list[Denial], cluster_id: str, caller: str | None, command: str = "status") -> Any:
    """The ``ClusterAccessDenied`` problem of ``status``: who, what was denied, which role grants it, the command."""
    from azext_virtualnode.health import ERROR, Problem
    who = next((d.user for d in denials if d.user), None) or caller or "<your-object-id>"
    if any(d.status == 401 for d in denials):
        return Problem("ClusterAccessDenied", f"The cluster's API server rejected the Microsoft Entra ID token of "
                       f"'{who}' (401 Unauthorized), so the Kubernetes part of the {command} is unknown.",
                       "Check that you are signed in to the cluster's tenant ('az account show'), then retry; a "
                       "cluster without Entra ID integration needs local accounts. The Azure part of this status "
                       "is still accurate.", ERROR)
    seen = list(dict.fromkeys(d.what() for d in denials))
    role = least_role(n.action for n in READS)
    reason = next((d.reason for d in denials if d.reason), None)
    return Problem(
        "ClusterAccessDenied", f"'{who}' may not {', '.join(seen)} on cluster '{cluster_id.split('/')[-1]}'"
        f"{': ' + reason if reason else ''}. The Kubernetes part of the {command} is incomplete.",
        f"Grant the role that lets {command} read nodes, leases, pods, events and secrets: "
        f"'{grant_command(who, role, cluster_id)}' (assignments take up to 5 minutes to apply; "
        f"'{READER}' is not enough: it cannot read nodes, leases or secrets). The Azure part of this status is "
        "still accurate.", ERROR)


# -- preflight -------------------------------------------------------------------------------------------
def authorization_mode(cluster_model: Any) -> str:
    """``azure`` (Entra ID + Azure RBAC), ``kubernetes`` (Entra ID, Kubernetes RBAC) or ``local``."""
    aad = getattr(cluster_model, "aad_profile", None)
    if aad is None or not getattr(aad, "managed", False):
        return "local"
    return "azure" if getattr(aad, "enable_azure_rbac", False) else "kubernetes"


def missing_data_actions(permissions: list[dict[str, Any]], needs: Iterable[Need]) -> list[Need]:
    grants = [(p.get("dataActions") or [], p.get("notDataActions") or []) for p in permissions]
    return [n for n in needs if not _allowed(n.action, grants)]


def ssar_denied(kube: Any, needs: Iterable[Need]) -> list[Need]:
    """The needs a SelfSubjectAccessReview says are not allowed (cluster-wide)."""
    return [need for need in needs if not kube.access_allowed(need.verb, need.resource, need.group)]


def preflight(ctx: Any, cluster: Any, needs: tuple[Need, ...], command: str) -> None:
    """Raise (before any write) when the caller lacks ``needs`` on the cluster's Kubernetes API."""
    from azext_virtualnode.kube import ClusterUnreachable
    mode = authorization_mode(cluster.model)
    if mode == "local":
        return
    if mode == "azure":
        missing = missing_data_actions(ctx.roles.permissions(cluster.id), needs)
        if missing:
            # Members of the cluster's admin groups (and Kubernetes RBAC bindings) may still be allowed: the
            # API server's own answer, which passes every authorizer, decides.
            try:
                with ctx.kube() as kube:
                    missing = ssar_denied(kube, missing)
            except ClusterUnreachable:
                pass
    else:
        try:
            with ctx.kube() as kube:
                missing = ssar_denied(kube, needs)
        except ClusterUnreachable as exc:
            raise UnauthorizedError(f"Cannot check your rights on the Kubernetes API of cluster '{cluster.name}': "
                                    f"{exc}. Nothing was changed.") from None
    if missing:
        raise rights_error(ctx, cluster, missing, needs, command, mode)


def caller_name(ctx: Any) -> str | None:
    """The signed-in principal as the API server sees it (object ID; UPN for users), without keeping a token."""
    entra = ctx.entra() if hasattr(ctx, "entra") else None
    if entra is not None:
        try:
            ident = entra.identity()
            return ident.get("upn") or ident.get("objectId")
        except Exception:  # pylint: disable=broad-except
            pass
    from azext_virtualnode.roles import caller_object_id
    return caller_object_id(ctx.cli_ctx)


# pylint: disable-next=too-many-positional-arguments
def rights_error(ctx: Any, cluster: Any, missing: list[Need], needs: tuple[Need, ...], command: str,
                 mode: str) -> UnauthorizedError:
    who = caller_name(ctx) or "<your-object-id>"
    lines = [f"You ('{who}') lack rights on the Kubernetes API of cluster '{cluster.name}' that '{command}' needs "
             "(nothing was changed):"]
    lines += [f"  - {n} ({n.action}){': ' + n.why if n.why else ''}" for n in missing]
    if mode == "azure":
        role = least_role(n.action for n in needs)
        lines.append("The cluster uses Azure RBAC for Kubernetes authorization. An Owner or User Access "
                     "Administrator of the cluster can grant the least built-in role that covers it:")
        lines.append(f"  {grant_command(who, role, cluster.id)}")
        lines.append("Role assignments can take up to 5 minutes to apply; then re-run the command.")
    else:
        lines.append("The cluster uses Kubernetes RBAC with Microsoft Entra ID. A cluster admin can bind you, e.g.: "
                     f"kubectl create clusterrolebinding virtual-node-admin --clusterrole cluster-admin --user {who}")
    return UnauthorizedError("\n".join(lines))
