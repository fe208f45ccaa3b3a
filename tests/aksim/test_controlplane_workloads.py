"""Deployments, the scheduler and kubelets in a live simulator, and pods becoming ACI container groups."""
from __future__ import annotations

import time
from typing import Any

from controlplane_harness import DOCS_POD_SPEC, NODE_RG_ID, VNET_ID, VNODE, Harness, scenario

from aksim.arm import containerinstance, network
from aksim.sim import Simulator

SUBNET_ID = f"{VNET_ID}/subnets/vn"
BURST_SPEC = {"tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
              "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                  {"weight": 1, "preference": {"matchExpressions": [
                      {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]}}]}}}


def reasons(h: Harness, name: str) -> list[str]:
    return [e["reason"] for e in h.events("default", name)]


def on_virtual(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in pods if p["spec"]["nodeName"] == VNODE]


def test_deployment_rollout_scale_and_template_change(simulator: Simulator) -> None:
    h = Harness(simulator, scenario(addon=None))
    h.deployment("web", 3)
    pods = h.running("web", 3)
    rs = h.list("replicasets.apps", "default")
    assert len(rs) == 1
    rs_name, template_hash = rs[0]["metadata"]["name"], rs[0]["metadata"]["labels"]["pod-template-hash"]
    assert rs_name == f"web-{template_hash}" and rs[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    nodes = {n["metadata"]["name"]: n for n in h.list("nodes")}
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"{rs_name}-") and len(pod["metadata"]["name"]) == len(rs_name) + 6
        assert pod["metadata"]["labels"]["pod-template-hash"] == template_hash
        assert pod["metadata"]["ownerReferences"][0]["name"] == rs_name
        host = nodes[pod["spec"]["nodeName"]]["status"]["addresses"][0]["address"]
        assert pod["status"]["hostIP"] == host and pod["status"]["podIP"].startswith("10.")
        assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
        assert pod["status"]["containerStatuses"][0]["state"]["running"]
        assert reasons(h, pod["metadata"]["name"]) == ["Scheduled", "Pulled", "Created", "Started"]
    assert len({p["status"]["podIP"] for p in pods}) == 3
    assert len({p["spec"]["nodeName"] for p in pods}) == 3                # least allocated spreads them

    def available(replicas: int) -> dict[str, Any] | None:
        d = h.store.get("deployments.apps", "default", "web")
        conditions = {c["type"]: c for c in d["status"].get("conditions", [])}
        ok = (d["status"].get("availableReplicas", 0) == replicas == d["status"].get("readyReplicas", 0)
              and d["status"]["observedGeneration"] == d["metadata"]["generation"]
              and conditions.get("Available", {}).get("status") == "True"
              and conditions.get("Progressing", {}).get("reason") == "NewReplicaSetAvailable")
        return d if ok else None
    h.until(lambda: available(3), what="deployment available")

    h.scale("web", 5)
    h.running("web", 5)
    h.until(lambda: available(5), what="scaled up")
    h.scale("web", 1)
    h.running("web", 1)
    h.until(lambda: available(1), what="scaled down")

    h.locked(lambda: h.store.mutate("deployments.apps", "default", "web", lambda d: d["spec"]["template"]["spec"][
        "containers"][0].update(image="nginx:1.27")))

    def rolled_out() -> list:
        pods = h.store.list("pods", "default", "app=web")
        new = [p for p in pods if p["spec"]["containers"][0]["image"] == "nginx:1.27"
               and p["status"].get("phase") == "Running"]
        return new if new and len(pods) == 1 else []
    new = h.until(rolled_out, what="rolled out")
    assert new
    sets = {r["metadata"]["name"]: r for r in h.list("replicasets.apps", "default")}
    assert sets[rs_name]["spec"]["replicas"] == 0 and len(sets) == 2
    d = h.until(lambda: available(1), what="new revision available")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


