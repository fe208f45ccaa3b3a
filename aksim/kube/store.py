"""In-memory object store behind the simulated Kubernetes API server.

Objects are plain JSON-like dicts. Stored objects are never mutated in place: every write stores a fresh
dict, so references handed to the HTTP layer, the watch history and open watches stay valid snapshots.
Callers of the public API always get deep copies.

Every committed write gets the next value of one global resourceVersion counter (as with etcd), is kept in
a bounded per-resource history (watch resume) and is fanned out to open watches and to subscribers.
"""
from __future__ import annotations

import base64
import bisect
import random
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from .selectors import (EQUALS, FieldSelector, LabelSelector, invalid_labels, label_selector_string, matches_fields,
                        matches_labels, parse_field_selector, parse_label_selector)
from .selectors import field_value as _field_value

Obj = dict[str, Any]
Key = tuple[str, str]                # (namespace or "", name)
Subscriber = Callable[[str, str, Obj], None]

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DEFAULT_HISTORY = 10_000
WATCH_QUEUE_LIMIT = 100_000


# --------------------------------------------------------------------------------------------- errors

class KubeError(Exception):
    """A store error carrying what the API renders as a ``Status`` (reason, code, details)."""
    status = 500
    reason = "InternalError"

    def __init__(self, message: str, *, name: str = "", kind: str = "", group: str = "",
                 causes: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = {k: v for k, v in (("name", name), ("group", group), ("kind", kind)) if v}
        if causes:
            self.details["causes"] = causes


class NotFound(KubeError):
    status, reason = 404, "NotFound"


class AlreadyExists(KubeError):
    status, reason = 409, "AlreadyExists"


class Conflict(KubeError):
    status, reason = 409, "Conflict"


class Invalid(KubeError):
    status, reason = 422, "Invalid"


class Gone(KubeError):
    status, reason = 410, "Expired"


class BadRequest(KubeError):
    status, reason = 400, "BadRequest"


# --------------------------------------------------------------------------------------------- types

@dataclass(frozen=True)
class ResourceType:
    name: str                                   # plural
    kind: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()          # "status", "scale", "log", "binding"
    field_indexes: tuple[str, ...] = ()         # dotted paths indexed for equality field selectors
    categories: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Store name: ``pods`` for the core group, ``deployments.apps`` otherwise."""
        return f"{self.name}.{self.group}" if self.group else self.name

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


_ALL = ("all",)
BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType("namespaces", "Namespace", namespaced=False, short_names=("ns",), subresources=("status",)),
    ResourceType("nodes", "Node", namespaced=False, short_names=("no",), subresources=("status",)),
    ResourceType("pods", "Pod", short_names=("po",), subresources=("status", "log", "binding", "eviction"),
                 field_indexes=("spec.nodeName", "status.phase"), categories=_ALL),
    ResourceType("events", "Event", short_names=("ev",), field_indexes=("involvedObject.name",)),
    ResourceType("secrets", "Secret"),
    ResourceType("configmaps", "ConfigMap", short_names=("cm",)),
    ResourceType("services", "Service", short_names=("svc",), subresources=("status",), categories=_ALL),
    ResourceType("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    ResourceType("endpoints", "Endpoints", short_names=("ep",)),
    ResourceType("deployments", "Deployment", "apps", short_names=("deploy",), subresources=("status", "scale"),
                 categories=_ALL),
    ResourceType("replicasets", "ReplicaSet", "apps", short_names=("rs",), subresources=("status", "scale"),
                 categories=_ALL),
    ResourceType("daemonsets", "DaemonSet", "apps", short_names=("ds",), subresources=("status",), categories=_ALL),
    ResourceType("leases", "Lease", "coordination.k8s.io"),
    ResourceType("clusterroles", "ClusterRole", "rbac.authorization.k8s.io", namespaced=False),
    ResourceType("clusterrolebindings", "ClusterRoleBinding", "rbac.authorization.k8s.io", namespaced=False),
    ResourceType("roles", "Role", "rbac.authorization.k8s.io"),
    ResourceType("rolebindings", "RoleBinding", "rbac.authorization.k8s.io"),
    # Virtual Nodes v2 (the ``virtualnode`` chart) and what its pods need
    ResourceType("statefulsets", "StatefulSet", "apps", short_names=("sts",), subresources=("status", "scale"),
                 categories=_ALL),
    ResourceType("controllerrevisions", "ControllerRevision", "apps"),
    ResourceType("poddisruptionbudgets", "PodDisruptionBudget", "policy", short_names=("pdb",),
                 subresources=("status",)),
    ResourceType("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", "admissionregistration.k8s.io",
                 namespaced=False, categories=("api-extensions",)),
    ResourceType("validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
                 "admissionregistration.k8s.io", namespaced=False, categories=("api-extensions",)),
    ResourceType("priorityclasses", "PriorityClass", "scheduling.k8s.io", namespaced=False, short_names=("pc",)),
    ResourceType("customresourcedefinitions", "CustomResourceDefinition", "apiextensions.k8s.io", namespaced=False,
                 short_names=("crd", "crds"), subresources=("status",), categories=("api-extensions",)),
)


@dataclass(frozen=True, slots=True)
class StoreEvent:
    rv: int
    type: str
    obj: Obj                 # stored snapshot (for DELETED: the last state, carrying the deletion's rv)
    old: Obj | None = None


# --------------------------------------------------------------------------------------------- helpers

def clone(value: Any) -> Any:
    """Deep copy of JSON-like data (several times faster than copy.deepcopy)."""
    kind = type(value)
    if kind is dict:
        return {k: clone(v) for k, v in value.items()}
    if kind is list:
        return [clone(v) for v in value]
    return value


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def qualified(rtype: ResourceType) -> str:
    """How real error messages name a resource: ``pods``, ``deployments.apps``."""
    return rtype.key


def not_found(rtype: ResourceType, name: str) -> NotFound:
    return NotFound(f'{qualified(rtype)} "{name}" not found', name=name, kind=rtype.name, group=rtype.group)


def conflict(rtype: ResourceType, name: str, why: str) -> Conflict:
    return Conflict(f'Operation cannot be fulfilled on {qualified(rtype)} "{name}": {why}',
                    name=name, kind=rtype.name, group=rtype.group)


_STALE = "the object has been modified; please apply your changes to the latest version and try again"
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def _generated_name(prefix: str) -> str:
    return prefix + "".join(random.choice(_GENERATE_CHARS) for _ in range(5))


# --------------------------------------------------------------------------------------------- validation

_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character")


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _is_subdomain(name: str) -> bool:
    return len(name) <= 253 and _DNS_SUBDOMAIN.fullmatch(name) is not None


def _is_label(name: str) -> bool:
    return _DNS_LABEL.fullmatch(name) is not None


def _cause(field_path: str, reason: str, message: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field_path}


def _validate(rtype: ResourceType, obj: Obj) -> list[dict[str, str]]:
    meta = obj["metadata"]
    name = meta.get("name", "")
    causes = []
    if not name:
        causes.append(_cause("metadata.name", "FieldValueRequired",
                             "Required value: name or generateName is required"))
    elif rtype.name in ("namespaces", "services") and not _is_label(name):
        causes.append(_cause("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {_LABEL_MSG}'))
    elif not _is_subdomain(name):
        causes.append(_cause("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {_SUBDOMAIN_MSG}'))
    labels = meta.get("labels") or {}
    problem = invalid_labels(labels) if isinstance(labels, dict) else "labels must be a map"
    if problem:
        causes.append(_cause("metadata.labels", "FieldValueInvalid", f"Invalid value: {problem}"))
    causes += _TYPE_VALIDATORS.get(rtype.key, lambda _o: [])(obj)
    return causes


def _validate_pod(obj: Obj) -> list[dict[str, str]]:
    if not (obj.get("spec") or {}).get("containers"):
        return [_cause("spec.containers", "FieldValueRequired", "Required value")]
    return []


def _validate_workload(obj: Obj) -> list[dict[str, str]]:
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if not selector:
        return [_cause("spec.selector", "FieldValueRequired", "Required value")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not matches_labels(parse_label_selector(label_selector_string(selector)), labels):
        return [_cause("spec.template.metadata.labels", "FieldValueInvalid",
                       f"Invalid value: {labels}: `selector` does not match template `labels`")]
    return []


def _validate_priority_class(obj: Obj) -> list[dict[str, str]]:
    if not isinstance(obj.get("value"), int):
        return [_cause("value", "FieldValueRequired", "Required value")]
    return []


_TYPE_VALIDATORS: dict[str, Callable[[Obj], list[dict[str, str]]]] = {
    "pods": _validate_pod,
    "statefulsets.apps": _validate_workload,
    "priorityclasses.scheduling.k8s.io": _validate_priority_class,
    "deployments.apps": _validate_workload,
    "replicasets.apps": _validate_workload,
    "daemonsets.apps": _validate_workload,
}


def _invalid(rtype: ResourceType, obj: Obj, causes: list[dict[str, str]]) -> Invalid:
    name = obj["metadata"].get("name", "")
    text = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    return Invalid(f'{rtype.kind} "{name}" is invalid: {text}', name=name, kind=rtype.kind, group=rtype.group,
                   causes=causes)


# --------------------------------------------------------------------------------------------- defaulting

def _default_namespace(obj: Obj) -> None:
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def _default_pod(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Pending")
    for key in ("containerStatuses", "initContainerStatuses"):
        for container_status in status.get(key) or ():
            _zeros(container_status, _CONTAINER_STATUS_ZEROS)
            for state_key in ("state", "lastState"):
                terminated = (container_status.get(state_key) or {}).get("terminated")
                if isinstance(terminated, dict):
                    terminated.setdefault("exitCode", 0)


# Fields a real server always serializes (Go fields without omitempty): typed clients such as the python
# kubernetes client (v37, pydantic) reject objects that lack them.
_CONTAINER_STATUS_ZEROS = {"name": "", "image": "", "imageID": "", "ready": False, "restartCount": 0}
_NODE_INFO_ZEROS = dict.fromkeys(("machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                                  "containerRuntimeVersion", "kubeletVersion", "kubeProxyVersion",
                                  "operatingSystem", "architecture"), "")
_DAEMONSET_STATUS_ZEROS = dict.fromkeys(("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
                                         "numberReady"), 0)


def _zeros(obj: Obj, zeros: dict[str, Any]) -> None:
    for key, zero in zeros.items():
        obj.setdefault(key, zero)


def _default_node(obj: Obj) -> None:
    obj.setdefault("spec", {})
    status = obj.setdefault("status", {})
    _zeros(status.setdefault("nodeInfo", {}), _NODE_INFO_ZEROS)
    status.setdefault("daemonEndpoints", {}).setdefault("kubeletEndpoint", {}).setdefault("Port", 0)


def _default_daemonset(obj: Obj) -> None:
    _zeros(obj.setdefault("status", {}), _DAEMONSET_STATUS_ZEROS)


def _default_replicaset(obj: Obj) -> None:
    obj.setdefault("spec", {}).setdefault("replicas", 1)
    obj.setdefault("status", {}).setdefault("replicas", 0)


def _default_deployment(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault("strategy", {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})


def _default_statefulset(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    obj.setdefault("status", {}).setdefault("replicas", 0)
    obj["status"].setdefault("availableReplicas", 0)


def _default_pdb(obj: Obj) -> None:
    status = obj.setdefault("status", {})
    _zeros(status, {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})


def _default_priority_class(obj: Obj) -> None:
    obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


def _default_webhooks(obj: Obj, mutating: bool) -> None:
    for hook in obj.get("webhooks") or []:
        hook.setdefault("failurePolicy", "Fail")
        hook.setdefault("matchPolicy", "Equivalent")
        hook.setdefault("namespaceSelector", {})
        hook.setdefault("objectSelector", {})
        hook.setdefault("timeoutSeconds", 10)
        if mutating:
            hook.setdefault("reinvocationPolicy", "Never")
        for rule in hook.get("rules") or []:
            rule.setdefault("scope", "*")
        service = (hook.get("clientConfig") or {}).get("service")
        if isinstance(service, dict):
            service.setdefault("port", 443)


def _default_secret(obj: Obj) -> None:
    string_data = obj.pop("stringData", None) or {}
    for key, value in string_data.items():
        obj.setdefault("data", {})[key] = base64.b64encode(str(value).encode()).decode()
    obj.setdefault("type", "Opaque")


_DEFAULTERS: dict[str, Callable[[Obj], None]] = {
    "namespaces": _default_namespace,
    "pods": _default_pod,
    "deployments.apps": _default_deployment,
    "replicasets.apps": _default_replicaset,
    "daemonsets.apps": _default_daemonset,
    "nodes": _default_node,
    "secrets": _default_secret,
    "statefulsets.apps": _default_statefulset,
    "poddisruptionbudgets.policy": _default_pdb,
    "priorityclasses.scheduling.k8s.io": _default_priority_class,
    "mutatingwebhookconfigurations.admissionregistration.k8s.io": lambda o: _default_webhooks(o, True),
    "validatingwebhookconfigurations.admissionregistration.k8s.io": lambda o: _default_webhooks(o, False),
}


# --------------------------------------------------------------------------------------------- watch

class Watcher:
    """Queue of store events for one open watch; filtering happens on the consumer side."""

    def __init__(self, namespace: str | None, labels: LabelSelector, fields: FieldSelector) -> None:
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self._cv = threading.Condition(threading.Lock())
        self._events: deque[StoreEvent] = deque()
        self.overflowed = False

    def offer(self, event: StoreEvent) -> None:
        with self._cv:
            if len(self._events) >= WATCH_QUEUE_LIMIT:
                self.overflowed = True
                self._events.clear()
            elif not self.overflowed:
                self._events.append(event)
            self._cv.notify()

    def pending(self) -> bool:
        with self._cv:
            return bool(self._events)

    def next(self, timeout: float) -> StoreEvent | None:
        with self._cv:
            if not self._events:
                self._cv.wait(timeout)
            return self._events.popleft() if self._events else None

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj["metadata"]
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        return matches_labels(self.labels, meta.get("labels")) and _matches_fields(self.fields, obj)

    def translate(self, event: StoreEvent) -> tuple[str, Obj] | None:
        """The event this watch sees: objects entering or leaving the selection become ADDED / DELETED."""
        now = self.matches(event.obj)
        if event.type == DELETED:
            return (DELETED, event.obj) if now else None
        before = event.type == MODIFIED and self.matches(event.old)
        if now:
            return (MODIFIED if before else ADDED), event.obj
        if before:
            assert event.old is not None
            return DELETED, _with_rv(event.old, event.rv)
        return None


def _with_rv(obj: Obj, rv: int) -> Obj:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}}


def _matches_fields(selector: FieldSelector, obj: Obj) -> bool:
    return not selector or matches_fields(selector, obj)


# --------------------------------------------------------------------------------------------- table

_EMPTY: frozenset[Key] = frozenset()


class _Table:
    """The objects of one resource with their indexes, history and open watches."""

    def __init__(self, rtype: ResourceType, history: int) -> None:
        self.rtype = rtype
        self.objects: dict[Key, Obj] = {}
        self.by_namespace: dict[str, set[Key]] = defaultdict(set)
        self.by_label: dict[str, dict[str, set[Key]]] = defaultdict(lambda: defaultdict(set))
        self.by_field: dict[str, dict[str, set[Key]]] = {p: defaultdict(set) for p in
                                                         ("metadata.name",) + rtype.field_indexes}
        self.history: deque[StoreEvent] = deque(maxlen=history)
        self.compacted_rv = 0          # events with rv <= this may be missing from history
        self.watchers: set[Watcher] = set()
        self._sorted: list[Key] | None = None

    def put(self, key: Key, obj: Obj, old: Obj | None) -> None:
        if old is not None:
            self._unindex(key, old)
        else:
            self._sorted = None
        self.objects[key] = obj
        self._index(key, obj)

    def remove(self, key: Key) -> None:
        old = self.objects.pop(key)
        self._unindex(key, old)
        self._sorted = None

    def _index(self, key: Key, obj: Obj) -> None:
        self.by_namespace[key[0]].add(key)
        for label, value in (obj["metadata"].get("labels") or {}).items():
            self.by_label[label][value].add(key)
        for path, index in self.by_field.items():
            index[_field_value(obj, path)].add(key)

    def _unindex(self, key: Key, obj: Obj) -> None:
        _discard(self.by_namespace, key[0], key)
        for label, value in (obj["metadata"].get("labels") or {}).items():
            values = self.by_label[label]
            _discard(values, value, key)
            if not values:
                del self.by_label[label]
        for path, index in self.by_field.items():
            _discard(index, _field_value(obj, path), key)

    def sorted_keys(self) -> list[Key]:
        if self._sorted is None:
            self._sorted = sorted(self.objects)
        return self._sorted

    def record(self, event: StoreEvent) -> None:
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        self.history.append(event)

    def candidates(self, namespace: str | None, labels: LabelSelector, fields: FieldSelector) -> list[Key]:
        """Sorted keys that may match, from the most selective applicable index (all keys if none applies)."""
        options: list[list[set[Key] | frozenset[Key]]] = []
        if namespace is not None:
            options.append([self.by_namespace.get(namespace, _EMPTY)])
        for req in fields:
            if req.op != EQUALS:
                continue
            if req.path == "metadata.namespace" and self.rtype.namespaced:
                options.append([self.by_namespace.get(req.value, _EMPTY)])
            elif req.path in self.by_field:
                options.append([self.by_field[req.path].get(req.value, _EMPTY)])
        for lreq in labels:
            if lreq.indexable:
                values = self.by_label.get(lreq.key, {})
                options.append([values.get(v, _EMPTY) for v in lreq.values])
        if not options:
            return self.sorted_keys()
        best = min(options, key=lambda sets: sum(len(s) for s in sets))
        keys: set[Key] = set().union(*best)
        return sorted(keys)


def _discard(index: dict[Any, set[Key]], value: Any, key: Key) -> None:
    keys = index.get(value)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[value]


@dataclass
class ListPage:
    items: list[Obj]                 # stored snapshots (do not mutate)
    resource_version: int
    next_key: Key | None = None      # set when more items may follow (paging)
    remaining: int | None = None     # remainingItemCount when it is known (no selectors)


@dataclass
class WatchStart:
    initial: list[StoreEvent]
    watcher: Watcher
    resource_version: int            # the store's resourceVersion when the watch was registered
    table: _Table = field(repr=False)


# --------------------------------------------------------------------------------------------- store

class KubeStore:
    def __init__(self, lock: threading.RLock, *, clock: Callable[[], float] = time.time,
                 history: int = DEFAULT_HISTORY) -> None:
        self.lock = lock
        self.clock = clock
        self._history = history
        self._rv = 0
        self._tables: dict[str, _Table] = {}
        self._by_uid: dict[str, tuple[str, Key]] = {}
        self._dependents: dict[str, set[tuple[str, Key]]] = defaultdict(set)
        self._subscribers: list[Subscriber] = []
        self.service_cidr = "10.0.0.0/16"       # where ClusterIP services get their address (the cluster's)
        for rtype in BUILTIN_TYPES:
            self.register(rtype)
        for name in SYSTEM_NAMESPACES:
            self.ensure_namespace(name)

    # ---- types

    def register(self, rtype: ResourceType) -> None:
        """Add a resource type (e.g. ``statefulsets.apps``); the API serves it from then on."""
        with self.lock:
            self._tables.setdefault(rtype.key, _Table(rtype, self._history))

    def types(self) -> list[ResourceType]:
        return [t.rtype for t in self._tables.values()]

    def resource_type(self, resource: str) -> ResourceType:
        return self._table(resource).rtype

    def _table(self, resource: str) -> _Table:
        try:
            return self._tables[resource]
        except KeyError:
            raise NotFound(f"the server could not find the requested resource ({resource})") from None

    @property
    def resource_version(self) -> int:
        return self._rv

    # ---- reads

    def get(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        with self.lock:
            obj = self.get_ref(resource, namespace, name)
            return clone(obj) if obj is not None else None

    def get_ref(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        """The stored snapshot itself (read-only; it is never changed in place)."""
        table = self._table(resource)
        return table.objects.get(self._key(table.rtype, namespace, name))

    def list(self, resource: str, namespace: str | None = None, label_selector: str | LabelSelector = "",
             field_selector: str | FieldSelector = "") -> list[Obj]:
        with self.lock:
            page = self.list_page(resource, namespace, label_selector, field_selector)
            return [clone(obj) for obj in page.items]

    def list_page(self, resource: str, namespace: str | None = None, label_selector: str | LabelSelector = "",
                  field_selector: str | FieldSelector = "", *, after: Key | None = None,
                  limit: int = 0) -> ListPage:
        """Matching stored snapshots sorted by (namespace, name), optionally one page after ``after``."""
        labels, fields = _parsed(label_selector, field_selector)
        with self.lock:
            table = self._table(resource)
            ns = namespace or None if table.rtype.namespaced else None
            keys = table.candidates(ns, labels, fields)
            start = bisect.bisect_right(keys, after) if after else 0
            items: list[Obj] = []
            pos = start
            while pos < len(keys) and (not limit or len(items) < limit):
                key = keys[pos]
                pos += 1
                if ns is not None and key[0] != ns:
                    continue
                obj = table.objects[key]
                if matches_labels(labels, obj["metadata"].get("labels")) and _matches_fields(fields, obj):
                    items.append(obj)
            page = ListPage(items, self._rv)
            if limit and pos < len(keys):
                page.next_key = keys[pos - 1]
                if not labels and not fields:
                    page.remaining = len(keys) - pos
            return page

    def watch(self, resource: str, namespace: str | None = None, label_selector: str | LabelSelector = "",
              field_selector: str | FieldSelector = "", since: int | None = None) -> WatchStart:
        """Open a watch. ``since=None``: synthetic ADDED events for current matches; else replay after ``since``."""
        labels, fields = _parsed(label_selector, field_selector)
        with self.lock:
            table = self._table(resource)
            ns = namespace or None if table.rtype.namespaced else None
            watcher = Watcher(ns, labels, fields)
            if since is None:
                page = self.list_page(resource, ns, labels, fields)
                initial = [StoreEvent(int(o["metadata"]["resourceVersion"]), ADDED, o) for o in page.items]
            else:
                if since < table.compacted_rv:
                    raise Gone(f"too old resource version: {since} ({table.compacted_rv + 1})")
                initial = list(_events_after(table.history, since))
            table.watchers.add(watcher)
            return WatchStart(initial, watcher, self._rv, table)

    def unwatch(self, start: WatchStart) -> None:
        with self.lock:
            start.table.watchers.discard(start.watcher)

    def subscribe(self, callback: Subscriber) -> None:
        with self.lock:
            self._subscribers.append(callback)

    def unsubscribe(self, callback: Subscriber) -> None:
        with self.lock:
            self._subscribers.remove(callback)

    # ---- writes

    def create(self, resource: str, obj: Obj, *, dry_run: bool = False) -> Obj:
        with self.lock:
            table = self._table(resource)
            new = self._prepare_new(table, clone(obj))
            key = self._key(table.rtype, new["metadata"].get("namespace"), new["metadata"]["name"])
            if key in table.objects:
                raise AlreadyExists(f'{qualified(table.rtype)} "{key[1]}" already exists', name=key[1],
                                    kind=table.rtype.name, group=table.rtype.group)
            if table.rtype.namespaced and ("", key[0]) not in self._tables["namespaces"].objects:
                raise not_found(self._tables["namespaces"].rtype, key[0])
            if dry_run:
                return new
            return clone(self._commit(table, ADDED, key, new, None))

    def update(self, resource: str, obj: Obj, *, dry_run: bool = False) -> Obj:
        with self.lock:
            table = self._table(resource)
            new = clone(obj)
            meta = new.setdefault("metadata", {})
            key = self._key(table.rtype, meta.get("namespace"), meta.get("name", ""))
            old = table.objects.get(key)
            if old is None:
                raise not_found(table.rtype, key[1])
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(table.rtype, key[1], _STALE)
            uid = meta.get("uid")
            if uid and uid != old["metadata"]["uid"]:
                raise conflict(table.rtype, key[1], f"Precondition failed: UID in precondition: {uid}, "
                                                    f"UID in object meta: {old['metadata']['uid']}")
            return clone(self._replace(table, key, old, new, dry_run))

    def mutate(self, resource: str, namespace: str | None, name: str, fn: Callable[[Obj], Any]) -> Obj:
        with self.lock:
            table = self._table(resource)
            key = self._key(table.rtype, namespace, name)
            old = table.objects.get(key)
            if old is None:
                raise not_found(table.rtype, name)
            new = clone(old)
            fn(new)
            return clone(self._replace(table, key, old, new))

    def delete(self, resource: str, namespace: str | None, name: str, *, propagation: str = "Background",
               preconditions: dict[str, str] | None = None, dry_run: bool = False) -> Obj | None:
        """Delete (None if absent). Objects with finalizers only get a deletionTimestamp until they are gone."""
        with self.lock:
            table = self._table(resource)
            key = self._key(table.rtype, namespace, name)
            old = table.objects.get(key)
            if old is None:
                return None
            self._check_preconditions(table.rtype, old, preconditions or {})
            if dry_run:
                return clone(old)
            if old["metadata"].get("finalizers"):
                return clone(self._mark_deleted(table, key, old))
            return clone(self._delete(table, key, old, propagation))

    def delete_collection(self, resource: str, namespace: str | None, label_selector: str = "",
                          field_selector: str = "", propagation: str = "Background") -> list[Obj]:
        with self.lock:
            page = self.list_page(resource, namespace, label_selector, field_selector)
            deleted = (self.delete(resource, o["metadata"].get("namespace"), o["metadata"]["name"],
                                   propagation=propagation) for o in page.items)
            return [obj for obj in deleted if obj is not None]

    def ensure_namespace(self, name: str) -> Obj:
        with self.lock:
            existing = self.get("namespaces", None, name)
            if existing is not None:
                return existing
            return self.create("namespaces", {"metadata": {"name": name}})

    def bulk_load(self, resource: str, objects: Iterable[Obj]) -> int:
        """Seed many objects fast: no events, history or subscriber calls; watches from older rvs get 410.

        Unlike ``create``, a uid (and creationTimestamp) given in the objects is kept, so seeds can link owners.
        For speed the store takes the objects over instead of copying them (only the top level and ``metadata``
        are copied): values may be shared between objects but must not be changed by the caller afterwards.
        """
        with self.lock:
            table = self._table(resource)
            count = 0
            for obj in objects:
                new = self._prepare_new(table, {**obj, "metadata": dict(obj.get("metadata") or {})}, seeding=True)
                meta = new["metadata"]
                key = self._key(table.rtype, meta.get("namespace"), meta["name"])
                if key in table.objects:
                    raise AlreadyExists(f'{qualified(table.rtype)} "{key[1]}" already exists', name=key[1],
                                        kind=table.rtype.name, group=table.rtype.group)
                if table.rtype.namespaced and ("", key[0]) not in self._tables["namespaces"].objects:
                    self.ensure_namespace(key[0])
                self._rv += 1
                meta["resourceVersion"] = str(self._rv)
                table.put(key, new, None)
                self._track(table.rtype.key, key, new, None)
                count += 1
            table.compacted_rv = self._rv
            return count

    # ---- internals

    @staticmethod
    def _key(rtype: ResourceType, namespace: str | None, name: str) -> Key:
        return ((namespace or "default") if rtype.namespaced else "", name)

    def _prepare_new(self, table: _Table, obj: Obj, *, seeding: bool = False) -> Obj:
        """Validate, default and stamp a new object; like a real server ``create`` assigns uid and creation time."""
        rtype = table.rtype
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._unused_name(table, meta)
        if rtype.namespaced:
            meta["namespace"] = meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        causes = _validate(rtype, obj)
        if causes:
            raise _invalid(rtype, obj, causes)
        meta["uid"] = (seeding and meta.get("uid")) or str(uuid.uuid4())
        meta["creationTimestamp"] = (seeding and meta.get("creationTimestamp")) or rfc3339(self.clock())
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(transient, None)
        _DEFAULTERS.get(rtype.key, lambda _o: None)(obj)
        if rtype.key == "services" and not seeding:
            self._allocate_cluster_ip(obj)
        if "spec" in obj:
            meta["generation"] = 1
        return _typed(rtype, obj)

    def _allocate_cluster_ip(self, service: Obj) -> None:
        """The service IP allocator: a ClusterIP/NodePort/LoadBalancer service without one gets the next free
        address of ``service_cidr`` (from .100 on); ``None`` makes a headless service."""
        import ipaddress  # pylint: disable=import-outside-toplevel
        spec = service.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        if spec["type"] == "ExternalName" or spec.get("clusterIP"):
            if spec.get("clusterIP") and "clusterIPs" not in spec:
                spec["clusterIPs"] = [spec["clusterIP"]]
            return
        net = ipaddress.ip_network(self.service_cidr, strict=False)
        taken = {(o.get("spec") or {}).get("clusterIP") for o in self._tables["services"].objects.values()}
        for offset in range(100, net.num_addresses - 1):
            candidate = str(net[offset])
            if candidate not in taken:
                spec.update(clusterIP=candidate, clusterIPs=[candidate], ipFamilies=["IPv4"],
                            ipFamilyPolicy="SingleStack", internalTrafficPolicy="Cluster")
                return

    def _unused_name(self, table: _Table, meta: Obj) -> str:
        ns = meta.get("namespace") or "default" if table.rtype.namespaced else ""
        while True:
            name = _generated_name(meta["generateName"])
            if (ns, name) not in table.objects:
                return name

    def _replace(self, table: _Table, key: Key, old: Obj, new: Obj, dry_run: bool = False) -> Obj:
        """Commit ``new`` over ``old`` keeping immutable metadata; a no-op update commits nothing."""
        rtype = table.rtype
        meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
        meta["name"] = key[1]
        if rtype.namespaced:
            meta["namespace"] = key[0]
        else:
            meta.pop("namespace", None)
        new = _typed(rtype, new)
        for fixed in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        _DEFAULTERS.get(rtype.key, lambda _o: None)(new)
        causes = _validate(rtype, new)
        if causes:
            raise _invalid(rtype, new, causes)
        if "spec" in new:
            generation = old_meta.get("generation", 1)
            meta["generation"] = generation + 1 if new.get("spec") != old.get("spec") else generation
        if new == old or dry_run:
            return new if dry_run else old
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._delete(table, key, new, "Background")
        return self._commit(table, MODIFIED, key, new, old)

    def _mark_deleted(self, table: _Table, key: Key, old: Obj) -> Obj:
        if old["metadata"].get("deletionTimestamp"):
            return old
        new = clone(old)
        new["metadata"]["deletionTimestamp"] = rfc3339(self.clock())
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        return self._commit(table, MODIFIED, key, new, old)

    def _delete(self, table: _Table, key: Key, obj: Obj, propagation: str) -> Obj:
        uid = obj["metadata"]["uid"]
        if propagation == "Orphan":
            self._orphan(uid)
        if table.rtype.key == "namespaces":
            self._delete_namespace_contents(key[1])
        final = {**obj, "metadata": {**obj["metadata"]}}
        deleted = self._commit(table, DELETED, key, final, table.objects[key])
        if propagation != "Orphan":
            self._collect_dependents(uid)
        return deleted

    def _delete_namespace_contents(self, namespace: str) -> None:
        for table in list(self._tables.values()):
            if table.rtype.namespaced:
                for key in sorted(table.by_namespace.get(namespace, _EMPTY)):
                    if key in table.objects:
                        self._delete(table, key, table.objects[key], "Background")

    def _orphan(self, owner_uid: str) -> None:
        for resource, key in sorted(self._dependents.get(owner_uid, ())):
            self.mutate(resource, key[0], key[1], lambda o: _drop_owner(o, owner_uid))

    def _collect_dependents(self, owner_uid: str) -> None:
        """Garbage-collect dependents: delete those whose owners are all gone, else drop the dangling reference."""
        for resource, key in sorted(self._dependents.pop(owner_uid, ())):
            table = self._tables[resource]
            obj = table.objects.get(key)
            if obj is None:
                continue
            owners = [ref.get("uid") for ref in obj["metadata"].get("ownerReferences") or []]
            if any(uid in self._by_uid for uid in owners if uid != owner_uid):
                self.mutate(resource, key[0], key[1], lambda o: _drop_owner(o, owner_uid))
            elif obj["metadata"].get("finalizers"):
                self._mark_deleted(table, key, obj)
            else:
                self._delete(table, key, obj, "Background")

    @staticmethod
    def _check_preconditions(rtype: ResourceType, obj: Obj, preconditions: dict[str, str]) -> None:
        meta = obj["metadata"]
        for field_name in ("uid", "resourceVersion"):
            wanted = preconditions.get(field_name)
            if wanted and wanted != meta[field_name]:
                raise conflict(rtype, meta["name"], f"Precondition failed: {field_name} in precondition: "
                                                    f"{wanted}, {field_name} in object meta: {meta[field_name]}")

    def _commit(self, table: _Table, event_type: str, key: Key, new: Obj, old: Obj | None) -> Obj:
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        if event_type == DELETED:
            table.remove(key)
        else:
            table.put(key, new, old)
        self._track(table.rtype.key, key, new if event_type != DELETED else None, old)
        event = StoreEvent(self._rv, event_type, new, old)
        table.record(event)
        for watcher in list(table.watchers):
            watcher.offer(event)
        for callback in list(self._subscribers):
            callback(event_type, table.rtype.key, clone(new))
        return new

    def _track(self, resource: str, key: Key, new: Obj | None, old: Obj | None) -> None:
        """Maintain the uid and owner indexes."""
        ref = (resource, key)
        if old is not None:
            self._by_uid.pop(old["metadata"]["uid"], None)
            for owner in _owner_uids(old):
                deps = self._dependents.get(owner)
                if deps is not None:
                    deps.discard(ref)
                    if not deps:
                        del self._dependents[owner]
        if new is not None:
            self._by_uid[new["metadata"]["uid"]] = ref
            for owner in _owner_uids(new):
                self._dependents[owner].add(ref)


def _typed(rtype: ResourceType, obj: Obj) -> Obj:
    """``obj`` with kind and apiVersion set and first, as a real server serializes objects."""
    rest = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
    return {"kind": rtype.kind, "apiVersion": rtype.api_version, **rest}


def _owner_uids(obj: Obj) -> Iterator[str]:
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("uid"):
            yield ref["uid"]


def _drop_owner(obj: Obj, owner_uid: str) -> None:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
    if refs:
        obj["metadata"]["ownerReferences"] = refs
    else:
        obj["metadata"].pop("ownerReferences", None)


def _events_after(history: deque[StoreEvent], rv: int) -> Iterator[StoreEvent]:
    newer: list[StoreEvent] = []
    for event in reversed(history):
        if event.rv <= rv:
            break
        newer.append(event)
    return reversed(newer)


def _parsed(labels: str | LabelSelector, fields: str | FieldSelector) -> tuple[LabelSelector, FieldSelector]:
    return (parse_label_selector(labels) if isinstance(labels, str) else labels,
            parse_field_selector(fields) if isinstance(fields, str) else fields)
