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
    new = h.until(lambda: [p for p in h.store.list("pods", "default", "app=web")
                           if p["spec"]["containers"][0]["image"] == "nginx:1.27"
                           and p["status"].get("phase") == "Running"] and len(h.store.list("pods", "default",
                                                                                            "app=web")) == 1,
                  what="rolled out")
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