def test_unschedulable_pods_report_why_and_retry_when_something_changes(simulator: Simulator) -> None:
    h = Harness(simulator, scenario(addon=None))
    h.deployment("aci", 1, DOCS_POD_SPEC)
    h.deployment("big", 3, cpu="1500m")
    h.running("big", 3)
    h.deployment("extra", 1, cpu="1500m")

    def failed(app: str) -> dict[str, Any] | None:
        pods = h.store.list("pods", "default", f"app={app}")
        cond = next((c for c in pods[0]["status"].get("conditions", []) if c["type"] == "PodScheduled"), None) \
            if pods else None
        return cond if cond and cond["status"] == "False" else None
    assert h.until(lambda: failed("aci"))["message"] == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are "
        "available: 3 Preemption is not helpful for scheduling.")
    cond = h.until(lambda: failed("extra"))
    assert cond["reason"] == "Unschedulable" and cond["message"] == (
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims "
        "found for incoming pod.")
    pod = h.pods("extra")[0]
    warning = [e for e in h.events("default", pod["metadata"]["name"]) if e["reason"] == "FailedScheduling"][0]
    assert warning["type"] == "Warning" and warning["source"]["component"] == "default-scheduler"
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]

    h.scale("big", 2)                                   # capacity frees up: the pending pod is retried
    h.running("extra", 1)
    h.set_addon("vn")                                   # a new (virtual) node: the docs pod lands there
    assert h.running("aci", 1)[0]["spec"]["nodeName"] == VNODE


def test_burst_pattern_fills_vm_nodes_first_and_scales_down_the_virtual_node_first(simulator: Simulator) -> None:
    h = Harness(simulator, scenario())
    h.virtual_node()
    h.deployment("burst", 9, BURST_SPEC, cpu="900m")
    pods = h.running("burst", 9)
    vm = [p for p in pods if p["spec"]["nodeName"] != VNODE]
    assert len(vm) == 5 and len(on_virtual(pods)) == 4      # 2 per VM node (1 beside the connector), rest on ACI
    assert all(p["status"]["podIP"].startswith("10.241.0.") for p in on_virtual(pods))

    vm_uids = {p["metadata"]["uid"] for p in vm}
    h.scale("burst", 7)                                 # 4 co-located on the virtual node rank before 2 per VM
    left = h.running("burst", 7)
    assert len(on_virtual(left)) == 2 and vm_uids <= {p["metadata"]["uid"] for p in left}
    h.scale("burst", 9)
    assert len(on_virtual(h.running("burst", 9))) == 4
    h.scale("burst", 5)
    assert {p["metadata"]["uid"] for p in h.running("burst", 5)} == vm_uids
    h.until(lambda: containerinstance.groups_in(h.world, NODE_RG_ID) == [], what="container groups deleted")


def test_pods_on_the_virtual_node_become_container_groups(simulator: Simulator) -> None:
    h = Harness(simulator, scenario())
    h.virtual_node()
    connector_ip = h.connector_pod()["status"]["podIP"]
    h.deployment("aci-helloworld", 1, DOCS_POD_SPEC)
    pod = h.running("aci-helloworld", 1)[0]
    name = pod["metadata"]["name"]
    (group,) = h.locked(lambda: containerinstance.groups_in(h.world, NODE_RG_ID))
    assert group["name"] == f"default-{name}"
    assert group["tags"]["NodeName"] == VNODE and group["tags"]["PodName"] == name
    assert group["properties"]["ipAddress"]["ip"] == pod["status"]["podIP"]
    assert pod["status"]["podIP"].startswith("10.241.0.") and pod["status"]["hostIP"] == connector_ip
    assert pod["status"]["containerStatuses"][0]["containerID"].startswith("aci://")
    success = [e for e in h.events("default", name) if e["reason"] == "ProviderCreateSuccess"][0]
    assert success["message"] == "Create pod in provider successfully"
    assert success["source"]["component"] == f"{VNODE}/pod-controller"
    subnet = h.locked(lambda: h.world.arm.get(SUBNET_ID))
    assert subnet["properties"]["serviceAssociationLinks"]
    free = h.locked(lambda: network.subnet_ip_available(h.world, SUBNET_ID))

    h.scale("aci-helloworld", 0)
    h.until(lambda: containerinstance.groups_in(h.world, NODE_RG_ID) == [], what="group deleted with its pod")
    assert h.locked(lambda: network.subnet_ip_available(h.world, SUBNET_ID)) == free + 1
    assert h.locked(lambda: h.world.arm.get(SUBNET_ID))["properties"]["serviceAssociationLinks"]   # link stays


