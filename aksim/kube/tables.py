"""Server-side printing: ``meta.k8s.io/v1`` Tables with the columns of kubernetes/pkg/printers/internalversion.

Like a real server, rows always carry the wide (priority 1) cells; kubectl hides them unless ``-o wide``.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable, Iterable

from .selectors import label_selector_string
from .store import Obj, ResourceType

Column = tuple[str, str, int]          # name, type, priority
Printer = Callable[[Obj, float], list[Any]]

_NAME_DOC = ("Name must be unique within a namespace. Is required when creating resources, although some "
             "resources may allow a client to request the generation of an appropriate name automatically.")
_AGE_DOC = ("CreationTimestamp is a timestamp representing the server time when this object was created. "
            "It is represented in RFC3339 form and is in UTC.")


def table(rtype: ResourceType, objects: Iterable[Obj], *, include_object: str = "Metadata",
          list_meta: dict[str, Any] | None = None, now: float | None = None) -> dict[str, Any]:
    columns, printer = PRINTERS.get(rtype.key, (_DEFAULT_COLUMNS, _print_default))
    now = time.time() if now is None else now
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": [_column(name, kind, priority) for name, kind, priority in columns],
        "rows": [{"cells": printer(obj, now), "object": _row_object(obj, include_object)} for obj in objects],
    }


def _column(name: str, kind: str, priority: int) -> dict[str, Any]:
    description = {"Name": _NAME_DOC, "Age": _AGE_DOC}.get(name, name)
    return {"name": name, "type": kind, "format": "name" if name == "Name" else "", "description": description,
            "priority": priority}


def _row_object(obj: Obj, include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return partial_metadata(obj)


def partial_metadata(obj: Obj) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


# ------------------------------------------------------------------------------------------- time

def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        return f"{minutes}m{secs % 60}s" if secs % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def since(value: str | None, now: float) -> str:
    ts = parse_time(value)
    return "<unknown>" if ts is None else human_duration(now - ts)


def _age(obj: Obj, now: float) -> str:
    return since(obj["metadata"].get("creationTimestamp"), now)


def _name(obj: Obj) -> str:
    return obj["metadata"]["name"]


def _format_labels(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


# ------------------------------------------------------------------------------------------- printers

_DEFAULT_COLUMNS: list[Column] = [("Name", "string", 0), ("Created At", "date", 0)]


def _print_default(obj: Obj, _now: float) -> list[Any]:
    return [_name(obj), obj["metadata"].get("creationTimestamp")]


def _print_node(obj: Obj, now: float) -> list[Any]:
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    states = [] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    states = states or ["Unknown"]
    if (obj.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    return [_name(obj), ",".join(states), ",".join(node_roles(obj)) or "<none>", _age(obj, now),
            info.get("kubeletVersion", ""), _node_address(status, "InternalIP"), _node_address(status, "ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def node_roles(node: Obj) -> list[str]:
    roles = set()
    for key, value in (node["metadata"].get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/"):]:
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def _node_address(status: Obj, kind: str) -> str:
    return next((a.get("address", "") for a in status.get("addresses") or [] if a.get("type") == kind), "<none>")


def _print_pod(obj: Obj, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    reason, ready, restarts, last_restart = pod_status(obj)
    restart_text = str(restarts)
    if last_restart is not None:
        restart_text += f" ({human_duration(now - last_restart)} ago)"
    gates = spec.get("readinessGates") or []
    gate_text = "<none>"
    if gates:
        true_types = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
        gate_text = f"{sum(1 for g in gates if g.get('conditionType') in true_types)}/{len(gates)}"
    return [_name(obj), f"{ready}/{len(spec.get('containers') or [])}", reason, restart_text, _age(obj, now),
            status.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", gate_text]


def pod_status(pod: Obj) -> tuple[str, int, int, float | None]:
    """(STATUS column, ready containers, restarts, last restart time) as kubectl's printPod computes them."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
           for c in status.get("conditions") or []):
        reason = "SchedulingGated"
    restarts, ready, last_restart = 0, 0, None
    init_reason = _init_status(spec, status)
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if init_reason is not None:
        reason = init_reason
    if init_reason is None or initialized:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = _latest(last_restart, (cs.get("lastState") or {}).get("terminated"))
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated:
                reason = (f"Signal:{terminated['signal']}" if terminated.get("signal")
                          else f"ExitCode:{terminated.get('exitCode', 0)}")
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
            reason = "Running" if pod_ready else "NotReady"
    if pod["metadata"].get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason, ready, restarts, last_restart


def _init_status(spec: Obj, status: Obj) -> str | None:
    total = len(spec.get("initContainers") or [])
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        state = cs.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and terminated.get("exitCode", 0) == 0:
            continue
        if terminated:
            if terminated.get("reason"):
                return "Init:" + terminated["reason"]
            return (f"Init:Signal:{terminated['signal']}" if terminated.get("signal")
                    else f"Init:ExitCode:{terminated.get('exitCode')}")
        if waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            return "Init:" + waiting["reason"]
        return f"Init:{i}/{total}"
    return None


