"""core/v1 Events as client-go's recorder writes them: a repeat of the same event bumps ``count``."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aksim.controlplane.base import now_rfc3339
from aksim.kube.store import KubeError

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime

NORMAL, WARNING = "Normal", "Warning"


def involved(obj: dict[str, Any], field_path: str = "") -> dict[str, Any]:
    meta = obj["metadata"]
    ref = {"kind": obj.get("kind", ""), "name": meta["name"], "uid": meta.get("uid", ""),
           "apiVersion": obj.get("apiVersion", "v1"), "resourceVersion": meta.get("resourceVersion", "")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    if field_path:
        ref["fieldPath"] = field_path
    return ref


def record(cp: "Runtime", obj: dict[str, Any], reason: str, message: str, *, type_: str = NORMAL,
           component: str, host: str = "", field_path: str = "") -> None:
    """Record an event about ``obj`` in its namespace (``default`` for cluster-scoped objects)."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    key = (namespace, meta.get("uid", meta["name"]), field_path, reason, message, type_, component, host)
    now = now_rfc3339()
    name = cp.event_index.get(key)
    if name is not None and cp.store.get_ref("events", namespace, name) is not None:
        cp.store.mutate("events", namespace, name, lambda ev: ev.update(count=ev.get("count", 1) + 1,
                                                                        lastTimestamp=now))
        return
    source = {"component": component, **({"host": host} if host else {})}
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": namespace},
             "involvedObject": involved(obj, field_path), "reason": reason, "message": message, "type": type_,
             "source": source, "firstTimestamp": now, "lastTimestamp": now, "count": 1, "eventTime": None,
             "reportingComponent": component, "reportingInstance": host}
    try:
        cp.store.create("events", event)
    except KubeError:           # the namespace is being deleted: nobody will read this event
        return
    cp.event_index[key] = event["metadata"]["name"]


def container_started(cp: "Runtime", pod: dict[str, Any], container: dict[str, Any], host: str) -> None:
    """The kubelet's events for one container (re)start."""
    path = f"spec.containers{{{container['name']}}}"
    record(cp, pod, "Pulled", f'Container image "{container.get("image", "")}" already present on machine',
           component="kubelet", host=host, field_path=path)
    record(cp, pod, "Created", f"Created container {container['name']}", component="kubelet", host=host,
           field_path=path)
    record(cp, pod, "Started", f"Started container {container['name']}", component="kubelet", host=host,
           field_path=path)