def test_full_subnet_and_unpullable_images_fail_in_the_provider_without_retry(simulator: Simulator) -> None:
    raw = scenario(subnets=[{"name": "vn", "prefix": "10.241.0.0/29"}], unpullable_images=[r"myregistry\.azurecr\.io/"])
    h = Harness(simulator, raw)
    h.virtual_node()
    h.deployment("many", 4, DOCS_POD_SPEC)

    def provider_failed(app: str) -> list[dict[str, Any]]:
        return [p for p in h.store.list("pods", "default", f"app={app}")
                if p["status"].get("reason") == "ProviderFailed"]
    (failed,) = h.until(lambda: provider_failed("many"), what="one pod without an address")
    assert failed["status"]["phase"] == "Pending"
    assert 'Code="SubnetIsFull"' in failed["status"]["message"]
    assert len([p for p in h.pods("many") if p["status"].get("phase") == "Running"]) == 3
    (event,) = [e for e in h.events("default", failed["metadata"]["name"]) if e["reason"] == "ProviderCreateFailed"]
    assert event["type"] == "Warning" and event["source"]["component"] == f"{VNODE}/pod-controller"
    assert event["message"] == failed["status"]["message"]

    h.locked(lambda: h.store.create("pods", {"metadata": {"name": "private", "namespace": "default",
                                                          "labels": {"app": "private"}},
                                             "spec": {**DOCS_POD_SPEC, "restartPolicy": "Never", "containers": [
                                                 {"name": "app", "image": "myregistry.azurecr.io/app:1"}]}}))
    (private,) = h.until(lambda: provider_failed("private"), what="inaccessible image")
    assert private["status"]["phase"] == "Failed"
    assert "Code=\"InaccessibleImage\"" in private["status"]["message"]
    assert "The image 'myregistry.azurecr.io/app:1' in container group 'default-private' is not accessible" in \
        private["status"]["message"]

    time.sleep(3 * h.sim.timings.aci_create)            # never retried
    assert len(provider_failed("many")) == 1
    assert [e["count"] for e in h.events("default", failed["metadata"]["name"])
            if e["reason"] == "ProviderCreateFailed"] == [1]
    assert len(h.locked(lambda: containerinstance.groups_in(h.world, NODE_RG_ID))) == 3


def test_a_pod_edited_to_tolerate_the_taint_is_scheduled_again(simulator: Simulator) -> None:
    h = Harness(simulator, scenario())
    h.virtual_node()
    spec = {"nodeSelector": {"type": "virtual-kubelet"}, "containers": [{"name": "app", "image": "nginx"}]}
    h.locked(lambda: h.store.create("pods", {"metadata": {"name": "shy", "namespace": "default"}, "spec": spec}))
    cond = h.until(lambda: next((c for c in h.store.get("pods", "default", "shy")["status"].get("conditions", [])
                                 if c["type"] == "PodScheduled" and c["status"] == "False"), None))
    assert cond["message"] == (
        "0/4 nodes are available: 1 node(s) had untolerated taint {virtual-kubelet.io/provider: azure}, 3 node(s) "
        "didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not "
        "helpful for scheduling.")
    h.locked(lambda: h.store.mutate("pods", "default", "shy", lambda p: p["spec"].update(
        tolerations=[{"key": "virtual-kubelet.io/provider", "operator": "Exists"}])))
    pod = h.until(lambda: (p := h.store.get("pods", "default", "shy"))["status"].get("phase") == "Running" and p)
    assert pod["spec"]["nodeName"] == VNODE


