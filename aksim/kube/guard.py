"""Authentication and authorization of a simulated API server, the way AKS does it (kubeguard/guard).

A cluster without Microsoft Entra ID integration accepts its two static bearer tokens (clusterUser,
clusterAdmin). A cluster with ``aadProfile.managed`` accepts:

- Entra ID access tokens the simulator signed (:mod:`aksim.arm.entra`) whose audience is the AKS server app
  ``6dae42f8-…``, whose issuer and ``tid`` are the subscription's tenant and whose ``oid`` is a principal of that
  tenant; the user is ``upn`` else ``oid`` (service principals and managed identities appear as their object ID);
- the clusterAdmin static token, unless ``disableLocalAccounts``.

Anything else gets 401 ``Unauthorized``. With ``aadProfile.enableAzureRBAC`` every resource request of an Entra
user is authorized against the caller's Azure role assignments: the data action is
``Microsoft.ContainerService/managedClusters/[<group>/]<resource>/<read|write|delete>`` (subresources count as
their parent resource, except ``pods/exec``), checked at the cluster ID, or at ``<clusterId>/namespaces/<ns>`` for
namespaced requests; a denial is the real 403 message. Without Azure RBAC, members of ``adminGroupObjectIDs``
(``groups`` claim) are cluster admins and Kubernetes RBAC decides for everyone else: ClusterRoleBindings and
RoleBindings naming the user (or one of its groups) and the rules of their (Cluster)Roles.

Discovery, ``/version`` and self reviews are open to every authenticated user (``system:discovery`` /
``system:basic-user``). ``POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`` answers through the same
authorizer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..httpcore import HttpError, Request, Response, Router

if TYPE_CHECKING:
    from aksim.world import Cluster, World

MCS = "Microsoft.ContainerService/managedClusters"
AZURE_DENY = "User does not have access to the resource in Azure. Update role assignment to allow access."
OPEN_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
_RESOURCE = re.compile(r"^/(?:api/(?P<cv>[^/]+)|apis/(?P<group>[^/]+)/(?P<gv>[^/]+))"
                       r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$")


@dataclass
class Caller:
    user: str
    oid: str | None = None
    groups: list[str] = field(default_factory=list)
    admin: bool = False                  # the clusterAdmin static credential (system:masters)
    static: bool = False                 # a local account


@dataclass
class Attributes:
    verb: str
    resource: str
    group: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""


def _props(world: "World", cluster: "Cluster") -> dict[str, Any]:
    mc = world.arm.get(cluster.resource_id) or {}
    return mc.get("properties") or {}


def entra_enabled(props: dict[str, Any]) -> bool:
    return bool((props.get("aadProfile") or {}).get("managed"))


def azure_rbac(props: dict[str, Any]) -> bool:
    return bool((props.get("aadProfile") or {}).get("enableAzureRBAC"))


# -- authentication ----------------------------------------------------------------------------------
def authenticate(world: "World", cluster: "Cluster", req: Request) -> Caller:
    from aksim.arm.entra import AKS_SERVER_APP, verify
    scheme, _, token = req.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HttpError(401, "Unauthorized", "Unauthorized")
    props = _props(world, cluster)
    if not entra_enabled(props):
        if token in (cluster.user_token, cluster.admin_token):
            return Caller("masterclient", admin=True, static=True)
        raise HttpError(401, "Unauthorized", "Unauthorized")
    if token == cluster.admin_token and not props.get("disableLocalAccounts"):
        return Caller("masterclient", admin=True, static=True)
    claims = verify(token)
    tenant = world.scenario.tenant_id
    if (claims is None or claims.get("aud") != AKS_SERVER_APP or claims.get("tid") != tenant
            or claims.get("iss") != f"https://sts.windows.net/{tenant}/" or claims.get("oid") not in world.principals):
        raise HttpError(401, "Unauthorized", "Unauthorized")
    return Caller(claims.get("upn") or claims["oid"], claims["oid"], list(claims.get("groups") or []))


# -- request attributes --------------------------------------------------------------------------------
def attributes(req: Request) -> Attributes | None:
    """The resource attributes of a request, or None for a non-resource request (discovery, /version)."""
    m = _RESOURCE.match(req.path)
    if not m or req.path.startswith("/openapi"):
        return None
    group = m.group("group") or ""
    ns, resource, name, sub = m.group("ns") or "", m.group("resource"), m.group("name") or "", m.group("sub") or ""
    if not ns and resource == "namespaces" and name:
        ns = name
    collection = not name
    verb = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(req.method, req.method.lower())
    if collection and verb == "get":
        watch = (req.q("watch") or "").lower() in ("1", "true")
        verb = "watch" if watch else "list"
    elif collection and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, resource, group, ns, name, sub)


def data_action(a: Attributes) -> str:
    """Guard's action for the request (reference: checkaccessreqhelper.go)."""
    resource = f"{a.group}/{a.resource}" if a.group else a.resource
    if a.resource == "pods" and a.subresource in ("exec", "attach", "portforward"):
        return f"{MCS}/pods/{a.subresource}/action"
    if a.verb in ("bind", "escalate", "use", "impersonate"):
        return f"{MCS}/{resource}/{a.verb}/action"
    kind = {"get": "read", "list": "read", "watch": "read", "create": "write", "update": "write",
            "patch": "write", "delete": "delete", "deletecollection": "delete"}.get(a.verb, a.verb)
    return f"{MCS}/{resource}/{kind}"


