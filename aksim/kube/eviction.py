"""``pods/eviction`` (policy/v1 Eviction): delete a pod unless a PodDisruptionBudget forbids it.

The disruption controller's arithmetic, evaluated at request time (aksim keeps no PDB status): for each PDB
in the pod's namespace whose selector matches the pod, the matching pods are ``expected``, the Ready ones
``healthy``; ``minAvailable`` (a count or a percentage of ``expected``, rounded up) or ``maxUnavailable``
gives the healthy pods the budget needs. A Ready pod may go only if ``healthy - needed >= 1``; otherwise 429
TooManyRequests with Kubernetes' own message. Evicting a pod that is not Ready is always allowed (the
``IfHealthyBudget`` default lets unhealthy pods go once the budget holds; aksim is at least as strict for
healthy ones). Several matching PDBs: the API server refuses (500), as the real one does.
"""
from __future__ import annotations

import math
from typing import Any

from .selectors import matches_labels, parse_label_selector, label_selector_string
from .store import KubeError, KubeStore, Obj, ResourceType, not_found


class TooManyRequests(KubeError):
    status, reason = 429, "TooManyRequests"


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _count(value: Any, expected: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(expected * int(value[:-1]) / 100)
    return int(value)


def budgets_for(store: KubeStore, pod: Obj) -> list[Obj]:
    namespace = pod["metadata"].get("namespace")
    labels = pod["metadata"].get("labels") or {}
    out = []
    for pdb in store.list("poddisruptionbudgets.policy", namespace):
        selector = label_selector_string((pdb.get("spec") or {}).get("selector"))
        if selector and matches_labels(parse_label_selector(selector), labels):
            out.append(pdb)
    return out


def evict(store: KubeStore, rtype: ResourceType, namespace: str, name: str, delete: Any) -> None:
    """Evict pod ``namespace/name``: ``delete()`` it, or raise (404 / 429 / 500)."""
    with store.lock:
        pod = store.get("pods", namespace, name)
        if pod is None:
            raise not_found(rtype, name)
        budgets = budgets_for(store, pod)
        if len(budgets) > 1:
            raise KubeError("This pod has more than one PodDisruptionBudget, which the eviction subresource does "
                            "not support.")
        if budgets and _ready(pod) and not pod["metadata"].get("deletionTimestamp"):
            pdb = budgets[0]
            spec = pdb.get("spec") or {}
            selector = label_selector_string(spec.get("selector"))
            matching = [p for p in store.list("pods", namespace, selector)
                        if not p["metadata"].get("deletionTimestamp")]
            expected, healthy = len(matching), sum(1 for p in matching if _ready(p))
            if spec.get("minAvailable") is not None:
                needed = _count(spec["minAvailable"], expected)
            else:
                needed = expected - _count(spec.get("maxUnavailable", 0), expected)
            if healthy - needed < 1:
                err = TooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.",
                                      causes=[{"reason": "DisruptionBudget",
                                               "message": f"The disruption budget {pdb['metadata']['name']} needs "
                                                          f"{needed} healthy pods and has {healthy} currently"}])
                raise err
        delete()
