"""migration (migrate --to v2): which workloads target the legacy virtual node, their v2 re-placement, the
availability rules and the move plan. Pure rules on API-server JSON (camelCase dicts), no cluster."""
from __future__ import annotations

import copy
import json

import pytest

from azext_virtualnode.migration import (Move, Stuck, all_ready, availability_risk, classify, deployment_rolled_out,
                                         legacy_policy, owner_workload, pdb_floor, replan, restart_patch,
                                         rollout_floor, statefulset_rolling)
from azext_virtualnode.placement import KINDS, MODES, PLACEMENT_ANNOTATION, PlacementError, plan
from test_placement_unit import apply_merge_patch

# The literal shapes (not the module's constants), so a changed constant shows up here.
PROVIDER = {"key": "virtual-kubelet.io/provider", "operator": "Exists"}
LEGACY_TOL = {"key": "azure.com/aci", "operator": "Exists", "effect": "NoSchedule"}     # what place (addon) adds
HAND_ACI = {"key": "azure.com/aci", "effect": "NoSchedule"}                             # as people write it
USER_TOL = {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
USER_PREF = {"weight": 10, "preference": {"matchExpressions": [{"key": "disktype", "operator": "In",
                                                                "values": ["ssd"]}]}}
V2_BURST = {"weight": 100, "preference": {"matchExpressions": [{"key": "virtualization", "operator": "NotIn",
                                                                "values": ["virtualnode2"]}]}}
LEGACY_BURST = {"weight": 100, "preference": {"matchExpressions": [{"key": "type", "operator": "NotIn",
                                                                    "values": ["virtual-kubelet"]}]}}
V2_SELECTOR = {"virtualization": "virtualnode2", "kubernetes.io/os": "linux"}
DEPLOY, STS, RS, JOB, CRON = (KINDS[k] for k in ("deployment", "statefulset", "replicaset", "job", "cronjob"))


# -- builders ------------------------------------------------------------------------------------------------
def workload(kind: str = "deployment", name: str = "web", namespace: str = "shop", spec: dict | None = None,
             annotations: dict | None = None, replicas: int | None = 2, labels: dict | None = None,
             owners: list | None = None, **top) -> dict:
    """A workload as the API server returns it; ``top`` goes into the object's spec (strategy, suspend...)."""
    template = {"metadata": {"labels": labels or {"app": name}},
                "spec": {"containers": [{"name": name, "image": "nginx"}], **(spec or {})}}
    meta: dict = {"name": name, "namespace": namespace, "resourceVersion": "42", "generation": 1}
    if annotations:
        meta["annotations"] = annotations
    if owners:
        meta["ownerReferences"] = owners
    if kind == "cronjob":
        body: dict = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        body = {"template": template}
        if kind != "job":
            body["selector"] = {"matchLabels": labels or {"app": name}}
            if replicas is not None:
                body["replicas"] = replicas
    body.update(top)
    return {"apiVersion": KINDS[kind].api_version, "kind": KINDS[kind].kind, "metadata": meta, "spec": body}


def placed(obj: dict, kind, policy: str, mode: str | None) -> dict:
    """The object after ``az aks virtual-node place --policy POLICY`` (in the given connector mode)."""
    patch = plan(obj, kind, policy, MODES[mode] if mode else None).merge_patch()
    return apply_merge_patch(obj, patch) if patch else obj


def migrated(obj: dict, kind, policy: str):
    p = replan(obj, kind, policy)
    patch = p.merge_patch()
    assert patch is not None
    return apply_merge_patch(obj, patch), p


def tspec(obj: dict, kind=DEPLOY) -> dict:
    node = obj
    for key in kind.template_path:
        node = node[key]
    return node["spec"]


def annotation(obj: dict) -> dict | None:
    text = (obj["metadata"].get("annotations") or {}).get(PLACEMENT_ANNOTATION)
    return json.loads(text) if text is not None else None


def pod(name: str, namespace: str = "shop", owner: tuple[str, str] | None = None, labels: dict | None = None,
        controller: bool = True) -> dict:
    meta: dict = {"name": name, "namespace": namespace, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1],
                                    "controller": controller, "uid": f"uid-{owner[1]}"}]
    return {"metadata": meta, "spec": {"nodeName": "virtual-node-aci-linux"}, "status": {"phase": "Running"}}


def rs_pod(name: str, deployment: str = "web", digest: str = "abc123", namespace: str = "shop") -> dict:
    return pod(name, namespace, ("ReplicaSet", f"{deployment}-{digest}"),
               {"app": deployment, "pod-template-hash": digest})


