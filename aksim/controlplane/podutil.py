"""Pod helpers shared by the controllers: quantities, requests, conditions (ready time, availability),
container states and the pod-template hash."""
from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from aksim.controlplane.base import now_rfc3339, parse_time

Obj = dict[str, Any]

_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
            "E": 1e18}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def quantity(value: Any) -> float:
    """A Kubernetes resource quantity (``100m``, ``1.5``, ``64Mi``, ``1e3``) as a number."""
    return _quantity(str(value).strip())


@functools.lru_cache(maxsize=1024)
def _quantity(value: str) -> float:
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    number, suffix = match.groups()
    scale = _BINARY.get(suffix) or _DECIMAL.get(suffix)
    if scale is None:
        raise ValueError(f"unknown quantity suffix in {value!r}")
    return float(number) * scale


def milli_cpu(value: Any) -> int:
    return math.ceil(quantity(value) * 1000 - 1e-9)


def memory_bytes(value: Any) -> int:
    return math.ceil(quantity(value) - 1e-9)


DEFAULT_MILLI_CPU = 100                      # what the scheduler's scoring assumes for a container without requests
DEFAULT_MEMORY = 200 * 1024 * 1024


class Requests(NamedTuple):
    """What the scheduler accounts for a pod; ``scored_*`` count unset requests as 100m / 200Mi (scoring)."""
    cpu: int
    memory: int
    scored_cpu: int
    scored_memory: int


@functools.lru_cache(maxsize=4096)
def _requests(cpu: Any, memory: Any) -> Requests:
    milli = milli_cpu(cpu) if cpu is not None else 0
    size = memory_bytes(memory) if memory is not None else 0
    return Requests(milli, size, milli or DEFAULT_MILLI_CPU, size or DEFAULT_MEMORY)


def _container_requests(container: Obj) -> Requests:
    """A container's requests; one set only as a limit requests the limit (API defaulting)."""
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    cpu, memory = requests.get("cpu"), requests.get("memory")
    return _requests(limits.get("cpu") if cpu is None else cpu, limits.get("memory") if memory is None else memory)


def pod_requests(pod: Obj) -> Requests:
    """Containers summed, the init containers' maximum, plus overhead."""
    spec = pod.get("spec") or {}
    containers = [_container_requests(c) for c in spec.get("containers") or ()]
    total = containers[0] if len(containers) == 1 else Requests(*map(sum, zip(*containers))) if containers \
        else Requests(0, 0, 0, 0)
    for container in spec.get("initContainers") or ():
        total = Requests(*map(max, zip(total, _container_requests(container))))
    overhead = spec.get("overhead")
    if overhead:
        extra = _requests(overhead.get("cpu"), overhead.get("memory"))
        total = Requests(total.cpu + extra.cpu, total.memory + extra.memory, total.scored_cpu + extra.cpu,
                         total.scored_memory + extra.memory)
    return total