# -- rollouts -----------------------------------------------------------------------------------------------
class Rollout:
    """Watches one app's pods and Deployment at every store commit (subscribers run as each write commits, so
    no intermediate state is missed): the fewest ready and the most active pods, whether pods of the old and
    the new image ever lived together, and the Deployment's statuses."""

    def __init__(self, h: Harness, app: str, old_image: str) -> None:
        self.h, self.app, self.old_image = h, app, old_image
        self.pods: dict[str, dict[str, Any]] = {}
        self.min_ready, self.max_active, self.mixed = 10 ** 6, 0, False
        self.statuses: list[dict[str, Any]] = []

        def start() -> None:
            for pod in h.store.list("pods", "default", f"app={app}"):
                self.pods[pod["metadata"]["name"]] = pod
            h.store.subscribe(self.on_event)
        h.locked(start)

    def on_event(self, event_type: str, resource: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if resource == "deployments.apps" and meta["name"] == self.app:
            self.statuses.append(dict(obj.get("status") or {}))
            return
        if resource != "pods" or (meta.get("labels") or {}).get("app") != self.app:
            return
        if event_type == "DELETED" or obj["status"].get("phase") in ("Succeeded", "Failed"):
            self.pods.pop(meta["name"], None)
        else:
            self.pods[meta["name"]] = obj
        ready = [p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]
        self.min_ready = min(self.min_ready, len(ready))
        self.max_active = max(self.max_active, len(self.pods))
        images = {p["spec"]["containers"][0]["image"] == self.old_image for p in self.pods.values()}
        self.mixed = self.mixed or len(images) == 2

    def stop(self) -> None:
        self.h.locked(lambda: self.h.store.unsubscribe(self.on_event))


def set_image(h: Harness, name: str, image: str) -> None:
    h.locked(lambda: h.store.mutate("deployments.apps", "default", name, lambda d: d["spec"]["template"]["spec"][
        "containers"][0].update(image=image)))


def rolled_out(h: Harness, name: str, replicas: int, image: str) -> dict[str, Any] | None:
    """The Deployment once every pod runs ``image``, ready, and its status says the rollout is complete."""
    pods = h.store.list("pods", "default", f"app={name}")
    d = h.store.get("deployments.apps", "default", name)
    status = d.get("status") or {}
    progressing = next((c for c in status.get("conditions", []) if c["type"] == "Progressing"), {})
    done = (len(pods) == replicas and all(p["spec"]["containers"][0]["image"] == image and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []) for p in pods)
            and status.get("observedGeneration") == d["metadata"]["generation"]
            and status.get("updatedReplicas") == status.get("replicas") == status.get("availableReplicas") == replicas
            and progressing.get("reason") == "NewReplicaSetAvailable")
    return d if done else None


def scaling_events(h: Harness, name: str) -> list[str]:
    return [e["message"] for e in sorted(h.events("default", name), key=lambda e: e["metadata"]["creationTimestamp"])
            if e["reason"] == "ScalingReplicaSet"]


def replicasets(h: Harness) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["labels"]["pod-template-hash"]: r for r in h.list("replicasets.apps", "default")}


def test_rolling_update_keeps_max_unavailable_and_max_surge(simulator: Simulator) -> None:
    h = Harness(simulator, scenario(addon=None))
    h.deployment("web", 6, image="nginx:1.26", spec={"strategy": {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}})
    h.until(lambda: rolled_out(h, "web", 6, "nginx:1.26"), what="first rollout")
    (old_hash, old_rs), = replicasets(h).items()
    assert old_rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "7"
    rollout = Rollout(h, "web", "nginx:1.26")
    set_image(h, "web", "nginx:1.27")
    d = h.until(lambda: rolled_out(h, "web", 6, "nginx:1.27"), timeout=15, what="rolled out")
    rollout.stop()

    assert rollout.min_ready == 5 and rollout.max_active == 7 and rollout.mixed
    assert min(s.get("availableReplicas", 0) for s in rollout.statuses) >= 5
    assert max(s.get("replicas", 0) for s in rollout.statuses) <= 7
    assert any(s.get("updatedReplicas", 0) not in (0, 6) for s in rollout.statuses)     # in between, for a while
    sets = replicasets(h)
    new_hash = next(k for k in sets if k != old_hash)
    assert sets[old_hash]["spec"]["replicas"] == 0 and sets[new_hash]["spec"]["replicas"] == 6
    assert sets[new_hash]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    messages = scaling_events(h, "web")
    assert messages[:3] == [f"Scaled up replica set web-{old_hash} from 0 to 6",
                            f"Scaled up replica set web-{new_hash} from 0 to 1",
                            f"Scaled down replica set web-{old_hash} to 5 from 6"]
    assert messages[-1].startswith(f"Scaled down replica set web-{old_hash} to 0 from ")
    assert any(m.startswith(f"Scaled up replica set web-{new_hash} to 6 from ") for m in messages)


