"""placement (fragment/merge/strip) and workload (pending reasons, orphans, ghosts): pure rules, no cluster."""
from __future__ import annotations

import copy
import json

import pytest

from azext_virtualnode.placement import (KINDS, MODES, PLACEMENT_ANNOTATION, PlacementError, merge_diff,
                                         parse_workload, plan, unsupported)
from azext_virtualnode.workload import (NODE_FULL, NODE_NOT_READY, SELECTOR_MISMATCH, TOLERATION_MISSING,
                                        PendingPod, VirtualNode, classify, ghost_nodes, orphaned_groups,
                                        pending_findings, place_command, problems)

PROVIDER = {"key": "virtual-kubelet.io/provider", "operator": "Exists"}
LEGACY = {"key": "azure.com/aci", "operator": "Exists", "effect": "NoSchedule"}
USER_TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
ADDON, V2 = MODES["addon"], MODES["v2"]
DEPLOY = KINDS["deployment"]


def deployment(spec_extra: dict | None = None, annotations: dict | None = None) -> dict:
    spec = {"containers": [{"name": "web", "image": "nginx"}], **(spec_extra or {})}
    meta = {"name": "web", "namespace": "shop", "resourceVersion": "42"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}}


def apply_merge_patch(target: dict, patch: dict) -> dict:
    """RFC 7386, as kube-apiserver applies application/merge-patch+json."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = apply_merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def run(obj: dict, policy: str, target=ADDON) -> tuple[dict, object]:
    p = plan(obj, DEPLOY, policy, target if policy != "off" else None)
    patch = p.merge_patch("42")
    return (apply_merge_patch(obj, patch) if patch else obj), p


def tspec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


# -- parse ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, kind, name", [("deployment/web", "deployment", "web"), ("deploy/web", "deployment",
                                              "web"), ("StatefulSet/db", "statefulset", "db"),
                                              ("cronjob/nightly", "cronjob", "nightly")])
def test_parse_workload(text, kind, name):
    k, n = parse_workload(text)
    assert (k.name, n) == (kind, name)


@pytest.mark.parametrize("text, expect", [("daemonset/agents", "DaemonSets never run on virtual nodes"),
                                          ("ds/agents", "DaemonSets never run on virtual nodes"),
                                          ("pod/x", "kind 'pod' is not supported"), ("web", "expects KIND/NAME"),
                                          ("deployment/", "expects KIND/NAME")])
def test_parse_workload_refuses(text, expect):
    with pytest.raises(PlacementError, match=expect):
        parse_workload(text)


# -- only / off / re-runs ---------------------------------------------------------------------------------
def test_only_adds_selector_and_tolerations_and_keeps_the_users():
    obj = deployment({"tolerations": [USER_TOLERATION], "nodeSelector": {"disk": "ssd"}})
    placed, p = run(obj, "only")
    spec = tspec(placed)
    assert spec["nodeSelector"] == {"disk": "ssd", "type": "virtual-kubelet", "kubernetes.io/os": "linux"}
    assert spec["tolerations"] == [USER_TOLERATION, PROVIDER, LEGACY]
    assert spec["containers"] == tspec(obj)["containers"]
    record = json.loads(placed["metadata"]["annotations"][PLACEMENT_ANNOTATION])
    assert record["policy"] == "only" and record["mode"] == "addon"
    assert record["nodeSelector"] == {"type": "virtual-kubelet", "kubernetes.io/os": "linux"}
    assert p.result(True)["added"]["tolerations"] == [PROVIDER, LEGACY]

    again, p2 = run(placed, "only")            # a re-run changes nothing: no patch at all
    assert not p2.changed and p2.merge_patch("1") is None and again == placed

    off, p3 = run(placed, "off")
    assert tspec(off)["nodeSelector"] == {"disk": "ssd"} and tspec(off)["tolerations"] == [USER_TOLERATION]
    assert PLACEMENT_ANNOTATION not in (off["metadata"].get("annotations") or {})
    assert p3.result(True)["removed"]["nodeSelector"] == {"type": "virtual-kubelet", "kubernetes.io/os": "linux"}
    _, p4 = run(off, "off")
    assert not p4.changed


def test_off_leaves_what_the_user_already_had_before_place():
    """A toleration or selector the workload had before place is not place's to remove."""
    obj = deployment({"tolerations": [PROVIDER], "nodeSelector": {"kubernetes.io/os": "linux"}})
    placed, _ = run(obj, "only")
    record = json.loads(placed["metadata"]["annotations"][PLACEMENT_ANNOTATION])
    assert record["tolerations"] == [LEGACY] and record["nodeSelector"] == {"type": "virtual-kubelet"}
    off, _ = run(placed, "off")
    assert tspec(off)["tolerations"] == [PROVIDER] and tspec(off)["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_off_without_place_changes_nothing_and_keeps_a_user_edit_of_a_managed_entry():
    obj = deployment({"tolerations": [USER_TOLERATION]})
    assert not plan(obj, DEPLOY, "off", None).changed
    placed, _ = run(obj, "only")
    tspec(placed)["nodeSelector"]["type"] = "gpu"           # the user changed one of ours since
    off, _ = run(placed, "off")
    assert tspec(off)["nodeSelector"] == {"type": "gpu"}


def test_only_refuses_a_contradicting_selector_or_required_affinity():
    with pytest.raises(PlacementError, match="kubernetes.io/os=windows, which contradicts"):
        plan(deployment({"nodeSelector": {"kubernetes.io/os": "windows"}}), DEPLOY, "only", ADDON)
    no_virtual = {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]},
        {"key": "kubernetes.azure.com/cluster", "operator": "Exists"}]}]}
    obj = deployment({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": no_virtual}}})
    with pytest.raises(PlacementError, match=r"requires nodes with type NotIn \['virtual-kubelet'\]"):
        plan(obj, DEPLOY, "only", ADDON)
    assert plan(obj, DEPLOY, "burst", ADDON).changed          # burst pods just stay on the regular nodes
    either = {"nodeSelectorTerms": no_virtual["nodeSelectorTerms"] + [{"matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["1"]}]}]}
    ok = deployment({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": either}}})
    assert plan(ok, DEPLOY, "only", ADDON).changed            # another term may still match the virtual node


# -- burst ------------------------------------------------------------------------------------------------
def test_burst_adds_tolerations_and_a_preferred_term_next_to_the_users_affinity():
    user_pref = {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In",
                                                                   "values": ["1"]}]}}
    required = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In",
                                                             "values": ["amd64"]}]}]}
    anti = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    obj = deployment({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [user_pref],
                                                    "requiredDuringSchedulingIgnoredDuringExecution": required},
                                   **anti}})
    placed, _ = run(obj, "burst")
    aff = tspec(placed)["affinity"]
    ours = {"weight": 100, "preference": {"matchExpressions": [
        {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]}}
    assert aff["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [user_pref, ours]
    assert aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == required
    assert aff["podAntiAffinity"] == anti["podAntiAffinity"]
    assert "nodeSelector" not in tspec(placed)
    assert tspec(placed)["tolerations"] == [PROVIDER, LEGACY]

    only, p = run(placed, "only")           # switching policy swaps the preference for the selector
    assert only["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"] == [user_pref]
    assert tspec(only)["tolerations"] == [PROVIDER, LEGACY]
    assert p.result(True)["added"]["tolerations"] == [] and p.result(True)["removed"]["preferred"] == [ours]
    off, _ = run(only, "off")
    assert tspec(off) == tspec(obj)


def test_burst_on_an_empty_spec_and_back_leaves_no_empty_affinity():
    obj = deployment()
    placed, _ = run(obj, "burst")
    off, _ = run(placed, "off")
    assert tspec(off) == tspec(obj)


# -- v2 and other kinds -----------------------------------------------------------------------------------
def test_v2_mode_entry_writes_the_v2_selector_and_toleration():
    placed, _ = run(deployment(), "only", V2)
    assert tspec(placed)["nodeSelector"] == {"virtualization": "virtualnode2", "kubernetes.io/os": "linux"}
    assert tspec(placed)["tolerations"] == [PROVIDER]
    burst, _ = run(deployment(), "burst", V2)
    assert tspec(burst)["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0][
        "preference"]["matchExpressions"] == [{"key": "virtualization", "operator": "NotIn",
                                               "values": ["virtualnode2"]}]
    assert unsupported({"initContainers": [{"name": "i"}]}, V2) == []


def test_cronjob_template_path_and_fragment():
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "ops"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}
    p = plan(cron, KINDS["cronjob"], "only", ADDON)
    frag = p.fragment(cron)
    assert frag["apiVersion"] == "batch/v1" and frag["kind"] == "CronJob" and frag["spec"]["schedule"] == "@daily"
    pod = frag["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["containers"] == [{"name": "c", "image": "busybox"}]
    assert pod["nodeSelector"]["type"] == "virtual-kubelet" and pod["tolerations"] == [PROVIDER, LEGACY]
    patch = p.merge_patch("7")
    assert patch["metadata"]["resourceVersion"] == "7"
    assert set(patch["spec"]["jobTemplate"]["spec"]["template"]["spec"]) == {"nodeSelector", "tolerations"}


def test_fragment_is_the_whole_workload_without_server_fields_and_nulls_emptied_fields():
    placed, _ = run(deployment(), "only")
    placed["status"] = {"replicas": 2}
    placed["metadata"].update(uid="u", generation=3, managedFields=[{}])
    placed["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    frag = plan(placed, DEPLOY, "off", None).fragment(placed)
    assert frag["spec"]["template"]["spec"] == {"containers": [{"name": "web", "image": "nginx"}],
                                                "nodeSelector": None, "tolerations": None}
    assert frag["metadata"] == {"name": "web", "namespace": "shop"} and "status" not in frag
    assert frag["spec"]["selector"] == {"matchLabels": {"app": "web"}} and frag["spec"]["replicas"] == 2


def test_merge_diff():
    assert merge_diff({"a": 1, "b": {"c": 1, "d": 2}, "l": [1]}, {"b": {"c": 1, "d": 3}, "l": [1, 2]}) == \
        {"a": None, "b": {"d": 3}, "l": [1, 2]}


def test_unsupported_lists_what_the_addon_cannot_run():
    spec = {"initContainers": [{"name": "migrate"}], "hostNetwork": True,
            "containers": [{"name": "app", "securityContext": {"privileged": True},
                            "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
                        {"name": "cfg", "configMap": {"name": "c"}}, {"name": "host", "hostPath": {"path": "/x"}}]}
    text = " | ".join(unsupported(spec, ADDON))
    for expect in ("init containers (migrate)", "hostNetwork", "'app' is privileged", "status.podIP",
                   "'data' is a persistentVolumeClaim", "'host' is a hostPath"):
        assert expect in text, text
    assert "'cfg'" not in text


# -- pending pods -----------------------------------------------------------------------------------------
def pending(spec: dict, message: str = "", owner: tuple[str, str] | None = ("ReplicaSet", "web-7d4b9"),
            labels: dict | None = None) -> dict:
    meta = {"name": "web-7d4b9-abcde", "namespace": "shop", "labels": labels or {"pod-template-hash": "7d4b9"}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    return {"metadata": meta, "spec": spec, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}}


V1_NODE = VirtualNode("virtual-node-aci-linux", {"type": "virtual-kubelet", "kubernetes.io/os": "linux",
                                                 "kubernetes.io/role": "agent"},
                      [{"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}], True)
V2_NODE = VirtualNode("virtualnode-0", {"virtualization": "virtualnode2", "kubernetes.io/os": "linux"},
                      [{"key": "virtual-kubelet.io/provider", "effect": "NoSchedule"}], True)
V1_SELECTOR = {"type": "virtual-kubelet", "kubernetes.io/os": "linux"}


def code(spec: dict, target=ADDON, nodes=(V1_NODE,), message: str = "") -> str:
    return classify(PendingPod.of(pending(spec, message)), target, list(nodes)).code


def test_toleration_missing_and_the_old_key():
    finding = classify(PendingPod.of(pending({"nodeSelector": V1_SELECTOR, "tolerations": [
        {"key": "azure.com/aci", "effect": "NoSchedule"}]})), ADDON, [V1_NODE])
    assert finding.code == TOLERATION_MISSING and "tolerates only the old key azure.com/aci" in finding.detail
    assert code({"nodeSelector": V1_SELECTOR}) == TOLERATION_MISSING


def test_selector_mismatch_v1_selector_on_v2_and_back():
    v1_pod = {"nodeSelector": V1_SELECTOR, "tolerations": [PROVIDER]}
    assert code(v1_pod, V2, [V2_NODE]) == SELECTOR_MISMATCH
    finding = classify(PendingPod.of(pending({"nodeSelector": {"virtualization": "virtualnode2"},
                                              "tolerations": [PROVIDER]})), ADDON, [V1_NODE])
    assert finding.code == SELECTOR_MISMATCH and "Virtual Nodes v2" in finding.detail
    assert code(v1_pod, ADDON, []) == NODE_NOT_READY             # right selector, no node registered


def test_node_not_ready_and_full():
    pod = {"nodeSelector": V1_SELECTOR, "tolerations": [PROVIDER]}
    down = VirtualNode(V1_NODE.name, V1_NODE.labels, V1_NODE.taints, False)
    assert code(pod, nodes=[down]) == NODE_NOT_READY
    assert code(pod, message="0/4 nodes are available: 1 Too many pods, 3 node(s) didn't match Pod's node "
                "affinity/selector.") == NODE_FULL


def test_only_pods_that_target_the_virtual_node_are_reported_with_their_fix():
    pods = [pending({"nodeSelector": V1_SELECTOR, "tolerations": [{"key": "azure.com/aci",
                                                                   "effect": "NoSchedule"}]}),
            pending({"nodeSelector": {"disk": "ssd"}}),                                   # not ours
            pending({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "type", "operator": "In",
                                                             "values": ["virtual-kubelet"]}]}]}}}},
                    owner=("StatefulSet", "db"), labels={})]
    findings = pending_findings(pods, ADDON, [V1_NODE])
    assert [f.code for f in findings] == [TOLERATION_MISSING, TOLERATION_MISSING]
    ids = "-g rg -n c"
    assert place_command(ids, findings[0]) == ("az aks virtual-node place -g rg -n c --workload deployment/web "
                                               "--namespace shop --policy only")
    assert "--workload statefulset/db" in place_command(ids, findings[1])
    (problem,) = problems(findings, None, ids)
    assert problem.code == "PodsCannotSchedule" and "--workload deployment/web" in problem.hint
    assert findings[0].as_dict()["workload"] == "deployment/web"


