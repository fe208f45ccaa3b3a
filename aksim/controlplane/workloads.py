"""Deployment and ReplicaSet controllers.

A Deployment owns one ReplicaSet per pod template (``<deployment>-<pod-template-hash>``) and rolls a new
template out as kube-controller-manager does (``rolling.go``, ``recreate.go``, ``sync.go``): a RollingUpdate
scales the new ReplicaSet up while all replicas stay within ``replicas + maxSurge`` and the old ones down while
``replicas - maxUnavailable`` stay available (unhealthy old replicas first), one step per sync, the next one
when a ReplicaSet's status changes; a Recreate scales every old ReplicaSet to zero and creates (or scales up)
the new one only once no old pod is left. A change of ``spec.replicas`` (or a paused Deployment) only scales:
the one active ReplicaSet, or, mid-rollout, every active one in proportion. ReplicaSets create pods from their
template, delete in the real controller's order (``ActivePodsWithRanks``) when scaling down, and count a pod
available once it has been ready for ``minReadySeconds``. Both keep their ``status`` (and the Deployment its
Available/Progressing conditions, progress deadline included) current, so ``kubectl rollout status`` and
``kubectl wait --for=condition=available`` behave as on a real cluster.

This module holds the controllers' state, event handlers and store writes; the arithmetic is in
:mod:`aksim.controlplane.rollout`, the Deployment's conditions in :mod:`aksim.controlplane.deploymentstatus`
and the scale-down order in :mod:`aksim.controlplane.podranking`.
"""
from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from aksim.controlplane import events
from aksim.controlplane.base import WorkQueue, parse_time
from aksim.controlplane.deploymentstatus import (AVAILABLE, PROGRESSING, estimate_progress, find_condition,
                                                 has_deadline, is_complete, paused_condition,
                                                 set_deployment_condition, without_zeros)
from aksim.controlplane.podranking import deletion_order
from aksim.controlplane.podutil import (Obj, controller_of, is_active, is_ready, is_terminated, key_of,
                                        owner_reference, split_key, template_hash, until_available)
from aksim.controlplane.rollout import (DESIRED_REPLICAS, HASH_LABEL, MAX_INT32, MAX_REPLICAS, REVISION,
                                        active_or_latest, by_creation, by_revision, by_size, copy_annotations,
                                        count_replicas, filter_active, find_new, is_rolling, is_scaling_event,
                                        max_revision, max_surge, max_unavailable, new_rs_replicas, proportion,
                                        saturated, spec_replicas)
from aksim.kube.selectors import label_selector_string
from aksim.kube import admission
from aksim.kube.store import DELETED, KubeError, clone

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime

_COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")


def _owned_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == owner["metadata"]["uid"]


