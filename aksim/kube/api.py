"""HTTP face of the simulated kube-apiserver: discovery, OpenAPI stubs, CRUD, subresources, lists and watches.

Responses are always JSON (or text/plain for logs). Request bodies are JSON or YAML, plus protobuf for the kinds
Helm and kubectl's typed ``create`` commands send that way (see :mod:`aksim.kube.protobuf`); other protobuf
bodies get 415. What real clients need beyond plain REST:

* Discovery is served in the legacy format with ``Content-Type: application/json``; kubectl 1.34 asks for
  aggregated discovery first and falls back to ``/api``, ``/api/v1``, ``/apis``, ``/apis/<g>/<v>``.
* ``kubectl apply``/``create`` validate with ``--validate=strict`` by default: kubectl checks in the OpenAPI v3
  document of the group-version whether the PATCH operation of the kind takes the ``fieldValidation`` query
  parameter; if so it leaves validation to the server (sends ``fieldValidation=Strict``, accepted and not
  enforced here) instead of validating against the protobuf-only OpenAPI v2. So ``/openapi/v3`` serves an index
  plus one small document per group-version with just those PATCH operations. Their request bodies do not list
  strategic merge, so ``kubectl apply`` of a changed object tries ``/openapi/v2`` (404 here) and then computes
  its strategic merge patch from the types compiled into kubectl, without a warning.
* ``kubectl get`` asks for ``as=Table``; see :mod:`aksim.kube.tables`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..httpcore import HttpError, Request, Response, Router
from . import admission, protobuf, tables
from . import patch as patches
from .selectors import FieldSelector, LabelSelector, SelectorError, label_selector_string, parse_field_selector
from .selectors import parse_label_selector
from .store import (Conflict, Gone, Invalid, KubeError, KubeStore, Obj, ResourceType, StoreEvent, WatchStart, clone,
                    conflict, not_found)

JSON = "application/json"
OPEN_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
DEFAULT_WATCH_TIMEOUT = 1800.0
BOOKMARK_INTERVAL = 30.0
WATCH_POLL = 0.25
LOG_ANNOTATION = "aksim.io/log"
_STANDARD_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_SUBRESOURCES: dict[str, tuple[list[str], str, str, str]] = {     # verbs, group, version, kind ("" = parent's)
    "status": (["get", "patch", "update"], "", "", ""),
    "scale": (["get", "patch", "update"], "autoscaling", "v1", "Scale"),
    "log": (["get"], "", "", ""),
    "binding": (["create"], "", "", "Binding"),
    "eviction": (["create"], "policy", "v1", "Eviction"),
}
PROTOBUF = "application/vnd.kubernetes.protobuf"

AdmitHook = Callable[[str, str, "Obj | None", "Obj | None"], None]


@dataclass
class KubeHooks:
    """``admit(verb, resource, new, old)`` runs before API writes (not store writes): mutate ``new`` or raise."""
    admit: AdmitHook | None = None


# --------------------------------------------------------------------------------------------- errors / auth

_ROUTER_MESSAGES = {   # httpcore's own answers when no route matches, and what kube-apiserver says instead
    "No route for ": "the server could not find the requested resource",
    "The requested resource does not support http method": "the server does not allow this method on the "
                                                           "requested resource",
}


def kube_error(err: HttpError, _req: Request) -> Response:
    reason = {"InternalServerError": "InternalError"}.get(err.code, err.code)
    message = next((kube for prefix, kube in _ROUTER_MESSAGES.items() if err.message.startswith(prefix)),
                   err.message)
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": err.status}
    if isinstance(err.details, dict) and err.details:
        body["details"] = err.details
    return Response(err.status, body, {"Content-Type": JSON, **err.headers})


def bearer_auth(tokens: set[str]) -> Callable[[Request], None]:
    """401 unless ``Authorization: Bearer <token>`` names one of ``tokens`` (read live); /version and health open."""
    def authenticate(req: Request) -> None:
        if req.path in OPEN_PATHS:
            return
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in tokens:
            raise HttpError(401, "Unauthorized", "Unauthorized")
    return authenticate


def _http_error(err: KubeError) -> HttpError:
    return HttpError(err.status, err.reason, err.message, details=err.details)


def _bad_request(message: str) -> HttpError:
    return HttpError(400, "BadRequest", message)


def _kube_handler(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """Map store, selector and patch errors to Status responses."""
    def handler(req: Request) -> Response:
        try:
            return fn(req)
        except KubeError as err:
            raise _http_error(err) from err
        except SelectorError as err:
            raise _bad_request(str(err)) from err
        except patches.PatchError as err:
            raise HttpError(err.status, "BadRequest" if err.status == 400 else "Invalid", str(err)) from err
    return handler


# --------------------------------------------------------------------------------------------- helpers

@dataclass
class Target:
    rtype: ResourceType
    namespace: str | None
    name: str = ""
    sub: str = ""


def _json(body: Any, status: int = 200) -> Response:
    return Response(status, body, {"Content-Type": JSON})


def _media_type(header: str | None) -> str:
    return (header or JSON).split(";")[0].strip().lower()


def _accept_as(req: Request) -> tuple[str, str]:
    """(``as`` target, meta.k8s.io version) of the first JSON media range in Accept; ("", "") for plain JSON."""
    for media_range in req.headers.get("accept", JSON).split(","):
        media, *params = [p.strip() for p in media_range.split(";")]
        if media not in (JSON, "*/*", "application/*"):
            continue
        values = dict(p.split("=", 1) for p in params if "=" in p)
        target = values.get("as", "")
        if not target:
            return "", ""
        if values.get("g") == "meta.k8s.io" and target in ("Table", "PartialObjectMetadata",
                                                           "PartialObjectMetadataList"):
            return target, values.get("v", "v1")
    return "", ""


def _strip_type(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _int_param(req: Request, name: str) -> int | None:
    value = req.q(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise _bad_request(f"invalid value for {name}: {value!r}") from None


def _unsupported_media() -> HttpError:
    return HttpError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted "
                                                  f"media types include: {JSON}, application/yaml, {PROTOBUF}")


def _protobuf_body(req: Request) -> Obj:
    try:
        return protobuf.decode_object(req.body)
    except protobuf.ProtobufError as exc:
        raise HttpError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {exc}") \
            from exc


def _dry_run(req: Request) -> bool:
    return bool(req.query.get("dryRun"))


def _scale_of(obj: Obj) -> Obj:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": status.get("replicas", 0),
                       "selector": label_selector_string(spec.get("selector"))}}


# --------------------------------------------------------------------------------------------- API

class KubeApi:
    def __init__(self, store: KubeStore, *, version: dict[str, Any], hooks: KubeHooks | None = None) -> None:
        self.store = store
        self.version = _version_info(version)
        self.hooks = hooks or KubeHooks()
        self.router = Router()
        self._epoch = hashlib.sha1(str(id(self)).encode() + str(time.time()).encode()).hexdigest()[:12]
        self._routes()

    def _routes(self) -> None:
        add = self.router.add
        add("GET", "/version", lambda _r: _json(self.version))
        for probe in ("/healthz", "/livez", "/readyz"):
            add("GET", probe, lambda _r: Response(200, "ok", {"Content-Type": "text/plain; charset=utf-8"}))
        add("GET", "/api", _kube_handler(self._api_versions))
        add("GET", "/api/{version}", _kube_handler(self._core_resources))
        add("GET", "/apis", _kube_handler(self._api_groups))
        add("GET", "/apis/{group}", _kube_handler(self._api_group))
        add("GET", "/apis/{group}/{version}", _kube_handler(self._group_resources))
        add("GET", "/openapi/v3", _kube_handler(self._openapi_index))
        add("GET", "/openapi/v3/api/{version}", _kube_handler(self._openapi_doc))
        add("GET", "/openapi/v3/apis/{group}/{version}", _kube_handler(self._openapi_doc))
        for prefix in ("/api/{version}", "/apis/{group}/{version}"):
            add("GET|POST|DELETE", prefix + "/namespaces/{namespace}/{resource}", _kube_handler(self._ns_collection))
            add("GET|PUT|PATCH|DELETE", prefix + "/namespaces/{namespace}/{resource}/{name}", _kube_handler(self._item))
            add("GET|PUT|PATCH|POST", prefix + "/namespaces/{namespace}/{resource}/{name}/{sub}",
                _kube_handler(self._subresource))
            add("GET|POST|DELETE", prefix + "/{resource}", _kube_handler(self._collection))
            add("GET|PUT|PATCH|DELETE", prefix + "/{resource}/{name}", _kube_handler(self._item))
            add("GET|PUT|PATCH|POST", prefix + "/{resource}/{name}/{sub}", _kube_handler(self._subresource))

    # ---- discovery

    def _types_by_gv(self) -> dict[tuple[str, str], list[ResourceType]]:
        groups: dict[tuple[str, str], list[ResourceType]] = {}
        for rtype in self.store.types():
            groups.setdefault((rtype.group, rtype.version), []).append(rtype)
        return groups

    def _api_versions(self, req: Request) -> Response:
        host = req.headers.get("host", "127.0.0.1")
        return _json({"kind": "APIVersions", "versions": ["v1"],
                      "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})

    def _resource_list(self, group: str, version: str) -> Response:
        types = self._types_by_gv().get((group, version))
        if not types:
            raise HttpError(404, "NotFound", "the server could not find the requested resource")
        resources = []
        for rtype in sorted(types, key=lambda t: t.name):
            entry: dict[str, Any] = {"name": rtype.name, "singularName": rtype.singular,
                                     "namespaced": rtype.namespaced, "kind": rtype.kind, "verbs": _STANDARD_VERBS}
            if rtype.short_names:
                entry["shortNames"] = list(rtype.short_names)
            if rtype.categories:
                entry["categories"] = list(rtype.categories)
            resources.append(entry)
            for sub in rtype.subresources:
                verbs, sub_group, sub_version, kind = _SUBRESOURCES[sub]
                sub_entry: dict[str, Any] = {"name": f"{rtype.name}/{sub}", "singularName": "",
                                             "namespaced": rtype.namespaced, "kind": kind or rtype.kind,
                                             "verbs": verbs}
                if sub_group:
                    sub_entry.update(group=sub_group, version=sub_version)
                resources.append(sub_entry)
        group_version = f"{group}/{version}" if group else version
        return _json({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                      "resources": resources})

    def _core_resources(self, req: Request) -> Response:
        return self._resource_list("", req.params["version"])

    def _group_resources(self, req: Request) -> Response:
        return self._resource_list(req.params["group"], req.params["version"])

    def _group_entries(self) -> dict[str, dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        for group, version in sorted(self._types_by_gv()):
            if not group:
                continue
            gv = {"groupVersion": f"{group}/{version}", "version": version}
            entry = entries.setdefault(group, {"name": group, "versions": [], "preferredVersion": gv})
            entry["versions"].append(gv)
        return entries

    def _api_groups(self, _req: Request) -> Response:
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": list(self._group_entries().values())})

    def _api_group(self, req: Request) -> Response:
        entry = self._group_entries().get(req.params["group"])
        if entry is None:
            raise HttpError(404, "NotFound", "the server could not find the requested resource")
        return _json({"kind": "APIGroup", "apiVersion": "v1", **entry})

    # ---- OpenAPI v3 (just what kubectl's field-validation check reads)

    def _openapi_index(self, _req: Request) -> Response:
        paths = {}
        for group, version in sorted(self._types_by_gv()):
            path = f"apis/{group}/{version}" if group else f"api/{version}"
            digest = hashlib.sha512(json.dumps(self._openapi_paths(group, version), sort_keys=True).encode())
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.hexdigest().upper()}"}
        return _json({"paths": paths})

    def _openapi_doc(self, req: Request) -> Response:
        group, version = req.params.get("group", ""), req.params["version"]
        if (group, version) not in self._types_by_gv():
            raise HttpError(404, "NotFound", "the server could not find the requested resource")
        return _json({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": self.version["gitVersion"]},
                      "paths": self._openapi_paths(group, version), "components": {"schemas": {}}})

    def _openapi_paths(self, group: str, version: str) -> dict[str, Any]:
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        paths = {}
        for rtype in self._types_by_gv()[(group, version)]:
            scope = "/namespaces/{namespace}" if rtype.namespaced else ""
            paths[f"{prefix}{scope}/{rtype.name}/{{name}}"] = {"patch": {
                "operationId": f"patch{rtype.kind}",
                "parameters": [{"name": p, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
                               for p in ("dryRun", "fieldManager", "fieldValidation")],
                "requestBody": {"content": {ct: {"schema": {"type": "object"}} for ct in
                                            (patches.JSON_PATCH, patches.MERGE_PATCH)}},
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rtype.kind}}}
        return paths

    # ---- resolution

    def _target(self, req: Request, *, namespace: str | None = None, resource: str = "", name: str = "",
                sub: str = "") -> Target:
        params = req.params
        group, version = params.get("group", ""), params["version"]
        resource = resource or params["resource"]
        rtype = next((t for t in self._types_by_gv().get((group, version), []) if t.name == resource.lower()), None)
        if rtype is None or (namespace is not None and not rtype.namespaced):
            raise HttpError(404, "NotFound", "the server could not find the requested resource")
        if name and namespace is None and rtype.namespaced:
            raise HttpError(404, "NotFound", "the server could not find the requested resource")
        if sub and sub not in rtype.subresources:
            raise HttpError(404, "NotFound", "the server could not find the requested resource")
        return Target(rtype, namespace, name, sub)

    def _ns_collection(self, req: Request) -> Response:
        resource = req.params["resource"]
        if resource in ("status", "finalize") and req.params.get("group") is None:
            target = self._target(req, resource="namespaces", name=req.params["namespace"], sub=resource)
            return self._dispatch_sub(req, target)
        return self._dispatch_collection(req, self._target(req, namespace=req.params["namespace"]))

    def _collection(self, req: Request) -> Response:
        target = self._target(req)
        if target.rtype.namespaced and req.method in ("POST", "DELETE"):
            raise HttpError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        return self._dispatch_collection(req, target)

    def _dispatch_collection(self, req: Request, target: Target) -> Response:
        if req.method == "POST":
            return self._create(req, target)
        if req.method == "DELETE":
            return self._delete_collection(req, target)
        if _truthy(req.q("watch")):
            return self._watch(req, target)
        return self._list(req, target)

    def _item(self, req: Request) -> Response:
        target = self._target(req, namespace=req.params.get("namespace"), name=req.params["name"])
        handlers = {"GET": self._get, "HEAD": self._get, "PUT": self._update, "PATCH": self._patch,
                    "DELETE": self._delete}
        return handlers[req.method](req, target)

    def _subresource(self, req: Request) -> Response:
        target = self._target(req, namespace=req.params.get("namespace"), name=req.params["name"],
                              sub=req.params["sub"])
        return self._dispatch_sub(req, target)

    def _dispatch_sub(self, req: Request, target: Target) -> Response:
        allowed = {"status": ("GET", "HEAD", "PUT", "PATCH"), "scale": ("GET", "HEAD", "PUT", "PATCH"),
                   "log": ("GET", "HEAD"), "binding": ("POST",), "eviction": ("POST",)}.get(target.sub, ())
        if req.method not in allowed:
            raise HttpError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if target.sub == "log":
            return self._log(req, target)
        if target.sub == "binding":
            return self._bind(req, target)
        if target.sub == "eviction":
            return self._evict(req, target)
        if target.sub == "scale":
            return {"PUT": self._put_scale, "PATCH": self._patch_scale}.get(req.method, self._get_scale)(req, target)
        return {"PUT": self._update, "PATCH": self._patch}.get(req.method, self._get)(req, target)

    def _current(self, target: Target) -> Obj:
        obj = self.store.get_ref(target.rtype.key, target.namespace, target.name)
        if obj is None:
            raise not_found(target.rtype, target.name)
        return obj

    # ---- reads

    def _render_one(self, req: Request, target: Target, obj: Obj, status: int = 200) -> Response:
        shape, meta_version = _accept_as(req)
        if shape == "Table":
            body = tables.table(target.rtype, [obj], include_object=req.q("includeObject") or "Metadata",
                                list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                                now=self.store.clock())
            body["apiVersion"] = f"meta.k8s.io/{meta_version}"
            return _json(body, status)
        if shape.startswith("PartialObjectMetadata"):
            return _json({**tables.partial_metadata(obj), "apiVersion": f"meta.k8s.io/{meta_version}"}, status)
        return _json(obj, status)

    def _get(self, req: Request, target: Target) -> Response:
        return self._render_one(req, target, self._current(target))

    def _list(self, req: Request, target: Target) -> Response:
        labels, fields = self._selectors(req)
        limit = _int_param(req, "limit") or 0
        token = req.q("continue")
        after, list_rv = self._decode_continue(token) if token else (None, None)
        page = self.store.list_page(target.rtype.key, target.namespace, labels, fields, after=after,
                                    limit=max(limit, 0))
        list_meta: dict[str, Any] = {"resourceVersion": str(list_rv or page.resource_version)}
        if page.next_key is not None:
            list_meta["continue"] = self._encode_continue(page.next_key, list_rv or page.resource_version)
            if page.remaining is not None:
                list_meta["remainingItemCount"] = page.remaining
        shape, meta_version = _accept_as(req)
        if shape == "Table":
            body = tables.table(target.rtype, page.items, include_object=req.q("includeObject") or "Metadata",
                                list_meta=list_meta, now=self.store.clock())
            body["apiVersion"] = f"meta.k8s.io/{meta_version}"
            return _json(body)
        if shape.startswith("PartialObjectMetadata"):
            return _json({"kind": "PartialObjectMetadataList", "apiVersion": f"meta.k8s.io/{meta_version}",
                          "metadata": list_meta, "items": [tables.partial_metadata(o) for o in page.items]})
        return _json({"kind": f"{target.rtype.kind}List", "apiVersion": target.rtype.api_version,
                      "metadata": list_meta, "items": [_strip_type(o) for o in page.items]})

    @staticmethod
    def _selectors(req: Request) -> tuple[LabelSelector, FieldSelector]:
        return parse_label_selector(req.q("labelSelector")), parse_field_selector(req.q("fieldSelector"))

    def _encode_continue(self, key: tuple[str, str], rv: int) -> str:
        raw = json.dumps({"e": self._epoch, "rv": rv, "k": list(key)}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode()

    def _decode_continue(self, token: str) -> tuple[tuple[str, str], int]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            if data["e"] == self._epoch:
                return (str(data["k"][0]), str(data["k"][1])), int(data["rv"])
        except (ValueError, KeyError, TypeError, IndexError, binascii.Error):
            pass
        raise Gone("The provided continue parameter is too old to display a consistent list result. You can start "
                   "a new list without the continue parameter.")

    # ---- watch

    def _watch(self, req: Request, target: Target) -> Response:
        labels, fields = self._selectors(req)
        send_initial = _truthy(req.q("sendInitialEvents"))
        rv = req.q("resourceVersion") or ""
        since = None if send_initial or rv in ("", "0") else _int_param(req, "resourceVersion")
        timeout = _int_param(req, "timeoutSeconds")
        try:
            start = self.store.watch(target.rtype.key, target.namespace, labels, fields, since)
        except Gone as err:
            return Response(200, stream=iter([_line({"type": "ERROR", "object": _status_object(err)})]),
                            headers={"Content-Type": JSON})
        stream = _WatchStream(self, req, target, start, timeout=float(timeout) if timeout else DEFAULT_WATCH_TIMEOUT,
                              bookmarks=_truthy(req.q("allowWatchBookmarks")), initial_end=send_initial)
        return Response(200, stream=stream.events(), headers={"Content-Type": JSON})

    # ---- writes

    def _body(self, req: Request) -> Obj:
        media = _media_type(req.headers.get("content-type"))
        if media == PROTOBUF:
            return _protobuf_body(req)
        if media not in (JSON, "application/yaml", "*/*"):
            raise _unsupported_media()
        try:
            if media == "application/yaml":
                import yaml  # pylint: disable=import-outside-toplevel
                body = yaml.safe_load(req.body)
            else:
                body = json.loads(req.body or b"null")
        except ValueError as exc:
            raise _bad_request(f"the object provided is unrecognized: {exc}") from exc
        if not isinstance(body, dict):
            raise _bad_request("the object provided is unrecognized (must be a JSON object)")
        return body

    def _check_identity(self, target: Target, body: Obj, *, name_required: bool) -> None:
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise _bad_request("metadata must be an object")
        if target.rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != target.namespace:
                raise _bad_request("the namespace of the provided object does not match the namespace sent on "
                                   "the request")
            meta["namespace"] = target.namespace
        if name_required and meta.get("name") != target.name:
            if meta.get("name"):
                raise _bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                   f"({target.name})")
            meta["name"] = target.name
        kind = body.get("kind")
        if kind and kind != target.rtype.kind and not target.sub:
            raise _bad_request(f"the kind of the object ({kind}) does not match the kind of the resource "
                               f"({target.rtype.kind})")

    def _admit(self, verb: str, target: Target, new: Obj | None, old: Obj | None) -> None:
        admission.admit(self.store, verb, target.rtype.key, new, old, target.sub)
        if self.hooks.admit is not None:
            self.hooks.admit(verb, target.rtype.key, new, old)

    def _create(self, req: Request, target: Target) -> Response:
        body = self._body(req)
        self._check_identity(target, body, name_required=False)
        with self.store.lock:
            self._admit("create", target, body, None)
            created = self.store.create(target.rtype.key, body, dry_run=_dry_run(req))
        return self._render_one(req, target, created, 201)

    def _update(self, req: Request, target: Target) -> Response:
        body = self._body(req)
        self._check_identity(target, body, name_required=True)
        with self.store.lock:
            return self._store_update(req, target, self._current(target), body)

    def _patch(self, req: Request, target: Target) -> Response:
        media = _media_type(req.headers.get("content-type"))
        if media not in patches.PATCH_TYPES:
            raise HttpError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                                                         f"accepted media types include: "
                                                         f"{', '.join(patches.PATCH_TYPES)}")
        with self.store.lock:
            old = self._current(target)
            patched = patches.apply_patch(media, clone(old), req.body)
            if not isinstance(patched, dict):
                raise HttpError(422, "Invalid", "the patch did not produce an object")
            patched.setdefault("metadata", {})
            return self._store_update(req, target, old, patched)

    def _store_update(self, req: Request, target: Target, old: Obj, new: Obj) -> Response:
        """Write ``new`` over ``old`` honouring the status subresource split of the real API."""
        if target.sub == "status":
            merged = clone(old)
            merged["status"] = new.get("status")
            for field_name in ("labels", "annotations", "resourceVersion"):
                if field_name in new["metadata"]:
                    merged["metadata"][field_name] = new["metadata"][field_name]
            new = merged
        elif "status" in target.rtype.subresources:
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)
        self._admit("update", target, new, old)
        updated = self.store.update(target.rtype.key, new, dry_run=_dry_run(req))
        return self._render_one(req, target, updated)

    def _delete(self, req: Request, target: Target) -> Response:
        options = self._delete_options(req)
        with self.store.lock:
            self._admit("delete", target, None, self._current(target))
            deleted = self.store.delete(target.rtype.key, target.namespace, target.name,
                                        propagation=options.get("propagationPolicy") or "Background",
                                        preconditions=options.get("preconditions"), dry_run=_dry_run(req))
        if deleted is None:
            raise not_found(target.rtype, target.name)
        return self._render_one(req, target, deleted)

    def _delete_options(self, req: Request) -> Obj:
        try:
            if _media_type(req.headers.get("content-type")) == PROTOBUF and req.body:
                options = _protobuf_body(req)
            else:
                options = json.loads(req.body) if req.body and req.body.strip() else {}
        except ValueError as exc:
            raise _bad_request(f"invalid DeleteOptions: {exc}") from exc
        if not isinstance(options, dict):
            raise _bad_request("DeleteOptions must be an object")
        if req.q("propagationPolicy"):
            options["propagationPolicy"] = req.q("propagationPolicy")
        if options.get("propagationPolicy") not in (None, "Background", "Foreground", "Orphan"):
            raise _bad_request(f"Unsupported value: {options['propagationPolicy']!r}: supported values: "
                               f'"Foreground", "Background", "Orphan"')
        return options

    def _delete_collection(self, req: Request, target: Target) -> Response:
        labels, fields = self._selectors(req)
        options = self._delete_options(req)
        with self.store.lock:
            deleted = self.store.delete_collection(target.rtype.key, target.namespace, labels, fields,
                                                   propagation=options.get("propagationPolicy") or "Background")
        return _json({"kind": f"{target.rtype.kind}List", "apiVersion": target.rtype.api_version,
                      "metadata": {"resourceVersion": str(self.store.resource_version)},
                      "items": [_strip_type(o) for o in deleted]})

    # ---- subresources

    def _get_scale(self, _req: Request, target: Target) -> Response:
        return _json(_scale_of(self._current(target)))

    def _put_scale(self, req: Request, target: Target) -> Response:
        body = self._body(req)
        with self.store.lock:
            return self._apply_scale(req, target, self._current(target), body)

    def _patch_scale(self, req: Request, target: Target) -> Response:
        media = _media_type(req.headers.get("content-type"))
        if media not in patches.PATCH_TYPES:
            raise HttpError(415, "UnsupportedMediaType", "the body of the request was in an unknown format")
        with self.store.lock:
            old = self._current(target)
            return self._apply_scale(req, target, old, patches.apply_patch(media, _scale_of(old), req.body))

    def _apply_scale(self, req: Request, target: Target, old: Obj, scale: Obj) -> Response:
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            raise Invalid(f'Scale "{target.name}" is invalid: spec.replicas: Invalid value: {replicas}: must be '
                          f"greater than or equal to 0", name=target.name, kind="Scale", group="autoscaling")
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(target.rtype, target.name, "the object has been modified; please apply your changes "
                                                      "to the latest version and try again")
        new = clone(old)
        new.setdefault("spec", {})["replicas"] = replicas
        self._admit("update", target, new, old)
        updated = self.store.update(target.rtype.key, new, dry_run=_dry_run(req))
        return _json(_scale_of(updated))

    def _log(self, req: Request, target: Target) -> Response:
        pod = self._current(target)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = req.q("container")
        if container and container not in containers:
            raise _bad_request(f"container {container} is not valid for pod {target.name}")
        if not container and len(containers) > 1:
            raise _bad_request(f"a container name must be specified for pod {target.name}, choose one of: "
                               f"[{' '.join(containers)}]")
        annotations = pod["metadata"].get("annotations") or {}
        text = annotations.get(f"{LOG_ANNOTATION}.{container or containers[0]}", annotations.get(LOG_ANNOTATION, ""))
        tail = _int_param(req, "tailLines")
        if tail is not None and tail >= 0:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[len(lines) - tail:]) if tail else ""
        limit = _int_param(req, "limitBytes")
        if limit is not None and limit > 0:
            text = text.encode()[:limit].decode(errors="ignore")
        return Response(200, text, {"Content-Type": "text/plain"})

    def _bind(self, req: Request, target: Target) -> Response:
        node = (self._body(req).get("target") or {}).get("name", "")
        if not node:
            raise HttpError(422, "Invalid", f'Binding "{target.name}" is invalid: target.name: Required value')
        with self.store.lock:
            pod = self._current(target)
            bound = (pod.get("spec") or {}).get("nodeName")
            if bound:
                raise Conflict(f'Operation cannot be fulfilled on pods/binding "{target.name}": pod {target.name} '
                               f"is already assigned to node \"{bound}\"", name=target.name, kind="pods/binding")
            self.store.mutate("pods", target.namespace, target.name, lambda p: _assign_node(p, node))
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)

    def _evict(self, req: Request, target: Target) -> Response:
        from .eviction import evict
        self._body(req)

        def delete() -> None:
            self._admit("delete", target, None, self._current(target))
            self.store.delete("pods", target.namespace, target.name, dry_run=_dry_run(req))
        evict(self.store, target.rtype, target.namespace or "", target.name, delete)
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)


def _assign_node(pod: Obj, node: str) -> None:
    pod.setdefault("spec", {})["nodeName"] = node


# --------------------------------------------------------------------------------------------- watch stream

class _WatchStream:
    def __init__(self, api: KubeApi, req: Request, target: Target, start: WatchStart, *, timeout: float,
                 bookmarks: bool, initial_end: bool) -> None:
        self.api, self.target, self.start = api, target, start
        self.deadline = time.monotonic() + timeout
        self.bookmarks, self.initial_end = bookmarks, initial_end
        self.stopping = req.endpoint.stopping
        shape, self.meta_version = _accept_as(req)
        self.as_table = shape == "Table"
        self.include_object = req.q("includeObject") or "Metadata"
        self._columns_sent = False

    def events(self) -> Iterator[bytes]:
        try:
            for event in self.start.initial:
                yield from self._emit(event)
            if self.initial_end:
                yield self._bookmark(self.start.resource_version, initial_end=True)
            yield from self._live()
        finally:
            self.api.store.unwatch(self.start)

    def _live(self) -> Iterator[bytes]:
        watcher = self.start.watcher
        last_bookmark = time.monotonic()
        while not self.stopping.is_set():
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                return
            if watcher.overflowed:
                yield _line({"type": "ERROR", "object": _status_object(Gone("watch queue overflowed"))})
                return
            event = watcher.next(min(WATCH_POLL, remaining))
            if event is not None:
                yield from self._emit(event)
            elif self.bookmarks and time.monotonic() - last_bookmark >= BOOKMARK_INTERVAL:
                last_bookmark = time.monotonic()
                with self.api.store.lock:      # no commit in flight: every event up to rv is queued
                    rv = self.api.store.resource_version
                    quiet = not watcher.pending()
                if quiet:
                    yield self._bookmark(rv)

    def _emit(self, event: StoreEvent) -> Iterator[bytes]:
        seen = self.start.watcher.translate(event)
        if seen is not None:
            event_type, obj = seen
            yield _line({"type": event_type, "object": self._render(obj)})

    def _render(self, obj: Obj) -> Obj:
        if not self.as_table:
            return obj
        body = tables.table(self.target.rtype, [obj], include_object=self.include_object,
                            list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                            now=self.api.store.clock())
        body["apiVersion"] = f"meta.k8s.io/{self.meta_version}"
        if self._columns_sent:
            body["columnDefinitions"] = []
        self._columns_sent = True
        return body

    def _bookmark(self, rv: int, *, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        rtype = self.target.rtype
        return _line({"type": "BOOKMARK", "object": {"kind": rtype.kind, "apiVersion": rtype.api_version,
                                                     "metadata": meta}})


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def _status_object(err: KubeError) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": err.message,
            "reason": err.reason, "code": err.status}


def _version_info(version: dict[str, Any]) -> dict[str, Any]:
    git_version = str(version.get("gitVersion", "v1.33.0"))
    major, _, rest = git_version.lstrip("v").partition(".")
    minor = rest.split(".")[0]
    info = {"major": major, "minor": minor, "gitVersion": git_version, "gitCommit": "0" * 40,
            "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0",
            "compiler": "gc", "platform": "linux/amd64"}
    info.update(version)
    return info


def build_router(store: KubeStore, *, version: dict[str, Any], hooks: KubeHooks | None = None) -> Router:
    return KubeApi(store, version=version, hooks=hooks).router