def test_default_strategy_keeps_three_of_four_available(simulator: Simulator) -> None:
    h = Harness(simulator, scenario(addon=None))
    d = h.deployment("web", 4, image="nginx:1.26")
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    h.until(lambda: rolled_out(h, "web", 4, "nginx:1.26"), what="first rollout")
    rollout = Rollout(h, "web", "nginx:1.26")
    set_image(h, "web", "nginx:1.27")
    h.until(lambda: rolled_out(h, "web", 4, "nginx:1.27"), timeout=15, what="rolled out")
    rollout.stop()
    assert rollout.min_ready == 3 and rollout.max_active == 5 and rollout.mixed


def test_recreate_starts_new_pods_only_when_the_old_ones_are_gone(simulator: Simulator) -> None:
    h = Harness(simulator, scenario(addon=None))
    h.deployment("web", 3, image="nginx:1.26", spec={"strategy": {"type": "Recreate"}})
    h.until(lambda: rolled_out(h, "web", 3, "nginx:1.26"), what="first rollout")
    (old_hash, _), = replicasets(h).items()
    rollout = Rollout(h, "web", "nginx:1.26")
    set_image(h, "web", "nginx:1.27")
    h.until(lambda: rolled_out(h, "web", 3, "nginx:1.27"), timeout=15, what="rolled out")
    rollout.stop()
    assert not rollout.mixed and rollout.min_ready == 0 and rollout.max_active == 3
    new_hash = next(k for k in replicasets(h) if k != old_hash)
    assert scaling_events(h, "web")[1:] == [f"Scaled down replica set web-{old_hash} to 0 from 3",
                                            f"Scaled up replica set web-{new_hash} from 0 to 3"]
    assert any(s.get("availableReplicas", 0) == 0 and s.get("replicas", 0) == 0 for s in rollout.statuses)


def test_a_stuck_rollout_keeps_the_old_pods_scales_proportionally_and_times_out(simulator: Simulator) -> None:
    """The example of the Kubernetes documentation ("Proportional scaling"): 10 replicas, maxSurge 3,
    maxUnavailable 2, a new template whose pods cannot start; scaling to 15 gives 3 more to the old ReplicaSet
    and 2 to the new one. The rollout then exceeds its progress deadline."""
    h = Harness(simulator, scenario(addon=None))
    h.deployment("web", 10, image="nginx:1.26", spec={"progressDeadlineSeconds": 2, "strategy": {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}})
    h.until(lambda: rolled_out(h, "web", 10, "nginx:1.26"), what="first rollout")
    (old_hash, _), = replicasets(h).items()
    h.locked(lambda: h.store.mutate("deployments.apps", "default", "web", lambda d: d["spec"]["template"][
        "spec"].update(nodeSelector={"disk": "none-has-it"})))

    def stuck(old: int, new: int) -> dict[str, Any] | None:
        sets = {r["metadata"]["labels"]["pod-template-hash"]: r["spec"]["replicas"]
                for r in h.store.list("replicasets.apps", "default")}
        pods = h.store.list("pods", "default", "app=web")
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        ok = sets.pop(old_hash) == old and list(sets.values()) == [new] and len(pods) == old + new \
            and len(running) == old
        return h.store.get("deployments.apps", "default", "web") if ok else None
    h.until(lambda: stuck(8, 5), what="old 8, new 5")
    time.sleep(0.2)
    d = h.until(lambda: stuck(8, 5), what="still old 8, new 5")
    assert d["status"]["availableReplicas"] == 8 and d["status"]["updatedReplicas"] == 5
    assert {c["type"]: c["status"] for c in d["status"]["conditions"]}["Available"] == "True"

    h.scale("web", 15)
    d = h.until(lambda: stuck(11, 7), what="scaled in proportion")
    new_hash = next(k for k in replicasets(h) if k != old_hash)
    assert scaling_events(h, "web")[-2:] == [f"Scaled up replica set web-{old_hash} to 11 from 8",
                                             f"Scaled up replica set web-{new_hash} to 7 from 5"]

    def timed_out() -> dict[str, Any] | None:
        d = h.store.get("deployments.apps", "default", "web")
        cond = {c["type"]: c for c in d["status"]["conditions"]}["Progressing"]
        return cond if cond["reason"] == "ProgressDeadlineExceeded" else None
    cond = h.until(timed_out, timeout=10, what="progress deadline exceeded")
    assert cond["status"] == "False" and cond["message"] == f'ReplicaSet "web-{new_hash}" has timed out progressing.'
    assert stuck(11, 7)