def pdb(name: str, selector: dict | None, namespace: str = "shop", min_available=None, max_unavailable=None) -> dict:
    spec: dict = {}
    if selector is not None:
        spec["selector"] = selector
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def legacy_only(**kw) -> dict:
    """A hand-written template aimed at the legacy node (no place annotation)."""
    return {"nodeSelector": {"type": "virtual-kubelet", "kubernetes.io/os": "linux"},
            "tolerations": [dict(PROVIDER), dict(HAND_ACI)], **kw}


# -- 1. legacy_policy ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["addon", "chart"])
@pytest.mark.parametrize("policy", ["only", "burst"])
def test_legacy_policy_from_a_legacy_place_annotation(mode, policy):
    obj = placed(workload(), DEPLOY, policy, mode)
    assert annotation(obj)["mode"] == mode
    assert legacy_policy(obj, DEPLOY) == policy


def test_legacy_policy_annotation_wins_over_the_template():
    # The annotation says burst although the template has the legacy selector (which alone would read "only").
    note = json.dumps({"policy": "burst", "mode": "chart", "nodeSelector": {}, "tolerations": [LEGACY_TOL],
                       "preferred": [LEGACY_BURST]})
    obj = workload(spec={"nodeSelector": {"type": "virtual-kubelet"}}, annotations={PLACEMENT_ANNOTATION: note})
    assert legacy_policy(obj, DEPLOY) == "burst"


@pytest.mark.parametrize("policy", ["only", "burst"])
def test_legacy_policy_v2_annotation_is_not_legacy(policy):
    obj = placed(workload(), DEPLOY, policy, "v2")
    # v2 burst tolerates virtual-kubelet.io/provider too: only the annotation tells it from legacy burst.
    assert PROVIDER in tspec(obj)["tolerations"]
    assert legacy_policy(obj, DEPLOY) is None


def test_legacy_policy_hand_written_selector_is_only():
    obj = workload(spec={"nodeSelector": {"type": "virtual-kubelet"}})
    assert legacy_policy(obj, DEPLOY) == "only"
    assert legacy_policy(workload(spec=legacy_only()), DEPLOY) == "only"


@pytest.mark.parametrize("toleration", [PROVIDER, HAND_ACI, LEGACY_TOL])
def test_legacy_policy_legacy_toleration_alone_is_burst(toleration):
    obj = workload(spec={"tolerations": [USER_TOL, toleration], "nodeSelector": {"disktype": "ssd"}})
    assert legacy_policy(obj, DEPLOY) == "burst"


def test_legacy_policy_v2_selector_is_not_legacy():
    obj = workload(spec={"nodeSelector": dict(V2_SELECTOR), "tolerations": [PROVIDER]})
    assert legacy_policy(obj, DEPLOY) is None


@pytest.mark.parametrize("spec", [{}, {"tolerations": [USER_TOL], "nodeSelector": {"disktype": "ssd"},
                                       "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
                                                                     [USER_PREF]}}},
                                  {"nodeSelector": {"type": "gpu"}}])
def test_legacy_policy_nothing_virtual(spec):
    assert legacy_policy(workload(spec=spec), DEPLOY) is None


def _required(expression: dict) -> dict:
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [expression]}]}}}}


def test_legacy_policy_required_affinity_on_legacy_label_is_refused_with_advice():
    obj = workload(spec={**_required({"key": "type", "operator": "In", "values": ["virtual-kubelet"]}),
                         "tolerations": [PROVIDER]})
    with pytest.raises(PlacementError) as err:
        legacy_policy(obj, DEPLOY)
    message = str(err.value)
    assert "type=virtual-kubelet" in message and "required node affinity" in message
    assert "virtualization=virtualnode2" in message and "re-run" in message


def test_legacy_policy_other_required_affinity_is_fine():
    obj = workload(spec=_required({"key": "type", "operator": "In", "values": ["gpu"]}))
    assert legacy_policy(obj, DEPLOY) is None


# -- 2. replan ----------------------------------------------------------------------------------------------
USER_SPEC = {"tolerations": [USER_TOL], "nodeSelector": {"disktype": "ssd"}}


@pytest.mark.parametrize("mode", ["addon", "chart"])
def test_replan_only_placed_for_legacy(mode):
    obj = placed(workload(spec=copy.deepcopy(USER_SPEC)), DEPLOY, "only", mode)
    assert tspec(obj)["nodeSelector"]["type"] == "virtual-kubelet" and LEGACY_TOL in tspec(obj)["tolerations"]
    assert legacy_policy(obj, DEPLOY) == "only"
    result, p = migrated(obj, DEPLOY, "only")
    spec = tspec(result)
    assert spec["nodeSelector"] == {"disktype": "ssd", **V2_SELECTOR}
    assert spec["tolerations"] == [USER_TOL, PROVIDER]
    assert spec["containers"] == tspec(obj)["containers"]
    assert "affinity" not in spec
    note = annotation(result)
    assert (note["mode"], note["policy"]) == ("v2", "only")
    assert note["nodeSelector"] == V2_SELECTOR and note["tolerations"] == [PROVIDER]
    assert (p.mode, p.policy, p.changed) == ("v2", "only", True)
    assert p.after.fields() == {k: spec[k] for k in ("nodeSelector", "tolerations")}