def _latest(current: float | None, terminated: Obj | None) -> float | None:
    finished = parse_time((terminated or {}).get("finishedAt"))
    if finished is None:
        return current
    return finished if current is None or finished > current else current


def _containers(template_spec: Obj) -> tuple[str, str]:
    containers = template_spec.get("containers") or []
    return (",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers))


def _print_deployment(obj: Obj, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [_name(obj), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _age(obj, now), names, images,
            label_selector_string(spec.get("selector")) or "<none>"]


def _print_replicaset(obj: Obj, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [_name(obj), spec.get("replicas", 1), status.get("replicas", 0), status.get("readyReplicas", 0),
            _age(obj, now), names, images, label_selector_string(spec.get("selector")) or "<none>"]


def _print_daemonset(obj: Obj, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    template_spec = (spec.get("template") or {}).get("spec") or {}
    names, images = _containers(template_spec)
    return [_name(obj), status.get("desiredNumberScheduled", 0), status.get("currentNumberScheduled", 0),
            status.get("numberReady", 0), status.get("updatedNumberScheduled", 0),
            status.get("numberAvailable", 0), _format_labels(template_spec.get("nodeSelector")), _age(obj, now),
            names, images, label_selector_string(spec.get("selector")) or "<none>"]


def _print_event(obj: Obj, now: float) -> list[Any]:
    first = since(obj.get("firstTimestamp"), now)
    if not obj.get("firstTimestamp"):
        first = since(obj.get("eventTime"), now)
    last = since(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first
    count = obj.get("count") or 1
    if obj.get("series"):
        last = since(obj["series"].get("lastObservedTime"), now)
        count = obj["series"].get("count", count)
    involved = obj.get("involvedObject") or {}
    target = involved.get("kind", "").lower()
    if involved.get("name"):
        target += "/" + involved["name"]
    source = obj.get("source") or {}
    source_text = source.get("component") or obj.get("reportingComponent") or ""
    host = source.get("host") or obj.get("reportingInstance") or ""
    if host:
        source_text += ", " + host
    return [last, obj.get("type", ""), obj.get("reason", ""), target, involved.get("fieldPath", ""), source_text,
            (obj.get("message") or "").strip(), first, count, _name(obj)]


def _print_namespace(obj: Obj, now: float) -> list[Any]:
    return [_name(obj), (obj.get("status") or {}).get("phase", ""), _age(obj, now)]


def _print_lease(obj: Obj, now: float) -> list[Any]:
    return [_name(obj), (obj.get("spec") or {}).get("holderIdentity", ""), _age(obj, now)]


def _print_configmap(obj: Obj, now: float) -> list[Any]:
    return [_name(obj), len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), _age(obj, now)]


def _print_secret(obj: Obj, now: float) -> list[Any]:
    return [_name(obj), obj.get("type", ""), len(obj.get("data") or {}), _age(obj, now)]


def _print_service(obj: Obj, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    kind = spec.get("type") or "ClusterIP"
    external = ",".join(spec.get("externalIPs") or [])
    if kind == "LoadBalancer":
        ingress = [i.get("ip") or i.get("hostname", "") for i in (status.get("loadBalancer") or {}).get("ingress")
                   or []]
        external = ",".join(ingress + (spec.get("externalIPs") or [])) or "<pending>"
    elif kind == "ExternalName":
        external = spec.get("externalName", "")
    ports = ",".join(
        f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}" if p.get("nodePort")
        else f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    return [_name(obj), kind, spec.get("clusterIP") or "<none>", external or "<none>", ports or "<none>",
            _age(obj, now), _format_labels(spec.get("selector"))]


def _print_serviceaccount(obj: Obj, now: float) -> list[Any]:
    return [_name(obj), len(obj.get("secrets") or []), _age(obj, now)]


def _print_endpoints(obj: Obj, now: float) -> list[Any]:
    pairs = [f"{a.get('ip')}:{p.get('port')}" if subset.get("ports") else a.get("ip", "")
             for subset in obj.get("subsets") or [] for a in subset.get("addresses") or []
             for p in (subset.get("ports") or [{}])]
    text = ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")
    return [_name(obj), text or "<none>", _age(obj, now)]


def _print_binding(obj: Obj, now: float) -> list[Any]:
    role = obj.get("roleRef") or {}
    subjects = obj.get("subjects") or []

    def of(kind: str) -> str:
        return ",".join((f"{s.get('namespace')}/{s.get('name')}" if kind == "ServiceAccount" else s.get("name", ""))
                        for s in subjects if s.get("kind") == kind)

    return [_name(obj), f"{role.get('kind', '')}/{role.get('name', '')}", _age(obj, now), of("User"), of("Group"),
            of("ServiceAccount")]


def _print_statefulset(obj: Obj, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers((spec.get("template") or {}).get("spec") or {})
    return [_name(obj), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", _age(obj, now), names, images]


def _print_pdb(obj: Obj, now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [_name(obj), str(spec.get("minAvailable", "N/A")), str(spec.get("maxUnavailable", "N/A")),
            status.get("disruptionsAllowed", 0), _age(obj, now)]


def _print_webhooks(obj: Obj, now: float) -> list[Any]:
    return [_name(obj), len(obj.get("webhooks") or []), _age(obj, now)]


def _print_priority_class(obj: Obj, now: float) -> list[Any]:
    return [_name(obj), obj.get("value", 0), bool(obj.get("globalDefault", False)), _age(obj, now),
            obj.get("preemptionPolicy") or "PreemptLowerPriority"]


def _print_crd(obj: Obj, _now: float) -> list[Any]:
    return [_name(obj), obj["metadata"].get("creationTimestamp", "")]


def _print_revision(obj: Obj, now: float) -> list[Any]:
    owner = next(iter(obj["metadata"].get("ownerReferences") or []), None)
    controller = f"{owner.get('kind', '').lower()}.apps/{owner.get('name', '')}" if owner else "<none>"
    return [_name(obj), controller, obj.get("revision", 0), _age(obj, now)]


def _cols(*names: str, wide: tuple[str, ...] = (), types: dict[str, str] | None = None) -> list[Column]:
    types = types or {}
    return ([(n, types.get(n, "string"), 0) for n in names] + [(n, types.get(n, "string"), 1) for n in wide])


_INT = "integer"
PRINTERS: dict[str, tuple[list[Column], Printer]] = {
    "nodes": (_cols("Name", "Status", "Roles", "Age", "Version", wide=(
        "Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime")), _print_node),
    "pods": (_cols("Name", "Ready", "Status", "Restarts", "Age",
                   wide=("IP", "Node", "Nominated Node", "Readiness Gates")), _print_pod),
    "deployments.apps": (_cols("Name", "Ready", "Up-to-date", "Available", "Age",
                               wide=("Containers", "Images", "Selector"),
                               types={"Up-to-date": _INT, "Available": _INT}), _print_deployment),
    "replicasets.apps": (_cols("Name", "Desired", "Current", "Ready", "Age", wide=("Containers", "Images", "Selector"),
                               types={"Desired": _INT, "Current": _INT, "Ready": _INT}), _print_replicaset),
    "daemonsets.apps": (_cols("Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age",
                              wide=("Containers", "Images", "Selector"),
                              types={k: _INT for k in ("Desired", "Current", "Ready", "Up-to-date", "Available")}),
                        _print_daemonset),
    "events": ([("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0), ("Object", "string", 0),
                ("Subobject", "string", 1), ("Source", "string", 1), ("Message", "string", 0),
                ("First Seen", "string", 1), ("Count", _INT, 1), ("Name", "string", 1)], _print_event),
    "namespaces": (_cols("Name", "Status", "Age"), _print_namespace),
    "leases.coordination.k8s.io": (_cols("Name", "Holder", "Age"), _print_lease),
    "configmaps": (_cols("Name", "Data", "Age", types={"Data": _INT}), _print_configmap),
    "secrets": (_cols("Name", "Type", "Data", "Age", types={"Data": _INT}), _print_secret),
    "services": (_cols("Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", wide=("Selector",)),
                 _print_service),
    "serviceaccounts": (_cols("Name", "Secrets", "Age", types={"Secrets": _INT}), _print_serviceaccount),
    "endpoints": (_cols("Name", "Endpoints", "Age"), _print_endpoints),
    "rolebindings.rbac.authorization.k8s.io": (_cols("Name", "Role", "Age", wide=("Users", "Groups",
                                                                                  "ServiceAccounts")), _print_binding),
    "clusterrolebindings.rbac.authorization.k8s.io": (_cols("Name", "Role", "Age", wide=(
        "Users", "Groups", "ServiceAccounts")), _print_binding),
    "statefulsets.apps": (_cols("Name", "Ready", "Age", wide=("Containers", "Images")), _print_statefulset),
    "poddisruptionbudgets.policy": (_cols("Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age",
                                          types={"Allowed Disruptions": _INT}), _print_pdb),
    "mutatingwebhookconfigurations.admissionregistration.k8s.io": (
        _cols("Name", "Webhooks", "Age", types={"Webhooks": _INT}), _print_webhooks),
    "validatingwebhookconfigurations.admissionregistration.k8s.io": (
        _cols("Name", "Webhooks", "Age", types={"Webhooks": _INT}), _print_webhooks),
    "priorityclasses.scheduling.k8s.io": (_cols("Name", "Value", "Global-Default", "Age", "Preemption-Policy",
                                                types={"Value": _INT, "Global-Default": "boolean"}),
                                          _print_priority_class),
    "customresourcedefinitions.apiextensions.k8s.io": (_cols("Name", "Created At", types={"Created At": "date"}),
                                                       _print_crd),
    "controllerrevisions.apps": (_cols("Name", "Controller", "Revision", "Age", types={"Revision": _INT}),
                                 _print_revision),
}