def test_min_ready_seconds_delays_availability(simulator: Simulator) -> None:
    h = Harness(simulator, scenario(addon=None))
    rollout = Rollout(h, "web", "nginx:1.26")
    h.deployment("web", 2, image="nginx:1.26", spec={"minReadySeconds": 2})
    started = time.monotonic()
    h.until(lambda: rolled_out(h, "web", 2, "nginx:1.26"), timeout=10, what="available after minReadySeconds")
    rollout.stop()
    assert time.monotonic() - started > 1
    assert any(s.get("readyReplicas") == 2 and not s.get("availableReplicas") for s in rollout.statuses)
    rs = next(iter(replicasets(h).values()))
    assert rs["spec"]["minReadySeconds"] == 2 and rs["status"]["availableReplicas"] == 2


def test_paused_rollout_waits_and_a_rollback_takes_the_next_revision(simulator: Simulator) -> None:
    h = Harness(simulator, scenario(addon=None))
    h.deployment("web", 2, image="nginx:1.26")
    h.until(lambda: rolled_out(h, "web", 2, "nginx:1.26"), what="first rollout")
    (first_hash, _), = replicasets(h).items()

    def progressing() -> dict[str, Any]:
        d = h.store.get("deployments.apps", "default", "web")
        return {c["type"]: c for c in d["status"]["conditions"]}["Progressing"]
    h.locked(lambda: h.store.mutate("deployments.apps", "default", "web", lambda d: d["spec"].update(paused=True)))
    cond = h.until(lambda: (c := progressing())["reason"] == "DeploymentPaused" and c, what="paused")
    assert cond["status"] == "Unknown" and cond["message"] == "Deployment is paused"
    set_image(h, "web", "nginx:1.27")
    time.sleep(0.3)
    assert list(replicasets(h)) == [first_hash]                 # no new ReplicaSet while paused
    h.scale("web", 3)                                           # a paused Deployment still scales
    pods = h.running("web", 3)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.26"}
    assert h.locked(progressing)["reason"] == "DeploymentPaused"

    h.locked(lambda: h.store.mutate("deployments.apps", "default", "web", lambda d: d["spec"].update(paused=False)))
    d = h.until(lambda: rolled_out(h, "web", 3, "nginx:1.27"), timeout=15, what="resumed and rolled out")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"

    set_image(h, "web", "nginx:1.26")                           # kubectl rollout undo: the first template again
    d = h.until(lambda: rolled_out(h, "web", 3, "nginx:1.26"), timeout=15, what="rolled back")
    first = replicasets(h)[first_hash]
    assert len(replicasets(h)) == 2 and first["spec"]["replicas"] == 3
    assert {k: v for k, v in first["metadata"]["annotations"].items() if "revision" in k} == {
        "deployment.kubernetes.io/revision": "3", "deployment.kubernetes.io/revision-history": "1"}
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