def forbidden_message(user: str, a: Attributes, reason: str) -> str:
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    subject = f'{qualified} "{a.name}"' if a.name else qualified
    res = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    namespaced = a.namespace and a.resource != "namespaces"
    where = f'in the namespace "{a.namespace}"' if namespaced else "at the cluster scope"
    message = f'{subject} is forbidden: User "{user}" cannot {a.verb} resource "{res}" in API group "{a.group}" {where}'
    return f"{message}: {reason}" if reason else message


# -- authorization -------------------------------------------------------------------------------------
def decide(world: "World", cluster: "Cluster", caller: Caller, a: Attributes) -> tuple[bool, str]:
    """(allowed, reason) for an authenticated caller."""
    from aksim.arm.authorization import has_data_permission
    if caller.admin:
        return True, ""
    props = _props(world, cluster)
    admins = {g.lower() for g in (props.get("aadProfile") or {}).get("adminGroupObjectIDs") or []}
    if admins & {g.lower() for g in caller.groups}:
        return True, ""
    if azure_rbac(props):
        scope = cluster.resource_id
        if a.namespace and a.resource != "namespaces":
            scope = f"{scope}/namespaces/{a.namespace}"
        if has_data_permission(world, caller.oid or "", data_action(a), scope):
            return True, ""
        return False, AZURE_DENY
    if kubernetes_rbac_allows(cluster, caller, a):
        return True, ""
    return False, ""


def _matches(values: list[str] | None, value: str) -> bool:
    return bool(values) and ("*" in values or value in values)


def _rule_allows(rule: dict[str, Any], a: Attributes) -> bool:
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    return (_matches(rule.get("verbs"), a.verb) and _matches(rule.get("apiGroups"), a.group)
            and _matches(rule.get("resources"), resource)
            and (not rule.get("resourceNames") or a.name in rule["resourceNames"]))


def _subject_matches(subject: dict[str, Any], caller: Caller) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    return (kind == "User" and name in (caller.user, caller.oid)) or (kind == "Group" and name in caller.groups)


def kubernetes_rbac_allows(cluster: "Cluster", caller: Caller, a: Attributes) -> bool:
    store = cluster.store
    bindings = [(b, None) for b in store.list("clusterrolebindings.rbac.authorization.k8s.io", None)]
    if a.namespace:
        bindings += [(b, a.namespace) for b in store.list("rolebindings.rbac.authorization.k8s.io", a.namespace)]
    for binding, namespace in bindings:
        if not any(_subject_matches(s, caller) for s in binding.get("subjects") or []):
            continue
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole":
            role = store.get("clusterroles.rbac.authorization.k8s.io", None, ref.get("name", ""))
        else:
            role = store.get("roles.rbac.authorization.k8s.io", namespace, ref.get("name", ""))
        if role and any(_rule_allows(rule, a) for rule in role.get("rules") or []):
            return True
    return False


# -- the hook and the review endpoint ------------------------------------------------------------------
def authenticator(world: "World", cluster: "Cluster") -> Callable[[Request], None]:
    """The API server's authenticate hook: 401 for bad credentials, 403 for denied resource requests."""
    def check(req: Request) -> None:
        if req.path in OPEN_PATHS:
            return
        with world.sim.lock:
            caller = authenticate(world, cluster, req)
            a = attributes(req)
            if a is None or req.path == SSAR_PATH:
                return
            allowed, reason = decide(world, cluster, caller, a)
        if not allowed:
            details = {"kind": a.resource}
            if a.group:
                details["group"] = a.group
            if a.name:
                details["name"] = a.name
            raise HttpError(403, "Forbidden", forbidden_message(caller.user, a, reason), details=details)
    return check


def register(router: Router, world: "World", cluster: "Cluster") -> None:
    """Serve SelfSubjectAccessReview (ahead of the generic routes, which would 404 the group)."""
    def review(req: Request) -> Response:
        from aksim.kube import protobuf
        if "protobuf" in (req.headers.get("content-type") or ""):
            try:
                body = protobuf.decode_object(req.body)
            except protobuf.ProtobufError as err:
                raise HttpError(415, "UnsupportedMediaType", str(err)) from err
        else:
            body = req.json() or {}
        spec = body.get("spec") or {}
        ra = spec.get("resourceAttributes")
        if ra is None:
            status: dict[str, Any] = {"allowed": True}      # nonResourceAttributes: discovery is open
        else:
            a = Attributes(ra.get("verb", ""), ra.get("resource", ""), ra.get("group", ""), ra.get("namespace", ""),
                           ra.get("name", ""), ra.get("subresource", ""))
            with world.sim.lock:
                caller = authenticate(world, cluster, req)
                allowed, reason = decide(world, cluster, caller, a)
            status = {"allowed": allowed}
            if not allowed and reason == AZURE_DENY:
                status.update(denied=True, reason=reason)
        return Response(201, {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                              "metadata": {"creationTimestamp": None}, "spec": spec, "status": status},
                        {"Content-Type": "application/json"})

    router.add("POST", SSAR_PATH, review)
    router.routes.insert(0, router.routes.pop())