# -- orphans and ghosts -----------------------------------------------------------------------------------
def test_orphaned_groups_are_those_of_the_node_without_a_pod():
    def group(name, pod, node="virtual-node-aci-linux"):
        return {"name": name, "id": f"/x/{name}", "tags": {"NodeName": node, "Namespace": "shop", "PodName": pod}}
    groups = [group("shop-a", "a"), group("shop-b", "b"), group("shop-c", "c", node="other-node"),
              {"name": "manual", "id": "/x/manual", "tags": {}}]
    orphans = orphaned_groups(groups, "virtual-node-aci-linux", {("shop", "a")})
    assert [o["name"] for o in orphans] == ["shop-b"] and orphans[0]["podName"] == "b"
    (problem,) = problems(None, orphans, "-g rg -n c")
    assert problem.code == "OrphanContainerGroups" and "az aks virtual-node prune -g rg -n c" in problem.hint


def test_ghost_nodes_are_release_nodes_without_their_pod():
    assert ghost_nodes(["vn-virtualnode-0", "vn-virtualnode-1", "vn-virtualnode-2"],
                       {"vn-virtualnode-0"}) == ["vn-virtualnode-1", "vn-virtualnode-2"]
    assert ghost_nodes(["virtualnode-0"], {"virtualnode-0"}) == []


def test_status_carries_pending_pods_and_orphans():
    """health.evaluate/build_status with the workload facts (the shapes status documents)."""
    from azext_virtualnode.health import build_status, evaluate
    from test_health_unit import healthy_facts
    findings = pending_findings([pending({"nodeSelector": V1_SELECTOR})], ADDON, [V1_NODE])
    orphans = [{"name": "shop-b", "id": "/x/shop-b", "namespace": "shop", "podName": "b", "podUid": None}]
    f = healthy_facts(pending=findings, orphaned=orphans, container_groups=2)
    codes = [p.code for p in evaluate(f)]
    assert codes == ["PodsCannotSchedule", "OrphanContainerGroups"]
    st = build_status(f, evaluate(f))
    assert st["healthy"] is True                                      # warnings: the virtual node works
    assert st["workload"]["pending"][0]["reason"] == TOLERATION_MISSING
    assert st["containerGroups"] == {"count": 2, "orphaned": orphans}
