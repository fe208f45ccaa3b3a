"""Unit tests of the simulated kube-apiserver pieces that need no HTTP: selectors, patches, printing."""
from __future__ import annotations

import pytest

from aksim.kube import patch, tables
from aksim.kube.selectors import (SelectorError, field_value, label_selector_string, matches_fields, matches_labels,
                                  parse_field_selector, parse_label_selector)
from aksim.kube.store import BUILTIN_TYPES, ResourceType

LABELS = {"app": "web", "tier": "front", "env": "prod"}


@pytest.mark.parametrize("selector, expected", [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app!=web", False),
    ("app=db", False),
    ("missing!=x", True),
    ("app in (web, db)", True),
    ("app in (db)", False),
    ("app notin (db,cache)", True),
    ("missing notin (db)", True),
    ("tier", True),
    ("!tier", False),
    ("!missing", True),
    ("app=web,tier in (front),!missing", True),
    ("app=web, env=dev", False),
])
def test_label_selector_semantics(selector: str, expected: bool) -> None:
    assert matches_labels(parse_label_selector(selector), LABELS) is expected


@pytest.mark.parametrize("selector", ["app in ()", "=x", "app in (a", "a b", "app=web)", "bad key!=x", "a=-x-"])
def test_label_selector_errors(selector: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(selector)


def test_field_selector_semantics() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1", "hostNetwork": True},
           "status": {"phase": "Running"}}
    assert matches_fields(parse_field_selector("spec.nodeName=n1,status.phase!=Failed"), pod)
    assert matches_fields(parse_field_selector("metadata.name==p,metadata.namespace=ns"), pod)
    assert not matches_fields(parse_field_selector("spec.nodeName!=n1"), pod)
    assert matches_fields(parse_field_selector("spec.schedulerName="), pod)     # missing compares as ""
    assert matches_fields(parse_field_selector("spec.hostNetwork=true"), pod)
    assert field_value({"a": {"b": 3}}, "a.b") == "3"
    escaped = parse_field_selector(r"metadata.name=a\,b,spec.nodeName=x")
    assert [(r.path, r.value) for r in escaped] == [("metadata.name", "a,b"), ("spec.nodeName", "x")]
    with pytest.raises(SelectorError):
        parse_field_selector("spec.nodeName")


def test_label_selector_string() -> None:
    sel = {"matchLabels": {"b": "2", "a": "1"},
           "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]},
                                {"key": "d", "operator": "Exists"}, {"key": "e", "operator": "DoesNotExist"}]}
    text = label_selector_string(sel)
    assert text == "a=1,b=2,c in (x,y),d,!e"
    assert parse_label_selector(text)


def test_merge_patch() -> None:
    target = {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}
    assert patch.merge_patch(target, {"b": {"c": None, "e": 4}, "l": [3], "a": None}) == {"b": {"d": 3, "e": 4},
                                                                                          "l": [3]}


def test_json_patch_ops_and_errors() -> None:
    doc = {"spec": {"replicas": 1, "list": ["a", "b"]}, "metadata": {"labels": {"a/b": "x"}}}
    result = patch.json_patch(doc, [
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/spec/list/-", "value": "c"},
        {"op": "add", "path": "/spec/list/0", "value": "z"},
        {"op": "remove", "path": "/metadata/labels/a~1b"},
        {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
        {"op": "move", "from": "/spec/copied", "path": "/spec/moved"},
        {"op": "test", "path": "/spec/moved", "value": 3},
    ])
    assert result == {"spec": {"replicas": 3, "list": ["z", "a", "b", "c"], "moved": 3}, "metadata": {"labels": {}}}
    assert doc["spec"]["replicas"] == 1
    with pytest.raises(patch.PatchError) as failed:
        patch.json_patch(doc, [{"op": "test", "path": "/spec/replicas", "value": 2}])
    assert failed.value.status == 422
    with pytest.raises(patch.PatchError) as missing:
        patch.json_patch(doc, [{"op": "remove", "path": "/nope"}])
    assert missing.value.status == 422
    with pytest.raises(patch.PatchError) as not_a_list:
        patch.apply_patch(patch.JSON_PATCH, doc, b'{"spec": {}}')
    assert not_a_list.value.status == 400


def test_strategic_merge_by_key() -> None:
    deployment = {"spec": {"template": {"spec": {
        "containers": [{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                        "ports": [{"containerPort": 80, "name": "http"}],
                        "volumeMounts": [{"name": "v", "mountPath": "/data"}]},
                       {"name": "b", "image": "b:1"}],
        "volumes": [{"name": "v", "emptyDir": {}}],
        "tolerations": [{"key": "t1"}]}}},
        "metadata": {"finalizers": ["f1"], "ownerReferences": [{"uid": "u1", "name": "o1"}]},
        "status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]}}
    result = patch.strategic_merge_patch(deployment, {
        "spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "a:2",
                            "env": [{"name": "Y", "value": "3"}, {"name": "Z", "value": "4"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "volumeMounts": [{"name": "v2", "mountPath": "/data"}]},
                           {"name": "c", "image": "c:1"}],
            "tolerations": [{"key": "t2"}]}}},
        "metadata": {"finalizers": ["f2"], "ownerReferences": [{"uid": "u1", "name": "renamed"}]},
        "status": {"conditions": [{"type": "Available", "status": "True"}]}})
    containers = result["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "b", "c"]
    assert containers[0]["image"] == "a:2"
    assert [(e["name"], e["value"]) for e in containers[0]["env"]] == [("X", "1"), ("Y", "3"), ("Z", "4")]
    assert containers[0]["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"}]
    assert containers[0]["volumeMounts"] == [{"name": "v2", "mountPath": "/data"}]
    assert result["spec"]["template"]["spec"]["tolerations"] == [{"key": "t2"}]      # no strategy: replaced
    assert result["metadata"]["finalizers"] == ["f1", "f2"]
    assert result["metadata"]["ownerReferences"] == [{"uid": "u1", "name": "renamed"}]
    assert result["status"]["conditions"] == [{"type": "Available", "status": "True"},
                                              {"type": "Progressing", "status": "True"}]


