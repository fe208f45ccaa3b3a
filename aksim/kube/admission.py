"""Admission as kube-apiserver runs it for every write, whether a user or a controller sends it.

* ``Priority`` (pods, create): ``spec.priorityClassName`` must name an existing PriorityClass, else 403
  ``pods "<name>" is forbidden: no PriorityClass with name <x> was found``; the class's value and preemption
  policy are copied into the pod.
* ``MutatingAdmissionWebhook`` then ``ValidatingAdmissionWebhook`` (every resource): a webhook whose rules and
  selectors match the request is called through its Service. The simulator cannot run webhook servers, so only
  reachability is modelled: with no ready endpoint behind the Service (no Ready pod with an IP matching its
  selector) the call fails, and with ``failurePolicy: Fail`` the request is refused with the real 500
  ``Internal error occurred: failed calling webhook ...``; with ``Ignore`` it goes through unmutated. A
  reachable webhook lets the request through unmutated and allowed (it never mutates nor denies: webhook
  servers are not run). ``clientConfig.url`` webhooks are not called.
"""
from __future__ import annotations

from typing import Any

from .selectors import label_selector_string, matches_labels, parse_label_selector
from .store import KubeError, KubeStore, Obj

MUTATING = "mutatingwebhookconfigurations.admissionregistration.k8s.io"
VALIDATING = "validatingwebhookconfigurations.admissionregistration.k8s.io"
PRIORITY_CLASSES = "priorityclasses.scheduling.k8s.io"
_OPERATIONS = {"create": "CREATE", "update": "UPDATE", "delete": "DELETE"}


class Forbidden(KubeError):
    status, reason = 403, "Forbidden"


def admit(store: KubeStore, verb: str, resource: str, new: Obj | None, old: Obj | None, sub: str = "") -> None:
    """Run the admission chain for one write (call under the store lock); mutates ``new`` or raises."""
    if resource == "pods" and verb == "create" and new is not None and not sub:
        _priority(store, new)
    _webhooks(store, verb, resource, new, old, sub)


def forbidden(resource: str, obj: Obj, why: str) -> Forbidden:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or ""
    group, _, _ = resource.partition(".")
    return Forbidden(f'{resource} "{name}" is forbidden: {why}', name=name, kind=group)


# -- Priority -----------------------------------------------------------------------------------------
def _priority(store: KubeStore, pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    name = spec.get("priorityClassName")
    if not name:
        return
    pclass = store.get_ref(PRIORITY_CLASSES, None, name)
    if pclass is None:
        raise forbidden("pods", pod, f"no PriorityClass with name {name} was found")
    value = pclass.get("value", 0)
    if spec.get("priority") is not None and spec["priority"] != value:
        raise forbidden("pods", pod, f"the integer value of priority ({spec['priority']}) must not be provided in "
                                     f"pod spec; priority admission controller computed {value} from the given "
                                     f"PriorityClass name")
    spec["priority"] = value
    spec.setdefault("preemptionPolicy", pclass.get("preemptionPolicy") or "PreemptLowerPriority")


BUILTIN_PRIORITY_CLASSES = (
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
     "metadata": {"name": "system-node-critical"}, "value": 2000001000, "preemptionPolicy": "PreemptLowerPriority",
     "description": "Used for system critical pods that must not be moved from their current node."},
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
     "metadata": {"name": "system-cluster-critical"}, "value": 2000000000, "preemptionPolicy": "PreemptLowerPriority",
     "description": "Used for system critical pods that must run in the cluster, but can be moved to another node "
                    "if necessary."},
)


# -- webhooks -----------------------------------------------------------------------------------------
def _split(resource: str) -> tuple[str, str]:
    """(plural, group) of a store key such as ``pods`` or ``deployments.apps``."""
    plural, _, group = resource.partition(".")
    return plural, group


def _listed(values: list[str] | None, value: str) -> bool:
    return bool(values) and ("*" in values or value in values)


def _resource_matches(patterns: list[str], plural: str, sub: str) -> bool:
    wanted = f"{plural}/{sub}" if sub else plural
    for pattern in patterns:
        if pattern in ("*/*", wanted) or (pattern == "*" and not sub):
            return True
        head, _, tail = pattern.partition("/")
        if tail and sub and ((head == plural and tail == "*") or (head == "*" and tail == sub)):
            return True
    return False


def _rule_matches(rule: Obj, operation: str, plural: str, group: str, version: str, sub: str,
                  namespaced: bool) -> bool:
    scope = rule.get("scope") or "*"
    if scope == "Namespaced" and not namespaced or scope == "Cluster" and namespaced:
        return False
    return (_listed(rule.get("operations"), operation) and _listed(rule.get("apiGroups"), group)
            and _listed(rule.get("apiVersions"), version)
            and _resource_matches(rule.get("resources") or [], plural, sub))


def _selected(selector: Obj | None, labels: dict[str, str] | None) -> bool:
    text = label_selector_string(selector or {})
    return not text or matches_labels(parse_label_selector(text), labels or {})


def _webhooks(store: KubeStore, verb: str, resource: str, new: Obj | None, old: Obj | None, sub: str) -> None:
    operation = _OPERATIONS.get(verb)
    if operation is None or resource in (MUTATING, VALIDATING):
        return
    plural, group = _split(resource)
    rtype = next((t for t in store.types() if t.key == resource), None)
    if rtype is None:
        return
    obj = new if new is not None else old or {}
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") if rtype.namespaced else None
    ns_labels = ((store.get_ref("namespaces", None, namespace) or {}).get("metadata") or {}).get("labels") \
        if namespace else None
    configs = store.list_page(MUTATING).items + store.list_page(VALIDATING).items      # mutating ones first
    for config in configs:
        for hook in config.get("webhooks") or []:
            if not any(_rule_matches(r, operation, plural, group, rtype.version, sub, rtype.namespaced)
                       for r in hook.get("rules") or []):
                continue
            if namespace is not None and not _selected(hook.get("namespaceSelector"), ns_labels):
                continue
            if not _selected(hook.get("objectSelector"), meta.get("labels")):
                continue
            error = _call(store, hook)
            if error is not None and (hook.get("failurePolicy") or "Fail") == "Fail":
                cause = f'failed calling webhook "{hook.get("name", "")}": {error}'
                raise KubeError(f"Internal error occurred: {cause}", causes=[{"message": cause}])


def _call(store: KubeStore, hook: Obj) -> str | None:
    """Why calling the webhook fails (no ready endpoint, no service), or None when it would be reached."""
    service = (hook.get("clientConfig") or {}).get("service")
    if not isinstance(service, dict):
        return None
    name, namespace = service.get("name", ""), service.get("namespace", "")
    path = service.get("path") or ""
    url = (f'Post "https://{name}.{namespace}.svc:{service.get("port", 443)}{path}'
           f'?timeout={hook.get("timeoutSeconds", 10)}s"')
    svc = store.get_ref("services", namespace, name)
    if svc is None:
        return f'failed to call webhook: {url}: service "{name}" not found'
    selector = (svc.get("spec") or {}).get("selector") or {}
    if selector and any(_ready(p) for p in store.list_page("pods", namespace, _equality(selector)).items):
        return None
    return f'failed to call webhook: {url}: no endpoints available for service "{name}"'


def _equality(selector: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