class Workloads:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp
        self._deployments: WorkQueue[str] = WorkQueue(cp, lambda: cp.timings.controller, self._sync_deployment)
        self._replicasets: WorkQueue[str] = WorkQueue(cp, lambda: cp.timings.controller, self._sync_replicaset)
        self._progress_checks: dict[str, float] = {}

    # -- events ---------------------------------------------------------------------------------------
    def on_workload(self, event_type: str, resource: str, obj: Obj) -> None:
        if resource == "deployments.apps":
            if event_type != DELETED:
                self._deployments.add(key_of(obj))
            return
        if event_type != DELETED:
            self._replicasets.add(key_of(obj))
        owner = controller_of(obj)
        if owner and owner.get("kind") == "Deployment":
            self._deployments.add(f"{obj['metadata']['namespace']}/{owner['name']}")

    def on_pod(self, event_type: str, pod: Obj) -> None:
        owner = controller_of(pod)
        if not owner or owner.get("kind") != "ReplicaSet":
            return
        namespace = pod["metadata"]["namespace"]
        self._replicasets.add(f"{namespace}/{owner['name']}")
        if event_type == DELETED:       # deletePod: a Recreate rollout waits for the old pods to be gone
            rs = self.cp.store.get_ref("replicasets.apps", namespace, owner["name"])
            deployment_ref = controller_of(rs) if rs else None
            if deployment_ref and deployment_ref.get("kind") == "Deployment":
                deployment = self.cp.store.get_ref("deployments.apps", namespace, deployment_ref["name"])
                if deployment and not is_rolling(deployment):
                    self._deployments.add(f"{namespace}/{deployment_ref['name']}")

    # -- ReplicaSet -----------------------------------------------------------------------------------
    def _active_pods(self, rs: Obj) -> list[Obj]:
        selector = label_selector_string(rs["spec"].get("selector"))
        pods = self.cp.store.list_page("pods", rs["metadata"]["namespace"], selector).items
        return [p for p in pods if _owned_by(p, rs) and is_active(p)]

    def _siblings(self, rs: Obj) -> list[Obj]:
        owner = controller_of(rs)
        if owner is None:
            return [rs]
        rses = self.cp.store.list_page("replicasets.apps", rs["metadata"]["namespace"]).items
        return [r for r in rses if (controller_of(r) or {}).get("uid") == owner.get("uid")]

    def _sync_replicaset(self, key: str) -> None:
        namespace, name = split_key(key)
        rs = self.cp.store.get_ref("replicasets.apps", namespace, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = self._active_pods(rs)
        diff = len(pods) - rs["spec"].get("replicas", 1)
        if diff < 0:
            for _ in range(-diff):
                self._create_pod(rs)
        elif diff > 0:
            related = [p for sibling in self._siblings(rs) for p in self._active_pods(sibling)]
            for victim in deletion_order(pods, related)[:diff]:
                self.cp.store.delete("pods", namespace, victim["metadata"]["name"])
                events.record(self.cp, rs, "SuccessfulDelete", f"Deleted pod: {victim['metadata']['name']}",
                              component="replicaset-controller")
        self._update_replicaset_status(rs)

    def _create_pod(self, rs: Obj) -> None:
        template = rs["spec"].get("template") or {}
        meta = clone(template.get("metadata") or {})
        meta.update(generateName=f"{rs['metadata']['name']}-", namespace=rs["metadata"]["namespace"],
                    ownerReferences=[owner_reference(rs)])
        meta.pop("name", None)
        pod = {"metadata": meta, "spec": clone(template.get("spec") or {})}
        try:
            admission.admit(self.cp.store, "create", "pods", pod, None)
        except KubeError as err:        # the API server refused it (PriorityClass missing, webhook failing)
            events.record(self.cp, rs, "FailedCreate", f"Error creating: {err.message}", type_=events.WARNING,
                          component="replicaset-controller")
            return
        pod = self.cp.store.create("pods", pod)
        events.record(self.cp, rs, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                      component="replicaset-controller")

    def _update_replicaset_status(self, rs: Obj) -> None:
        pods = self._active_pods(rs)
        ready = [p for p in pods if is_ready(p)]
        now = datetime.now(timezone.utc)
        waits = [until_available(p, rs["spec"].get("minReadySeconds") or 0, now) for p in ready]
        pending = [w for w in waits if w]
        if pending:                     # count them once they have been ready for minReadySeconds
            key = key_of(rs)
            self.cp.later(min(pending) + self.cp.timings.controller, lambda: self._replicasets.add(key))
        counts = {"fullyLabeledReplicas": len(pods), "readyReplicas": len(ready),
                  "availableReplicas": sum(1 for w in waits if w == 0),
                  "observedGeneration": rs["metadata"].get("generation", 1)}
        status = {"replicas": len(pods), **without_zeros(counts)}

        def apply(obj: Obj) -> None:
            obj["status"] = {**status, **{k: v for k, v in (obj.get("status") or {}).items()
                                          if k == "conditions"}}
        self.cp.store.mutate("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"], apply)

    # -- Deployment -----------------------------------------------------------------------------------
    def _sync_deployment(self, key: str) -> None:
        """syncDeployment: a paused Deployment, or one whose ``spec.replicas`` changed, only scales; otherwise its
        strategy rolls the pod template out."""
        namespace, name = split_key(key)
        deployment = self.cp.store.get_ref("deployments.apps", namespace, name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        rses = [r for r in self.cp.store.list_page("replicasets.apps", namespace).items
                if _owned_by(r, deployment)]
        new, olds = find_new(deployment, rses)
        if new is not None:
            new = self._sync_new_replicaset(deployment, new, olds)
        if deployment["spec"].get("paused") or is_scaling_event(deployment, olds + ([new] if new else [])):
            self._sync_scaling(deployment, new, olds)
        elif is_rolling(deployment):
            self._rollout_rolling(deployment, new, olds)
        else:
            self._rollout_recreate(deployment, new, olds)

    def _sync_scaling(self, deployment: Obj, new: Obj | None, olds: list[Obj]) -> None:
        """sync: size the ReplicaSets for ``spec.replicas`` without rolling out (nor creating a ReplicaSet)."""
        self._scale_deployment(deployment, new, olds)
        if deployment["spec"].get("paused"):
            self._cleanup(deployment, olds)
        self._update_deployment_status(deployment, new, progress=False)

    def _rollout_rolling(self, deployment: Obj, new: Obj | None, olds: list[Obj]) -> None:
        """rolloutRolling: scale the new ReplicaSet up as far as maxSurge allows, else the old ones down as far
        as maxUnavailable allows; one step per sync, the next one when a ReplicaSet's status changes."""
        created = new is None
        new = self._create_replicaset(deployment, olds) if new is None else new
        all_rses = olds + [new]
        if not self._reconcile_new(deployment, all_rses, new) and \
                not self._reconcile_old(deployment, all_rses, filter_active(olds), new) and \
                is_complete(deployment, deployment.get("status") or {}):
            self._cleanup(deployment, olds)
        self._update_deployment_status(deployment, new, progress=True, created=created)

    def _reconcile_new(self, deployment: Obj, all_rses: list[Obj], new: Obj) -> bool:
        replicas = spec_replicas(deployment)
        if spec_replicas(new) == replicas:
            return False
        if spec_replicas(new) > replicas:
            return self._scale_and_record(deployment, new, replicas)[0]
        return self._scale_and_record(deployment, new, new_rs_replicas(deployment, all_rses, spec_replicas(new)))[0]

    def _reconcile_old(self, deployment: Obj, all_rses: list[Obj], olds: list[Obj], new: Obj) -> bool:
        """reconcileOldReplicaSets: what may go keeps ``replicas - maxUnavailable`` available, counting the new
        ReplicaSet's not yet available replicas as unavailable; unhealthy old replicas go first."""
        if count_replicas(olds) == 0:
            return False
        min_available = spec_replicas(deployment) - max_unavailable(deployment)
        new_unavailable = spec_replicas(new) - (new.get("status") or {}).get("availableReplicas", 0)
        max_scaled_down = count_replicas(all_rses) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        cleaned = self._cleanup_unhealthy(deployment, olds, max_scaled_down)
        if cleaned is None:
            return False
        olds, count = cleaned
        return count + self._scale_down_old(deployment, olds + [new], olds) > 0

    def _cleanup_unhealthy(self, deployment: Obj, olds: list[Obj], limit: int) -> tuple[list[Obj], int] | None:
        """cleanupUnhealthyReplicas: old ReplicaSets (oldest first) lose their unavailable replicas, up to
        ``limit`` in all (their ReplicaSets delete not-ready pods first). None on a stale status, as the real
        controller's error."""
        result, total = [], 0
        for rs in by_creation(olds):
            unavailable = spec_replicas(rs) - (rs.get("status") or {}).get("availableReplicas", 0)
            if total < limit and spec_replicas(rs) > 0 and unavailable != 0:
                count = min(limit - total, unavailable)
                if count < 0:
                    return None
                rs = self._scale_and_record(deployment, rs, spec_replicas(rs) - count)[1]
                total += count
            result.append(rs)
        return result, total

    def _scale_down_old(self, deployment: Obj, all_rses: list[Obj], olds: list[Obj]) -> int:
        """scaleDownOldReplicaSetsForRollingUpdate: old ReplicaSets (oldest first) shrink by what is available
        beyond ``replicas - maxUnavailable``."""
        min_available = spec_replicas(deployment) - max_unavailable(deployment)
        budget = count_replicas(all_rses, "availableReplicas") - min_available
        total = 0
        for rs in by_creation(olds):
            if total >= budget:
                break
            if spec_replicas(rs) == 0:
                continue
            count = min(spec_replicas(rs), budget - total)
            self._scale_and_record(deployment, rs, spec_replicas(rs) - count)
            total += count
        return total

    def _rollout_recreate(self, deployment: Obj, new: Obj | None, olds: list[Obj]) -> None:
        """rolloutRecreate: every old ReplicaSet to zero; the new one is created (or scaled up) only once no pod
        of an old one is left."""
        scaled = False
        for index, rs in enumerate(olds):
            if spec_replicas(rs) > 0:
                done, olds[index] = self._scale_and_record(deployment, rs, 0)
                scaled = scaled or done
        if scaled or self._old_pods_running(deployment, new, olds):
            self._update_deployment_status(deployment, new, progress=True)
            return
        created = new is None
        new = self._create_replicaset(deployment, olds) if new is None else new
        self._scale_and_record(deployment, new, spec_replicas(deployment))
        if is_complete(deployment, deployment.get("status") or {}):
            self._cleanup(deployment, olds)
        self._update_deployment_status(deployment, new, progress=True, created=created)

    def _old_pods_running(self, deployment: Obj, new: Obj | None, olds: list[Obj]) -> bool:
        """oldPodsRunning: an old ReplicaSet still reports pods, or owns a pod not Succeeded/Failed (a
        terminating one included)."""
        if count_replicas(olds, "replicas") > 0:
            return True
        uids = {r["metadata"]["uid"] for r in olds} - ({new["metadata"]["uid"]} if new else set())
        selector = label_selector_string(deployment["spec"].get("selector"))
        pods = self.cp.store.list_page("pods", deployment["metadata"]["namespace"], selector).items
        return any((controller_of(p) or {}).get("uid") in uids and not is_terminated(p) for p in pods)

    def _scale_deployment(self, deployment: Obj, new: Obj | None, olds: list[Obj]) -> None:
        """scale: the only active ReplicaSet takes ``spec.replicas``; during a rollout a saturated new one makes
        the old ones go, else (rolling update) every active one scales in proportion."""
        target = active_or_latest(new, olds)
        if target is not None:
            self._scale_and_record(deployment, target, spec_replicas(deployment))
        elif saturated(deployment, new):
            for rs in filter_active(olds):
                self._scale_and_record(deployment, rs, 0)
        elif is_rolling(deployment):
            self._scale_proportionally(deployment, filter_active(olds + ([new] if new else [])))

    def _scale_proportionally(self, deployment: Obj, active: list[Obj]) -> None:
        """The replicas a scaling adds (or removes) mid-rollout, shared by the active ReplicaSets in proportion to
        their size (max-replicas); the largest takes the rounding leftover."""
        replicas = spec_replicas(deployment)
        allowed = replicas + max_surge(deployment) if replicas > 0 else 0
        to_add = allowed - count_replicas(active)
        direction = "up" if to_add > 0 else "down"
        active = by_size(active, newer_first=to_add > 0)
        sizes, added = [], 0
        for rs in active:
            share = proportion(deployment, rs, to_add, added)
            sizes.append(spec_replicas(rs) + share)
            added += share
        if active and to_add:
            sizes[0] = max(0, sizes[0] + to_add - added)
        for rs, size in zip(active, sizes):
            self._scale(deployment, rs, size, direction)

    def _cleanup(self, deployment: Obj, olds: list[Obj]) -> None:
        """cleanupDeployment: old ReplicaSets beyond revisionHistoryLimit go, the lowest revisions first, once
        they are scaled to zero."""
        limit = deployment["spec"].get("revisionHistoryLimit")
        if limit is None or limit == MAX_INT32:
            return
        alive = [r for r in olds if not r["metadata"].get("deletionTimestamp")]
        for rs in by_revision(alive)[:max(0, len(alive) - limit)]:
            status = rs.get("status") or {}
            if status.get("replicas", 0) or spec_replicas(rs) or \
                    rs["metadata"].get("generation", 1) > status.get("observedGeneration", 0):
                continue
            self.cp.store.delete("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"])

    # -- Deployment: ReplicaSet writes ----------------------------------------------------------------
    def _sync_new_replicaset(self, deployment: Obj, rs: Obj, olds: list[Obj]) -> Obj:
        """getNewReplicaSet for an existing one: annotations, revision (above every old one) and
        minReadySeconds follow the Deployment."""
        annotations = dict(rs["metadata"].get("annotations") or {})
        changed = copy_annotations(deployment, annotations, max_revision(olds) + 1)
        min_ready = deployment["spec"].get("minReadySeconds", 0)
        if not changed and rs["spec"].get("minReadySeconds", 0) == min_ready:
            return rs

        def apply(obj: Obj) -> None:
            obj["metadata"]["annotations"] = annotations
            obj["spec"]["minReadySeconds"] = min_ready
        return self.cp.store.mutate("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"], apply)

    def _create_replicaset(self, deployment: Obj, olds: list[Obj]) -> Obj:
        spec = deployment["spec"]
        template_key = template_hash(spec.get("template") or {})
        template = clone(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = template_key
        selector = clone(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = template_key
        replicas = new_rs_replicas(deployment, olds, 0)
        annotations: dict[str, str] = {}
        copy_annotations(deployment, annotations, max_revision(olds) + 1)
        annotations.update({DESIRED_REPLICAS: str(spec_replicas(deployment)),
                            MAX_REPLICAS: str(spec_replicas(deployment) + max_surge(deployment))})
        name = f"{deployment['metadata']['name']}-{template_key}"
        rs = self.cp.store.create("replicasets.apps", {
            "metadata": {"name": name, "namespace": deployment["metadata"]["namespace"],
                         "labels": dict(template["metadata"]["labels"]), "annotations": annotations,
                         "ownerReferences": [owner_reference(deployment)]},
            "spec": {"replicas": replicas, "minReadySeconds": spec.get("minReadySeconds", 0), "selector": selector,
                     "template": template}})
        if replicas > 0:
            events.record(self.cp, deployment, "ScalingReplicaSet",
                          f"Scaled up replica set {name} from 0 to {replicas}", component="deployment-controller")
        return rs

    def _scale_and_record(self, deployment: Obj, rs: Obj, replicas: int) -> tuple[bool, Obj]:
        """scaleReplicaSetAndRecordEvent: nothing to do when the size is right already."""
        if spec_replicas(rs) == replicas:
            return False, rs
        return self._scale(deployment, rs, replicas)

    def _scale(self, deployment: Obj, rs: Obj, replicas: int, direction: str = "") -> tuple[bool, Obj]:
        """scaleReplicaSet: the size and the desired/max-replicas annotations; True when the size changed."""
        before = spec_replicas(rs)
        desired = str(spec_replicas(deployment))
        maximum = str(spec_replicas(deployment) + max_surge(deployment))
        annotations = rs["metadata"].get("annotations") or {}
        if before == replicas and annotations.get(DESIRED_REPLICAS) == desired and \
                annotations.get(MAX_REPLICAS) == maximum:
            return False, rs

        def apply(obj: Obj) -> None:
            obj["spec"]["replicas"] = replicas
            obj["metadata"].setdefault("annotations", {}).update({DESIRED_REPLICAS: desired, MAX_REPLICAS: maximum})
        scaled = self.cp.store.mutate("replicasets.apps", rs["metadata"]["namespace"], rs["metadata"]["name"], apply)
        if before != replicas:
            direction = direction or ("up" if replicas > before else "down")
            events.record(self.cp, deployment, "ScalingReplicaSet",
                          f"Scaled {direction} replica set {rs['metadata']['name']} to {replicas} from {before}",
                          component="deployment-controller")
        return before != replicas, scaled

    # -- Deployment: status ---------------------------------------------------------------------------
    def _update_deployment_status(self, deployment: Obj, new: Obj | None, *, progress: bool,
                                  created: bool = False) -> None:
        """calculateStatus plus, in a rollout, syncRolloutStatus' Progressing condition; a status that stays
        the same is checked again when its progress deadline passes (requeueStuckDeployment)."""
        namespace = deployment["metadata"]["namespace"]
        rses = [r for r in self.cp.store.list_page("replicasets.apps", namespace).items if _owned_by(r, deployment)]
        current = next((r for r in rses if new is not None and r["metadata"]["uid"] == new["metadata"]["uid"]), None)
        available = count_replicas(rses, "availableReplicas")
        counts = {"observedGeneration": deployment["metadata"].get("generation", 1),
                  "replicas": count_replicas(rses, "replicas"),
                  "updatedReplicas": count_replicas([current] if current else [], "replicas"),
                  "readyReplicas": count_replicas(rses, "readyReplicas"), "availableReplicas": available,
                  "unavailableReplicas": max(0, count_replicas(rses) - available)}
        rs_name = current["metadata"]["name"] if current else None
        revision = (current["metadata"].get("annotations") or {}).get(REVISION) if current else None

        def apply(obj: Obj) -> None:
            status, spec = obj.setdefault("status", {}), obj["spec"]
            before = {field: status.get(field, 0) for field in _COUNTS}
            if has_deadline(spec):
                paused_condition(status, spec)
                if created:
                    set_deployment_condition(status, PROGRESSING, "True", "NewReplicaSetCreated",
                                             f'Created new replica set "{rs_name}"')
                elif rs_name and find_condition(status, PROGRESSING) is None:
                    set_deployment_condition(status, PROGRESSING, "True", "FoundNewReplicaSet",
                                             f'Found new replica set "{rs_name}"')
            for field in _COUNTS:
                status.pop(field, None)
            status.update(without_zeros(counts))
            if available >= spec_replicas(obj) - max_unavailable(obj):
                set_deployment_condition(status, AVAILABLE, "True", "MinimumReplicasAvailable",
                                         "Deployment has minimum availability.")
            else:
                set_deployment_condition(status, AVAILABLE, "False", "MinimumReplicasUnavailable",
                                         "Deployment does not have minimum availability.")
            if progress:
                estimate_progress(obj, before, rs_name)
            if revision:
                obj["metadata"].setdefault("annotations", {})[REVISION] = revision
        updated = self.cp.store.mutate("deployments.apps", namespace, deployment["metadata"]["name"], apply)
        if progress and updated["metadata"]["resourceVersion"] == deployment["metadata"]["resourceVersion"]:
            self._requeue_stuck(updated)

    def _requeue_stuck(self, deployment: Obj) -> None:
        """A rollout without progress is synced again once its Progressing condition's lastUpdateTime plus
        progressDeadlineSeconds has passed (and a second), to time it out."""
        spec, status = deployment["spec"], deployment.get("status") or {}
        cond = find_condition(status, PROGRESSING)
        if not has_deadline(spec) or cond is None or is_complete(deployment, status) \
                or cond.get("reason") == "ProgressDeadlineExceeded":
            return
        since = parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return
        key, due = key_of(deployment), since.timestamp() + spec["progressDeadlineSeconds"]
        if self._progress_checks.get(key, math.inf) <= due:
            return
        self._progress_checks[key] = due

        def check() -> None:
            if self._progress_checks.get(key) == due:
                del self._progress_checks[key]
            self._deployments.add(key)
        self.cp.later(max(0.0, due - time.time()) + 1.0, check)