def test_replan_only_from_a_hand_built_addon_annotation():
    note = json.dumps({"policy": "only", "mode": "addon",
                       "nodeSelector": {"type": "virtual-kubelet", "kubernetes.io/os": "linux"},
                       "tolerations": [PROVIDER, LEGACY_TOL], "preferred": []})
    obj = workload(spec={"tolerations": [USER_TOL, PROVIDER, LEGACY_TOL],
                         "nodeSelector": {"disktype": "ssd", "type": "virtual-kubelet", "kubernetes.io/os": "linux"}},
                   annotations={PLACEMENT_ANNOTATION: note, "team": "shop"})
    result, _ = migrated(obj, DEPLOY, "only")
    assert tspec(result)["nodeSelector"] == {"disktype": "ssd", **V2_SELECTOR}
    assert tspec(result)["tolerations"] == [USER_TOL, PROVIDER]
    assert result["metadata"]["annotations"]["team"] == "shop"


@pytest.mark.parametrize("mode", ["addon", "chart"])
def test_replan_burst_swaps_the_preference(mode):
    base = workload(spec={"tolerations": [USER_TOL],
                          "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
                                                        [USER_PREF]}}})
    obj = placed(base, DEPLOY, "burst", mode)
    assert LEGACY_BURST in tspec(obj)["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert legacy_policy(obj, DEPLOY) == "burst"
    result, p = migrated(obj, DEPLOY, "burst")
    spec = tspec(result)
    assert "nodeSelector" not in spec
    assert spec["tolerations"] == [USER_TOL, PROVIDER]
    assert spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [USER_PREF,
                                                                                                   V2_BURST]
    note = annotation(result)
    assert (note["mode"], note["policy"], note["nodeSelector"]) == ("v2", "burst", {})
    assert note["preferred"] == [V2_BURST] and note["tolerations"] == [PROVIDER]
    assert p.policy == "burst"


def test_replan_hand_written_burst():
    obj = workload(spec={"tolerations": [PROVIDER, LEGACY_TOL, USER_TOL], "affinity": {"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [{"key": "type", "operator": "NotIn",
                                                                "values": ["virtual-kubelet"]}]}}, USER_PREF]}}})
    assert legacy_policy(obj, DEPLOY) == "burst"
    result, _ = migrated(obj, DEPLOY, "burst")
    spec = tspec(result)
    assert spec["tolerations"] == [USER_TOL, PROVIDER]
    assert spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [USER_PREF,
                                                                                                   V2_BURST]


def test_replan_hand_written_only_gives_a_valid_merge_patch():
    obj = workload(spec=legacy_only(tolerations=[dict(PROVIDER), USER_TOL, dict(HAND_ACI)],
                                    nodeSelector={"type": "virtual-kubelet", "kubernetes.io/os": "linux",
                                                  "disktype": "ssd"}))
    original = copy.deepcopy(obj)
    assert legacy_policy(obj, DEPLOY) == "only"
    p = replan(obj, DEPLOY, "only")
    assert obj == original                      # the caller's object is not touched
    assert p.changed and p.managed_before is None
    patch = p.merge_patch("42")
    assert set(patch) == {"metadata", "spec"}
    assert patch["metadata"]["resourceVersion"] == "42"
    assert set(patch["spec"]) == {"template"} and set(patch["spec"]["template"]) == {"spec"}
    spec_patch = patch["spec"]["template"]["spec"]
    assert set(spec_patch) == {"nodeSelector", "tolerations"}     # containers etc. untouched
    assert spec_patch["nodeSelector"] == {"type": None, "virtualization": "virtualnode2"}
    result = apply_merge_patch(obj, patch)
    spec = tspec(result)
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "disktype": "ssd", "virtualization": "virtualnode2"}
    assert spec["tolerations"] == [USER_TOL, PROVIDER]
    assert {k: spec[k] for k in ("nodeSelector", "tolerations")} == p.after.fields()
    assert "affinity" not in spec
    note = annotation(result)
    assert (note["mode"], note["policy"]) == ("v2", "only")
    # kubernetes.io/os was the user's (never added by place): only what v2 added is recorded.
    assert note["nodeSelector"] == {"virtualization": "virtualnode2"} and note["tolerations"] == [PROVIDER]