def key_of(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace') or ''}/{meta['name']}"


def split_key(key: str) -> tuple[str, str]:
    namespace, name = key.split("/", 1)
    return namespace, name


def is_terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_active(pod: Obj) -> bool:
    return not is_terminated(pod) and not pod["metadata"].get("deletionTimestamp")


def condition(obj: Obj, kind: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def ready_time(pod: Obj) -> datetime | None:
    """podReadyTime: when a ready pod became ready; None (zero) when not ready or not recorded."""
    cond = condition(pod, "Ready")
    if not cond or cond.get("status") != "True" or not cond.get("lastTransitionTime"):
        return None
    return parse_time(cond["lastTransitionTime"])


def until_available(pod: Obj, min_ready: int, now: datetime) -> float | None:
    """IsPodAvailable for a ready pod: 0 once it has been ready longer than ``minReadySeconds``, else the seconds
    left (None when its ready time is missing, so it never counts)."""
    if min_ready <= 0:
        return 0.0
    since = ready_time(pod)
    if since is None:
        return None
    left = (since + timedelta(seconds=min_ready) - now).total_seconds()
    return 0.0 if left < 0 else max(left, 0.001)


def set_condition(obj: Obj, kind: str, status: str, reason: str | None = None, message: str | None = None,
                  **extra: str) -> None:
    """Set a condition; ``lastTransitionTime`` only moves when the status does (as on a real server)."""
    conditions = obj.setdefault("status", {}).setdefault("conditions", [])
    current = next((c for c in conditions if c.get("type") == kind), None)
    changed = current is None or current.get("status") != status
    new: Obj = {"type": kind, "status": status, **extra}
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    new["lastTransitionTime"] = now_rfc3339() if changed or current is None else current.get("lastTransitionTime")
    new["lastProbeTime"] = None
    if current is None:
        conditions.append(new)
    else:
        current.clear()
        current.update(new)


def controller_of(obj: Obj) -> Obj | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_reference(owner: Obj) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def container_id(pod: Obj, container: str, prefix: str = "containerd") -> str:
    digest = hashlib.sha256(f"{pod['metadata'].get('uid')}/{container}".encode()).hexdigest()
    return f"{prefix}://{digest}"


def image_id(image: str) -> str:
    return f"{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def template_hash(template: Obj) -> str:
    """controller.ComputeHash: FNV-32a of the template, rendered with rand.SafeEncodeString."""
    value = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True, separators=(",", ":")).encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHANUMS[ord(c) % len(_SAFE_ALPHANUMS)] for c in str(value))


def _running_status(pod: Obj, container: Obj, started: str, restarts: int, prefix: str) -> Obj:
    image = container.get("image", "")
    return {"name": container["name"], "image": image, "imageID": image_id(image),
            "containerID": container_id(pod, container["name"], prefix), "ready": True, "started": True,
            "restartCount": restarts, "state": {"running": {"startedAt": started}}, "lastState": {}}


def mark_running(pod: Obj, pod_ip: str, host_ip: str, *, runtime: str = "containerd") -> None:
    """Init containers completed, every container running and ready: phase Running, conditions True, IPs set."""
    now = now_rfc3339()
    status = pod.setdefault("status", {})
    previous = {c["name"]: c for c in status.get("containerStatuses") or []}
    containers = pod["spec"]["containers"]
    statuses = []
    for container in containers:
        old = previous.get(container["name"], {})
        new = _running_status(pod, container, now, old.get("restartCount", 0), runtime)
        if old.get("lastState"):
            new["lastState"] = old["lastState"]
        statuses.append(new)
    status.update(phase="Running", podIP=pod_ip, podIPs=[{"ip": pod_ip}], hostIP=host_ip,
                  hostIPs=[{"ip": host_ip}], containerStatuses=statuses)
    init = pod["spec"].get("initContainers") or []
    if init:
        status["initContainerStatuses"] = [
            {**_running_status(pod, c, now, 0, runtime), "ready": True, "started": False,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}}
            for c in init]
    status.setdefault("startTime", now)
    status.setdefault("qosClass", qos_class(pod))
    status.pop("reason", None)
    status.pop("message", None)
    for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"):
        set_condition(pod, kind, "True")


def qos_class(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all({"cpu", "memory"} <= set(r.get("limits") or {})
                     and all((r.get("requests") or {}).get(k, r["limits"][k]) == r["limits"][k]
                             for k in ("cpu", "memory")) for r in resources)
    return "Guaranteed" if guaranteed else "Burstable"


def upsert_node(store: Any, desired: Obj) -> None:
    """Register ``desired`` (a kubelet's node object), or refresh an existing node's labels, spec and status as a
    kubelet does on restart (taints other than the kubelet's own are the kubelet's to set: they are replaced)."""
    name = desired["metadata"]["name"]
    if store.get_ref("nodes", None, name) is None:
        store.create("nodes", desired)
        return

    def apply(node: Obj) -> None:
        node["metadata"].setdefault("labels", {}).update(desired["metadata"]["labels"])
        node["spec"] = {**{k: v for k, v in (node.get("spec") or {}).items() if k != "taints"}, **desired["spec"]}
        node["status"] = desired["status"]
    store.mutate("nodes", None, name, apply)