def test_strategic_merge_directives() -> None:
    original = {"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                         "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
                "metadata": {"finalizers": ["x", "y"], "labels": {"k": "v"}}}
    result = patch.strategic_merge_patch(original, {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
        "spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                 "containers": [{"name": "b", "$patch": "delete"}],
                 "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}},
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "labels": {"$patch": "replace", "n": "w"}}})
    assert [c["name"] for c in result["spec"]["containers"]] == ["c", "a"]
    assert result["spec"]["strategy"] == {"type": "Recreate"}
    assert result["metadata"] == {"finalizers": ["y"], "labels": {"n": "w"}}
    replaced = patch.strategic_merge_patch(original, {"spec": {"containers": [{"$patch": "replace"}, {"name": "z"}]}})
    assert replaced["spec"]["containers"] == [{"name": "z"}]


def test_service_ports_merge_by_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    result = patch.strategic_merge_patch(svc, {"spec": {"ports": [{"port": 443, "targetPort": 8443}]}})
    assert result["spec"]["ports"][1] == {"port": 443, "name": "https", "targetPort": 8443}


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (150, "2m30s"),
                                           (600, "10m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"),
                                           (9 * 3600, "9h"), (50 * 3600, "2d2h"), (10 * 86400, "10d"),
                                           (800 * 86400, "2y70d"), (-5, "<invalid>")])
def test_human_duration(seconds: int, text: str) -> None:
    assert tables.human_duration(seconds) == text


def _pod_with(status: dict, **meta: object) -> dict:
    return {"metadata": {"name": "p", **meta}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": status}


def test_pod_status_column() -> None:
    running = {"phase": "Running", "containerStatuses": [
        {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}},
         "lastState": {"terminated": {"finishedAt": "2025-01-01T00:00:00Z"}}},
        {"name": "b", "ready": False, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    reason, ready, restarts, last = tables.pod_status(_pod_with(running))
    assert (reason, ready, restarts) == ("CrashLoopBackOff", 1, 3) and last is not None
    assert tables.pod_status(_pod_with({"phase": "Pending", "reason": "ProviderFailed"}))[0] == "ProviderFailed"
    assert tables.pod_status(_pod_with({"phase": "Running"}, deletionTimestamp="2025-01-01T00:00:00Z"))[0] == \
        "Terminating"
    init = {"phase": "Pending",
            "initContainerStatuses": [{"name": "i", "state": {"waiting": {"reason": "PodInitializing"}}}]}
    pod = _pod_with(init)
    pod["spec"]["initContainers"] = [{"name": "i"}]
    assert tables.pod_status(pod)[0] == "Init:0/1"
    row = tables.table(_type("pods"), [_pod_with(running)], now=1.8e9)["rows"][0]
    assert row["cells"][1:3] == ["1/2", "CrashLoopBackOff"] and row["cells"][3].startswith("3 (")


def _type(name: str) -> ResourceType:
    return next(t for t in BUILTIN_TYPES if t.name == name)


def test_node_roles_and_status() -> None:
    nodes = _type("nodes")
    labels = {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "agent"}
    node = {"metadata": {"name": "n", "labels": labels},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}], "nodeInfo": {"kubeletVersion": "v1"}}}
    cells = tables.table(nodes, [node])["rows"][0]["cells"]
    assert cells[:3] == ["n", "NotReady,SchedulingDisabled", "agent,control-plane"]
    del node["status"]["conditions"]
    assert tables.table(nodes, [node])["rows"][0]["cells"][1] == "Unknown,SchedulingDisabled"