def test_replan_refuses_a_contradicting_selector():
    obj = workload(spec={"nodeSelector": {"type": "virtual-kubelet", "kubernetes.io/os": "windows"}})
    assert legacy_policy(obj, DEPLOY) == "only"
    with pytest.raises(PlacementError, match="kubernetes.io/os=windows"):
        replan(obj, DEPLOY, "only")


def test_replan_cronjob_template():
    obj = workload("cronjob", "nightly", spec=legacy_only(tolerations=[dict(PROVIDER), dict(HAND_ACI), USER_TOL]))
    assert legacy_policy(obj, CRON) == "only"
    p = replan(obj, CRON, "only")
    patch = p.merge_patch()
    assert "template" not in patch["spec"]
    assert set(patch["spec"]["jobTemplate"]["spec"]["template"]["spec"]) == {"nodeSelector", "tolerations"}
    result = apply_merge_patch(obj, patch)
    spec = tspec(result, CRON)
    assert spec["nodeSelector"] == V2_SELECTOR
    assert spec["tolerations"] == [USER_TOL, PROVIDER]
    assert result["spec"]["schedule"] == "*/5 * * * *"
    assert annotation(result)["mode"] == "v2"
    assert legacy_policy(result, CRON) is None


def _migrated_cases():
    only = placed(workload(spec=copy.deepcopy(USER_SPEC)), DEPLOY, "only", "addon")
    burst = placed(workload(spec={"tolerations": [USER_TOL]}), DEPLOY, "burst", "chart")
    hand = workload(spec=legacy_only(tolerations=[dict(PROVIDER), dict(HAND_ACI), USER_TOL],
                                     nodeSelector={"type": "virtual-kubelet", "kubernetes.io/os": "linux",
                                                   "disktype": "ssd"}))
    cron = workload("cronjob", "nightly", spec=legacy_only())
    return [("only", DEPLOY, only), ("burst", DEPLOY, burst), ("only", DEPLOY, hand), ("only", CRON, cron)]


@pytest.mark.parametrize("policy, kind, obj", _migrated_cases())
def test_replan_is_idempotent(policy, kind, obj):
    result, _ = migrated(obj, kind, policy)
    assert legacy_policy(result, kind) is None          # migrate leaves it alone on a re-run
    again = replan(result, kind, policy)                # and re-planning it changes nothing either
    assert again.changed is False and again.merge_patch() is None
    assert plan(result, kind, policy, MODES["v2"]).changed is False


def test_place_off_after_migration_removes_the_v2_entries():
    result, _ = migrated(placed(workload(spec=copy.deepcopy(USER_SPEC)), DEPLOY, "only", "addon"), DEPLOY, "only")
    off = placed(result, DEPLOY, "off", None)
    assert tspec(off)["nodeSelector"] == {"disktype": "ssd"}
    assert tspec(off)["tolerations"] == [USER_TOL]
    assert annotation(off) is None


def test_place_off_after_migration_of_a_hand_written_template():
    obj = workload(spec=legacy_only(tolerations=[dict(PROVIDER), dict(HAND_ACI), USER_TOL],
                                    nodeSelector={"type": "virtual-kubelet", "kubernetes.io/os": "linux",
                                                  "disktype": "ssd"}))
    result, _ = migrated(obj, DEPLOY, "only")
    off = placed(result, DEPLOY, "off", None)
    # the user's own kubernetes.io/os stays; what migrate added for v2 goes
    assert tspec(off)["nodeSelector"] == {"kubernetes.io/os": "linux", "disktype": "ssd"}
    assert tspec(off)["tolerations"] == [USER_TOL]
    assert annotation(off) is None


