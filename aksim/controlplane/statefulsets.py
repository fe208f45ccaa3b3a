"""StatefulSet controller (pkg/controller/statefulset), the parts VN2 relies on.

Pods are named ``<set>-<ordinal>`` and labelled ``statefulset.kubernetes.io/pod-name``,
``apps.kubernetes.io/pod-index`` and ``controller-revision-hash``. ``podManagementPolicy: Parallel`` creates
every missing ordinal at once and deletes surplus ones together; ``OrderedReady`` creates one ordinal at a
time once the lower ones are Running and Ready. Scale-down removes the highest ordinals first; a deleted pod
is created again under the same name. Pod creation goes through admission (:mod:`aksim.kube.admission`), so a
missing PriorityClass gives a ``FailedCreate`` event and no pod; the controller retries with its rate
limiter's back-off. ``status`` carries replicas, readyReplicas, currentReplicas, updatedReplicas,
availableReplicas, currentRevision/updateRevision and observedGeneration. Not modelled: rolling updates of a
changed template (pods keep running their old template), PVC templates, ControllerRevision objects.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from aksim.controlplane import events
from aksim.controlplane.backoff import Backoff
from aksim.controlplane.podutil import (Obj, controller_of, is_active, is_ready, owner_reference, split_key,
                                        template_hash)
from aksim.controlplane.base import WorkQueue
from aksim.kube import admission
from aksim.kube.store import DELETED, AlreadyExists, KubeError, clone

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime

RESOURCE = "statefulsets.apps"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
COMPONENT = "statefulset-controller"


def ordinal_of(set_name: str, pod_name: str) -> int | None:
    prefix = f"{set_name}-"
    if not pod_name.startswith(prefix) or not pod_name[len(prefix):].isdigit():
        return None
    return int(pod_name[len(prefix):])


class StatefulSets:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp
        self._queue: WorkQueue[str] = WorkQueue(cp, lambda: cp.timings.controller, self._sync)
        self._failures: dict[str, Backoff] = {}

    # -- events ---------------------------------------------------------------------------------------
    def on_statefulset(self, event_type: str, obj: Obj) -> None:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        if event_type == DELETED:
            self._queue.discard(key)
            self._failures.pop(key, None)
            return
        self._queue.add(key)

    def on_pod(self, pod: Obj) -> None:
        owner = controller_of(pod)
        if owner and owner.get("kind") == "StatefulSet":
            self._queue.add(f"{pod['metadata']['namespace']}/{owner['name']}")

    def on_priority_class(self) -> None:
        """A PriorityClass appeared: sets that failed to create pods try again now."""
        for key in list(self._failures):
            self._queue.add(key)

    # -- reconcile ------------------------------------------------------------------------------------
    def _pods(self, sts: Obj) -> dict[int, Obj]:
        namespace, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        owned: dict[int, Obj] = {}
        for pod in self.cp.store.list_page("pods", namespace).items:
            ref = controller_of(pod)
            ordinal = ordinal_of(name, pod["metadata"]["name"])
            if ref and ref.get("uid") == sts["metadata"]["uid"] and ordinal is not None:
                owned[ordinal] = pod
        return owned

    def _sync(self, key: str) -> None:
        namespace, name = split_key(key)
        sts = self.cp.store.get_ref(RESOURCE, namespace, name)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        spec = sts.get("spec") or {}
        replicas = spec.get("replicas", 1)
        parallel = spec.get("podManagementPolicy") == "Parallel"
        pods = self._pods(sts)
        revision = f"{name}-{template_hash(spec.get('template') or {})}"
        failed = False
        for ordinal in range(replicas):
            if ordinal in pods:
                continue
            if not parallel and any(not (is_active(p) and is_ready(p)) for o, p in pods.items() if o < ordinal):
                break
            if not self._create(sts, ordinal, revision):
                failed = True
                break
            if not parallel:
                break
        surplus = sorted((o for o in pods if o >= replicas), reverse=True)
        for ordinal in surplus if parallel else surplus[:1]:
            victim = pods[ordinal]
            if victim["metadata"].get("deletionTimestamp"):
                continue
            self.cp.store.delete("pods", namespace, victim["metadata"]["name"])
            events.record(self.cp, sts, "SuccessfulDelete", f"delete Pod {victim['metadata']['name']} in "
                          f"StatefulSet {name} successful", component=COMPONENT)
        if failed:
            delay = self._failures.setdefault(key, Backoff()).next_delay(self.cp.timings.backoff_scale / 2)
            self.cp.later(delay, lambda: self._queue.add(key))
        else:
            self._failures.pop(key, None)
        self._update_status(sts, revision)

    def _create(self, sts: Obj, ordinal: int, revision: str) -> bool:
        meta, spec = sts["metadata"], sts.get("spec") or {}
        template = spec.get("template") or {}
        pod_name = f"{meta['name']}-{ordinal}"
        pod_meta = clone(template.get("metadata") or {})
        pod_meta.pop("generateName", None)
        pod_meta.update(name=pod_name, namespace=meta["namespace"], ownerReferences=[owner_reference(sts)])
        pod_meta.setdefault("labels", {}).update({POD_NAME_LABEL: pod_name, POD_INDEX_LABEL: str(ordinal),
                                                  REVISION_LABEL: revision})
        pod_spec = clone(template.get("spec") or {})
        pod_spec.setdefault("hostname", pod_name)
        if spec.get("serviceName"):
            pod_spec.setdefault("subdomain", spec["serviceName"])
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}
        try:
            admission.admit(self.cp.store, "create", "pods", pod, None)
            self.cp.store.create("pods", pod)
        except AlreadyExists:
            return True
        except KubeError as err:
            events.record(self.cp, sts, "FailedCreate", f"create Pod {pod_name} in StatefulSet {meta['name']} "
                          f"failed error: {err.message}", type_=events.WARNING, component=COMPONENT)
            return False
        events.record(self.cp, sts, "SuccessfulCreate", f"create Pod {pod_name} in StatefulSet {meta['name']} "
                      f"successful", component=COMPONENT)
        return True

    def _update_status(self, sts: Obj, revision: str) -> None:
        meta = sts["metadata"]
        pods = [p for p in self._pods(sts).values() if is_active(p)]
        ready = sum(1 for p in pods if is_ready(p))
        current = sum(1 for p in pods if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision)
        status = {"observedGeneration": meta.get("generation", 1), "replicas": len(pods), "readyReplicas": ready,
                  "currentReplicas": current, "updatedReplicas": current, "availableReplicas": ready,
                  "currentRevision": revision, "updateRevision": revision, "collisionCount": 0}
        if not ready:
            status.pop("readyReplicas")
        if (sts.get("status") or {}) == status:
            return
        self.cp.store.mutate(RESOURCE, meta["namespace"], meta["name"], lambda o: o.update(status=status))