def test_place_off_after_burst_migration():
    base = workload(spec={"tolerations": [USER_TOL], "affinity": {"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [USER_PREF]}}})
    result, _ = migrated(placed(base, DEPLOY, "burst", "addon"), DEPLOY, "burst")
    off = placed(result, DEPLOY, "off", None)
    assert tspec(off)["tolerations"] == [USER_TOL]
    assert tspec(off)["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [USER_PREF]
    assert "nodeSelector" not in tspec(off)


# -- 3. rollout_floor ---------------------------------------------------------------------------------------
def _rolling(surge=None, unavailable=None) -> dict:
    rolling = {k: v for k, v in (("maxSurge", surge), ("maxUnavailable", unavailable)) if v is not None}
    return {"type": "RollingUpdate", **({"rollingUpdate": rolling} if rolling else {})}


@pytest.mark.parametrize("replicas, strategy, floor", [
    (3, None, 3), (4, None, 3), (12, None, 9), (1, None, 1),          # defaults 25%/25%: unavailable rounds down
    (4, {"type": "RollingUpdate"}, 3),
    (4, _rolling(1, 2), 2), (4, _rolling(1, 0), 4), (5, _rolling(unavailable="50%"), 3),
    (2, _rolling(0, 5), 0),                                            # never below zero
    (4, _rolling(0, 0), 3), (3, _rolling("0%", "10%"), 2),             # both resolve to 0: unavailable 1
    (4, {"type": "Recreate"}, 0), (12, {"type": "Recreate"}, 0),
])
def test_rollout_floor(replicas, strategy, floor):
    obj = workload(replicas=replicas, **({"strategy": strategy} if strategy else {}))
    assert rollout_floor(obj) == floor


def test_rollout_floor_default_replicas_is_one():
    assert rollout_floor(workload(replicas=None)) == 1


# -- 4. pdb_floor / availability_risk --------------------------------------------------------------------------
LABELS = {"app": "web", "tier": "front"}


@pytest.mark.parametrize("budget, replicas, need", [
    (pdb("b", {"matchLabels": {"app": "web"}}, min_available=2), 3, 2),
    (pdb("b", {"matchLabels": {"app": "web"}}, min_available="50%"), 3, 2),      # rounds up
    (pdb("b", {"matchLabels": {"app": "web"}}, min_available="30%"), 4, 2),
    (pdb("b", {"matchLabels": {"app": "web"}}, max_unavailable=1), 3, 2),
    (pdb("b", {"matchLabels": {"app": "web"}}, max_unavailable="50%"), 3, 1),    # 3 - ceil(1.5)
    (pdb("b", {}, min_available=1), 3, 1),                                        # empty selector: every pod
    (pdb("b", {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]},
                                    {"key": "canary", "operator": "DoesNotExist"}]}, min_available=3), 3, 3),
    (pdb("b", {"matchExpressions": [{"key": "app", "operator": "Exists"},
                                    {"key": "tier", "operator": "NotIn", "values": ["back"]}]}, min_available=1), 3, 1),
])
def test_pdb_floor_selects(budget, replicas, need):
    assert pdb_floor([budget], "shop", LABELS, replicas) == (need, "b")


@pytest.mark.parametrize("budget", [
    pdb("b", {"matchLabels": {"app": "db"}}, min_available=2),
    pdb("b", {"matchLabels": {"app": "web"}}, namespace="other", min_available=2),
    pdb("b", None, min_available=2),                                              # no selector: selects nothing
    pdb("b", {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, min_available=2),
    pdb("b", {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, min_available=2),
    pdb("b", {"matchLabels": {"app": "web"}}),                                    # neither field
])
def test_pdb_floor_ignores(budget):
    assert pdb_floor([budget], "shop", LABELS, 3) is None


def test_pdb_floor_strictest_wins():
    budgets = [pdb("loose", {}, min_available=1), pdb("strict", {"matchLabels": {"app": "web"}}, max_unavailable=0),
               pdb("mid", {"matchLabels": {"tier": "front"}}, min_available="50%")]
    assert pdb_floor(budgets, "shop", LABELS, 4) == (4, "strict")


def sts(replicas=3, **kw) -> dict:
    return workload("statefulset", "db", replicas=replicas, labels={"app": "db"}, **kw)


def test_risk_deployment_rolling_update_is_safe():
    obj = workload(replicas=4)
    assert availability_risk(DEPLOY, obj, [pdb("web", {"matchLabels": {"app": "web"}}, min_available=3)], True) is None


def test_risk_deployment_recreate():
    obj = workload(replicas=3, strategy={"type": "Recreate"})
    risk = availability_risk(DEPLOY, obj, [], True)
    assert risk is not None and "Recreate" in risk and "3" in risk


def test_risk_deployment_rollout_below_a_pdb():
    obj = workload(replicas=4)                     # floor 3
    risk = availability_risk(DEPLOY, obj, [pdb("web-strict", {"matchLabels": {"app": "web"}}, min_available=4)],
                             True)
    assert risk is not None and "'web-strict'" in risk and "3" in risk and "4" in risk
    # the same budget in another namespace does not count
    assert availability_risk(DEPLOY, obj, [pdb("web-strict", {"matchLabels": {"app": "web"}}, namespace="other",
                                               min_available=4)], True) is None


def test_risk_deployment_rollout_may_stop_everything():
    obj = workload(replicas=1, strategy=_rolling(0, 1))
    risk = availability_risk(DEPLOY, obj, [], True)
    assert risk is not None and "stop all 1" in risk


def test_risk_statefulset_single_replica():
    risk = availability_risk(STS, sts(1), [], True)
    assert risk is not None and "StatefulSet" in risk and "1 replica" in risk
    assert availability_risk(STS, sts(1), [], False) is None         # no pod to move, nothing stops


def test_risk_statefulset_pdb_blocks_eviction():
    risk = availability_risk(STS, sts(3), [pdb("db-all", {"matchLabels": {"app": "db"}}, min_available=3)], True)
    assert risk is not None and "'db-all'" in risk and "never be allowed" in risk
    assert availability_risk(STS, sts(3), [pdb("db", {"matchLabels": {"app": "db"}}, min_available=2)], True) is None


def test_risk_statefulset_three_replicas_without_pdb():
    assert availability_risk(STS, sts(3), [], True) is None


def test_risk_replicaset_single_replica():
    obj = workload("replicaset", "cache", replicas=1)
    assert availability_risk(RS, obj, [], True) is not None


def test_risk_job_never():
    assert availability_risk(JOB, workload("job", "batch"), [], True) is None


# -- 5. classify ------------------------------------------------------------------------------------------------
def legacy_deployment(name="web", namespace="shop", **kw) -> dict:
    return placed(workload(name=name, namespace=namespace, **kw), DEPLOY, "only", "addon")


def test_classify_deployment_pods_map_to_the_deployment():
    deploy = legacy_deployment(replicas=4)
    rs = workload("replicaset", "web-abc123", replicas=4, labels={"app": "web"},
                  owners=[{"kind": "Deployment", "name": "web", "controller": True}],
                  spec=copy.deepcopy(tspec(deploy)))
    pods = [rs_pod("web-abc123-x1"), rs_pod("web-abc123-x2")]
    moves, stuck, unaffected = classify({"deployment": [deploy], "replicaset": [rs]}, pods, [])
    assert stuck == [] and unaffected == 0           # the ReplicaSet is neither moved nor counted
    assert len(moves) == 1
    m = moves[0]
    assert (m.workload, m.namespace, m.policy, m.pods_on_legacy, m.risk) == ("deployment/web", "shop", "only", 2, None)
    assert m.plan is not None and m.plan.changed and m.plan.mode == "v2"
    assert m.as_json() == {"workload": "deployment/web", "namespace": "shop", "policy": "only", "podsOnLegacyNode": 2,
                           "how": "rollout", "templateChange": True}


def test_classify_bare_pod_is_stuck():
    moves, stuck, unaffected = classify({}, [pod("debug")], [])
    assert moves == [] and unaffected == 0
    assert len(stuck) == 1
    assert (stuck[0].workload, stuck[0].namespace, stuck[0].pods) == ("pod/debug", "shop", ["debug"])
    assert stuck[0].reason.startswith("a bare pod")


def test_classify_running_job_is_stuck():
    job = workload("job", "report", spec=legacy_only())
    job["status"] = {"startTime": "2024-01-01T00:00:00Z", "active": 1}
    moves, stuck, _ = classify({"job": [job]}, [pod("report-q7", owner=("Job", "report"))], [])
    assert moves == []
    assert [(s.workload, s.pods) for s in stuck] == [("job/report", ["report-q7"])]
    assert "finish where they run" in stuck[0].reason


def test_classify_suspended_job_not_started_moves():
    job = workload("job", "report", spec=legacy_only(), suspend=True)
    moves, stuck, unaffected = classify({"job": [job]}, [], [])
    assert stuck == [] and unaffected == 0
    assert [(m.workload, m.pods_on_legacy, m.policy) for m in moves] == [("job/report", 0, "only")]
    assert moves[0].plan.changed and moves[0].as_json()["how"] == "none"


def test_classify_started_job_without_legacy_pods_is_left():
    job = workload("job", "report", spec=legacy_only(), suspend=True)
    job["status"] = {"startTime": "2024-01-01T00:00:00Z"}
    assert classify({"job": [job]}, [], []) == ([], [], 1)


def test_classify_cronjob_job_not_moved_but_cronjob_is():
    cron = workload("cronjob", "nightly", spec=legacy_only())
    job = workload("job", "nightly-28000000", spec=legacy_only(), suspend=True,
                   owners=[{"kind": "CronJob", "name": "nightly", "controller": True}])
    moves, stuck, unaffected = classify({"job": [job], "cronjob": [cron]}, [], [])
    assert [m.workload for m in moves] == ["cronjob/nightly"]
    assert stuck == [] and unaffected == 1


def test_classify_regular_workload_is_unaffected():
    workloads = {"deployment": [workload(spec=copy.deepcopy(USER_SPEC))], "statefulset": [sts(3)]}
    assert classify(workloads, [], []) == ([], [], 2)


def test_classify_already_replaced_with_pods_left_on_legacy():
    deploy = placed(legacy_deployment(replicas=3, spec={"tolerations": [USER_TOL]}), DEPLOY, "off", None)
    deploy = placed(deploy, DEPLOY, "burst", "addon")
    deploy, _ = migrated(deploy, DEPLOY, "burst")                     # an interrupted run: template done
    moves, stuck, unaffected = classify({"deployment": [deploy]}, [rs_pod("web-abc123-x1")], [])
    assert stuck == [] and unaffected == 0
    assert len(moves) == 1
    m = moves[0]
    assert m.plan is None or not m.plan.changed
    assert (m.policy, m.pods_on_legacy) == ("burst", 1)
    assert m.as_json()["templateChange"] is False


def test_classify_force_clears_the_risk():
    db = sts(1, spec=legacy_only())
    pods = [pod("db-0", owner=("StatefulSet", "db"), labels={"app": "db"})]
    (moves, _, _) = classify({"statefulset": [db]}, pods, [])
    assert moves[0].risk is not None and "availabilityRisk" in moves[0].as_json()
    assert moves[0].as_json()["how"] == "evict"
    (forced, _, _) = classify({"statefulset": [db]}, pods, [], force=True)
    assert len(forced) == 1 and forced[0].risk is None and "availabilityRisk" not in forced[0].as_json()


def test_classify_deployment_risk_from_pdb():
    deploy = legacy_deployment(replicas=4)
    moves, _, _ = classify({"deployment": [deploy]}, [], [pdb("web-all", {"matchLabels": {"app": "web"}},
                                                              min_available=4)])
    assert moves[0].pods_on_legacy == 0 and "'web-all'" in moves[0].risk


def test_classify_paused_deployment_is_stuck():
    deploy = legacy_deployment(replicas=2, paused=True)
    moves, stuck, _ = classify({"deployment": [deploy]}, [rs_pod("web-abc123-x1")], [])
    assert moves == []
    assert [(s.workload, s.pods) for s in stuck] == [("deployment/web", ["web-abc123-x1"])]
    assert "kubectl rollout resume deployment/web -n shop" in stuck[0].reason
    assert classify({"deployment": [workload(paused=True)]}, [], []) == ([], [], 1)      # not aimed at legacy


def test_classify_required_affinity_is_stuck_with_its_pods():
    obj = workload("statefulset", "db", labels={"app": "db"},
                   spec={**_required({"key": "type", "operator": "In", "values": ["virtual-kubelet"]}),
                         "tolerations": [PROVIDER]})
    moves, stuck, _ = classify({"statefulset": [obj]}, [pod("db-0", owner=("StatefulSet", "db"))], [])
    assert moves == []
    assert [(s.workload, s.pods) for s in stuck] == [("statefulset/db", ["db-0"])]
    assert "required node affinity" in stuck[0].reason


def test_classify_pod_of_an_unknown_workload_is_stuck():
    moves, stuck, _ = classify({}, [pod("x-0", namespace="ops", owner=("StatefulSet", "x"))], [])
    assert moves == [] and [(s.workload, s.namespace, s.pods) for s in stuck] == [("statefulset/x", "ops", ["x-0"])]
    assert "not found" in stuck[0].reason


def test_classify_order():
    workloads = {
        "cronjob": [workload("cronjob", "c", "a", spec=legacy_only())],
        "job": [workload("job", "j", "z", spec=legacy_only(), suspend=True)],
        "replicaset": [workload("replicaset", "r", "a", spec=legacy_only())],
        "statefulset": [workload("statefulset", "s", "b", spec=legacy_only()),
                        workload("statefulset", "s", "a", spec=legacy_only())],
        "deployment": [workload("deployment", "web", "b", spec=legacy_only()),
                       workload("deployment", "api", "b", spec=legacy_only()),
                       workload("deployment", "zzz", "a", spec=legacy_only())],
    }
    moves, stuck, _ = classify(workloads, [], [])
    assert stuck == []
    assert [(m.workload, m.namespace) for m in moves] == [
        ("deployment/zzz", "a"), ("deployment/api", "b"), ("deployment/web", "b"), ("statefulset/s", "a"),
        ("statefulset/s", "b"), ("replicaset/r", "a"), ("job/j", "z"), ("cronjob/c", "a")]
    assert all(isinstance(m, Move) for m in moves)


def test_stuck_as_json():
    assert Stuck("pod/x", "ns", "why", ["x"]).as_json() == {"workload": "pod/x", "namespace": "ns", "reason": "why",
                                                            "pods": ["x"]}


# -- 6. helpers ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p, owner", [
    (rs_pod("web-abc123-x1"), ("deployment", "web")),
    (rs_pod("my-web-abc123-x1", deployment="my-web"), ("deployment", "my-web")),
    (pod("cache-x1", owner=("ReplicaSet", "cache")), ("replicaset", "cache")),                   # no hash label
    (pod("c-x1", owner=("ReplicaSet", "cache-zzz"), labels={"pod-template-hash": "abc123"}),
     ("replicaset", "cache-zzz")),                                                                # hash mismatch
    (pod("db-0", owner=("StatefulSet", "db")), ("statefulset", "db")),
    (pod("job-x", owner=("Job", "report")), ("job", "report")),
    (pod("bare"), None),
    (pod("adopted", owner=("ReplicaSet", "web-abc123"), controller=False), None),
])
def test_owner_workload(p, owner):
    assert owner_workload(p) == owner


def test_restart_patch():
    when = "2024-05-01T10:00:00Z"
    annotations = {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": when}}}
    assert restart_patch(CRON, when) == {"spec": {"jobTemplate": {"spec": {"template": annotations}}}}
    assert restart_patch(DEPLOY, when) == {"spec": {"template": annotations}}


def _rollout(**status) -> dict:
    """A 3-replica Deployment at generation 2 with this status."""
    obj = workload(replicas=3)
    obj["metadata"]["generation"] = 2
    obj["status"] = status
    return obj


@pytest.mark.parametrize("obj, done", [
    (_rollout(observedGeneration=1, replicas=3, updatedReplicas=3, availableReplicas=3), False),  # not seen yet
    (_rollout(observedGeneration=2, replicas=3, updatedReplicas=2, availableReplicas=3), False),
    (_rollout(observedGeneration=2, replicas=4, updatedReplicas=3, availableReplicas=3), False),  # an old one left
    (_rollout(observedGeneration=2, replicas=3, updatedReplicas=3, availableReplicas=2), False),
    (_rollout(), False),
    (_rollout(observedGeneration=2, replicas=3, updatedReplicas=3, availableReplicas=3), True),
    (_rollout(observedGeneration=3, replicas=3, updatedReplicas=3, availableReplicas=3), True),
])
def test_deployment_rolled_out(obj, done):
    assert deployment_rolled_out(obj) is done


@pytest.mark.parametrize("strategy, status, rolling", [
    ({"type": "OnDelete"}, {"updateRevision": "db-2", "currentRevision": "db-1"}, False),
    ({"type": "RollingUpdate"}, {"updateRevision": "db-2", "currentRevision": "db-1"}, True),
    (None, {"updateRevision": "db-2", "currentRevision": "db-1"}, True),                 # default RollingUpdate
    ({"type": "RollingUpdate"}, {"updateRevision": "db-2", "currentRevision": "db-2"}, False),
    ({"type": "RollingUpdate"}, {}, False),
    ({"type": "RollingUpdate"}, {"updateRevision": "db-2"}, False),
])
def test_statefulset_rolling(strategy, status, rolling):
    obj = sts(3, **({"updateStrategy": strategy} if strategy else {}))
    obj["status"] = status
    assert statefulset_rolling(obj) is rolling


@pytest.mark.parametrize("replicas, status, ready", [
    (3, {"readyReplicas": 3}, True), (3, {"readyReplicas": 2}, False), (3, {}, False),
    (None, {"readyReplicas": 1}, True), (None, {}, False), (0, {}, True),
])
def test_all_ready(replicas, status, ready):
    obj = sts(replicas)
    obj["status"] = status
    assert all_ready(obj) is ready


def test_legacy_policy_hand_written_v2_burst_is_not_legacy():
    """The two modes share the toleration key: a v2 burst template written by hand is left alone."""
    assert legacy_policy(workload(spec={"tolerations": [PROVIDER], "affinity": {"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [V2_BURST]}}}), DEPLOY) is None
    assert legacy_policy(workload(spec={"tolerations": [PROVIDER], "affinity": {"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [V2_BURST, LEGACY_BURST]}}}), DEPLOY) == "burst"


def test_classify_statefulset_whose_template_changes_is_risk_checked_without_legacy_pods():
    """A changed template rolls a StatefulSet's pods (RollingUpdate) even when none is on the legacy node."""
    one = workload("statefulset", "db", replicas=1, spec={"tolerations": [PROVIDER]})
    moves, _, _ = classify({"statefulset": [one]}, [], [])
    assert len(moves) == 1 and "its only pod must stop" in moves[0].risk
    three = workload("statefulset", "db", replicas=3, spec={"tolerations": [PROVIDER]})
    moves, _, _ = classify({"statefulset": [three]}, [], [])
    assert moves[0].risk is None
