"""The simulated kube-apiserver over HTTPS, driven by the real kubernetes python client and the real kubectl."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kube_harness import KUBECTL, KubeServer, node, pod

pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="real kubectl missing (tools/fetch-kube-binaries.sh)")

VIRTUAL_NODE_TAINT = {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeServer]:
    with KubeServer(tmp_path_factory.mktemp("kube")) as server:
        store = server.store
        store.create("nodes", node("aks-nodepool1-0", labels={"kubernetes.io/role": "agent"}))
        store.create("nodes", node("virtual-node-aci-linux", labels={"type": "virtual-kubelet",
                                                                     "kubernetes.io/role": "agent"},
                                   taints=[VIRTUAL_NODE_TAINT]))
        store.create("nodes", node("aks-nodepool1-1", ready="False"))
        store.create("pods", pod("aci-connector-linux-abc", "kube-system", node_name="aks-nodepool1-0",
                                 labels={"app": "aci-connector-linux"}))
        store.create("pods", pod("web-1", node_name="virtual-node-aci-linux", labels={"app": "web"}))
        store.create("pods", pod("web-2", node_name="aks-nodepool1-0", labels={"app": "web"}))
        yield server


@pytest.fixture(scope="module")
def core(kube: KubeServer) -> client.CoreV1Api:
    return client.CoreV1Api(kube.client())


@pytest.fixture(scope="module")
def apps(kube: KubeServer) -> client.AppsV1Api:
    return client.AppsV1Api(kube.client())


def names(items: list[Any]) -> list[str]:
    return [i.metadata.name for i in items]


# ------------------------------------------------------------------------------------------- discovery / auth

def test_discovery(kube: KubeServer) -> None:
    status, versions = kube.raw_json("GET", "/api")
    assert status == 200 and versions["kind"] == "APIVersions" and versions["versions"] == ["v1"]
    _, core_list = kube.raw_json("GET", "/api/v1")
    by_name = {r["name"]: r for r in core_list["resources"]}
    assert by_name["pods"]["shortNames"] == ["po"] and by_name["nodes"]["namespaced"] is False
    assert "watch" in by_name["pods"]["verbs"] and by_name["pods/log"]["verbs"] == ["get"]
    _, groups = kube.raw_json("GET", "/apis")
    assert {g["name"] for g in groups["groups"]} >= {"apps", "coordination.k8s.io", "rbac.authorization.k8s.io"}
    _, apps_list = kube.raw_json("GET", "/apis/apps/v1")
    scale = next(r for r in apps_list["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    status, headers, _ = kube.raw("GET", "/api", headers={"Accept": aggregated})
    assert status == 200 and headers["content-type"] == "application/json"     # kubectl falls back to legacy
    out = kube.kubectl("api-resources", "--no-headers").stdout
    assert any(line.split()[:2] == ["deployments", "deploy"] for line in out.splitlines())


def test_version_open_and_everything_else_needs_token(kube: KubeServer) -> None:
    status, version = kube.raw_json("GET", "/version", token=None)
    assert status == 200 and version["gitVersion"] == "v1.33.2" and version["minor"] == "33"
    status, body = kube.raw_json("GET", "/api/v1/nodes", token=None)
    assert status == 401
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(kube.client(token="wrong")).list_node()
    assert denied.value.status == 401
    assert kube.kubectl("get", "nodes", "--token=wrong", check=False).returncode != 0


# ------------------------------------------------------------------------------------------- lists & selectors

def test_field_and_label_selected_lists_python_client(core: client.CoreV1Api) -> None:
    on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=aks-nodepool1-0")
    assert names(on_node.items) == ["web-2", "aci-connector-linux-abc"]          # sorted by namespace/name
    assert on_node.metadata.resource_version
    connector = core.list_pod_for_all_namespaces(label_selector="app=aci-connector-linux")
    assert [(p.metadata.namespace, p.metadata.name) for p in connector.items] == [
        ("kube-system", "aci-connector-linux-abc")]
    assert names(core.list_namespaced_pod("default", label_selector="app in (web),app!=db").items) == ["web-1", "web-2"]
    assert names(core.list_namespaced_pod("default", field_selector="metadata.name=web-1").items) == ["web-1"]
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_pod("default", label_selector="app in (")
    assert bad.value.status == 400 and json.loads(bad.value.body)["reason"] == "BadRequest"


def test_plain_list_shape(kube: KubeServer) -> None:
    _, body = kube.raw_json("GET", "/api/v1/namespaces/default/pods")
    assert body["kind"] == "PodList" and body["apiVersion"] == "v1"
    assert all("kind" not in item and "apiVersion" not in item for item in body["items"])
    _, single = kube.raw_json("GET", "/api/v1/namespaces/default/pods/web-1")
    assert single["kind"] == "Pod" and single["apiVersion"] == "v1"


def test_kubectl_selectors(kube: KubeServer) -> None:
    out = kube.kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=virtual-node-aci-linux").stdout
    assert out.split("\n")[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[:4] for line in out.strip().splitlines()[1:]] == [["default", "web-1", "1/1", "Running"]]
    out = kube.kubectl("get", "pods", "-A", "-l", "app=aci-connector-linux", "-o", "name").stdout
    assert out.split() == ["pod/aci-connector-linux-abc"]


def test_paging_and_continue(core: client.CoreV1Api, kube: KubeServer) -> None:
    first = core.list_node(limit=2)
    assert len(first.items) == 2 and first.metadata._continue and first.metadata.remaining_item_count == 1
    rest = core.list_node(limit=2, _continue=first.metadata._continue)
    assert names(first.items + rest.items) == sorted(["aks-nodepool1-0", "aks-nodepool1-1", "virtual-node-aci-linux"])
    assert not rest.metadata._continue
    with pytest.raises(ApiException) as gone:
        core.list_node(limit=2, _continue="bm90LWEtdG9rZW4=")
    assert gone.value.status == 410 and json.loads(gone.value.body)["reason"] == "Expired"
    assert len(kube.kubectl("get", "nodes", "--chunk-size=1", "-o", "name").stdout.split()) == 3


# ------------------------------------------------------------------------------------------- printing

def test_kubectl_get_nodes_table(kube: KubeServer) -> None:
    out = kube.kubectl("get", "nodes").stdout.strip().splitlines()
    assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["virtual-node-aci-linux"][1:3] == ["Ready", "agent"]
    assert rows["aks-nodepool1-1"][1:3] == ["NotReady", "<none>"]
    wide = kube.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()[0].split()
    assert wide[5:7] == ["INTERNAL-IP", "EXTERNAL-IP"]


def test_table_shape(kube: KubeServer) -> None:
    _, table = kube.raw_json("GET", "/api/v1/nodes?limit=500", headers={"Accept": TABLE_ACCEPT})
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Status", "Roles", "Age", "Version"]
    row = table["rows"][0]
    assert row["object"]["kind"] == "PartialObjectMetadata" and "spec" not in row["object"]
    _, full = kube.raw_json("GET", "/api/v1/nodes/aks-nodepool1-0?includeObject=Object",
                            headers={"Accept": TABLE_ACCEPT})
    assert full["rows"][0]["object"]["kind"] == "Node" and "status" in full["rows"][0]["object"]


def test_kubectl_describe_node(kube: KubeServer) -> None:
    kube.store.create("leases.coordination.k8s.io", {"metadata": {"name": "virtual-node-aci-linux",
                                                                  "namespace": "kube-node-lease"},
                                                     "spec": {"holderIdentity": "virtual-node-aci-linux",
                                                              "leaseDurationSeconds": 40}})
    kube.store.create("events", {"metadata": {"name": "vn.1", "namespace": "default"},
                                 "involvedObject": {"kind": "Node", "name": "virtual-node-aci-linux",
                                                    "uid": "virtual-node-aci-linux"},
                                 "reason": "NodeReady", "message": "Node is ready", "type": "Normal",
                                 "count": 1, "source": {"component": "kubelet"}})
    out = kube.kubectl("describe", "node", "virtual-node-aci-linux").stdout
    assert "Taints:             virtual-kubelet.io/provider=azure:NoSchedule" in out
    assert "type=virtual-kubelet" in out and "Roles:              agent" in out
    assert "HolderIdentity:  virtual-node-aci-linux" in out
    assert "default                     web-1" in out                  # non-terminated pods on the node
    assert "NodeReady" in out and "Node is ready" in out               # events by involvedObject field selector


# ------------------------------------------------------------------------------------------- writes

DEPLOYMENT_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: default
  labels: {app: hello}
spec:
  replicas: 2
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      nodeSelector: {type: virtual-kubelet}
      tolerations: [{key: virtual-kubelet.io/provider, operator: Exists}]
      containers:
      - name: hello
        image: mcr.microsoft.com/azuredocs/aci-helloworld:IMAGE_TAG
        env: [{name: A, value: "1"}]
"""


def test_kubectl_apply_deployment(kube: KubeServer, tmp_path: Path) -> None:
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(DEPLOYMENT_YAML.replace("IMAGE_TAG", "v1"))
    assert "deployment.apps/hello created" in kube.kubectl("apply", "-f", str(manifest)).stdout
    out = kube.kubectl("get", "deploy").stdout.strip().splitlines()
    assert out[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert out[1].split()[:2] == ["hello", "0/2"]
    manifest.write_text(DEPLOYMENT_YAML.replace("IMAGE_TAG", "v2"))
    result = kube.kubectl("apply", "-f", str(manifest))
    assert "deployment.apps/hello configured" in result.stdout and "warning" not in result.stderr.lower()
    stored = kube.store.get("deployments.apps", "default", "hello")
    assert stored is not None and stored["metadata"]["generation"] == 2
    container = stored["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(":v2") and container["env"] == [{"name": "A", "value": "1"}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]
    assert "deployment.apps/hello scaled" in kube.kubectl("scale", "deploy", "hello", "--replicas=3").stdout
    assert kube.store.get("deployments.apps", "default", "hello")["spec"]["replicas"] == 3  # type: ignore[index]


def test_create_conflicts_and_errors(core: client.CoreV1Api, kube: KubeServer) -> None:
    body = {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    created = core.create_namespaced_config_map("default", body)
    assert created.metadata.uid and created.metadata.resource_version
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map("default", body)
    status = json.loads(exists.value.body)
    assert exists.value.status == 409 and status["reason"] == "AlreadyExists"
    assert status["details"] == {"name": "settings", "kind": "configmaps"}
    assert status["message"] == 'configmaps "settings" already exists'
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "default")
    assert missing.value.status == 404 and json.loads(missing.value.body)["message"] == 'configmaps "nope" not found'
    generated = core.create_namespaced_config_map("default", {"metadata": {"generateName": "gen-"}})
    assert generated.metadata.name.startswith("gen-")
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_pod("default", {"metadata": {"name": "nocontainers"}, "spec": {"containers": []}})
    assert invalid.value.status == 422 and json.loads(invalid.value.body)["reason"] == "Invalid"
    status_code, body404 = kube.raw_json("GET", "/api/v1/nosuchthing")
    assert status_code == 404 and body404["message"] == "the server could not find the requested resource"


def test_optimistic_concurrency(core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "occ"}, "data": {"v": "1"}})
    cm.data["v"] = "2"
    fresh = core.replace_namespaced_config_map("occ", "default", cm)
    assert fresh.data == {"v": "2"} and fresh.metadata.resource_version != cm.metadata.resource_version
    cm.data["v"] = "3"                       # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("occ", "default", cm)
    status = json.loads(stale.value.body)
    assert stale.value.status == 409 and status["reason"] == "Conflict"
    assert "the object has been modified" in status["message"]


def test_patch_types(core: client.CoreV1Api, apps: client.AppsV1Api, kube: KubeServer) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "patched", "labels": {"a": "1"}},
                                                  "data": {"x": "1"}})
    merged = core.patch_namespaced_config_map("patched", "default", {"metadata": {"labels": {"b": "2"}}},
                                              _content_type="application/merge-patch+json")
    assert merged.metadata.labels == {"a": "1", "b": "2"}
    json_patched = core.patch_namespaced_config_map("patched", "default",
                                                    [{"op": "replace", "path": "/data/x", "value": "9"}])
    assert json_patched.data == {"x": "9"}
    strategic = core.patch_namespaced_config_map("patched", "default", {"data": {"y": "2"}})  # dict -> strategic
    assert strategic.data == {"x": "9", "y": "2"}
    status, wrong = kube.raw_json("PATCH", "/api/v1/namespaces/default/configmaps/patched", {"data": {}},
                                  headers={"Content-Type": "application/json-patch+json"})
    assert status == 400 and wrong["reason"] == "BadRequest"
    with pytest.raises(ApiException) as failed_test:
        core.patch_namespaced_config_map("patched", "default", [{"op": "test", "path": "/data/x", "value": "0"}])
    assert failed_test.value.status == 422
    apps.create_namespaced_deployment("default", {
        "metadata": {"name": "smp"},
        "spec": {"selector": {"matchLabels": {"app": "smp"}}, "template": {
            "metadata": {"labels": {"app": "smp"}},
            "spec": {"containers": [{"name": "a", "image": "a:1", "env": [{"name": "E", "value": "1"}]},
                                    {"name": "b", "image": "b:1"}]}}}})
    patched = apps.patch_namespaced_deployment("smp", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "b", "image": "b:2"}]}}}}, _content_type="application/strategic-merge-patch+json")
    containers = patched.spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("a", "a:1"), ("b", "b:2")]
    assert patched.metadata.generation == 2
    status, headers, _ = kube.raw("PATCH", "/apis/apps/v1/namespaces/default/deployments/smp", b"{}",
                                  headers={"Content-Type": "application/apply-patch+yaml"})
    assert status == 415
    image_patch = '{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"a:3"}]}}}}'
    assert "patched" in kube.kubectl("patch", "deploy", "smp", "-p", image_patch).stdout


def test_status_scale_log_and_binding(core: client.CoreV1Api, apps: client.AppsV1Api, kube: KubeServer) -> None:
    core.create_namespaced_pod("default", {"metadata": {"name": "logger", "annotations": {
        "aksim.io/log": "line1\nline2\nline3\n"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    assert core.read_namespaced_pod_log("logger", "default") == "line1\nline2\nline3\n"
    assert core.read_namespaced_pod_log("logger", "default", tail_lines=1) == "line3\n"
    assert kube.kubectl("logs", "logger").stdout == "line1\nline2\nline3\n"
    # spec writes ignore status, status writes ignore spec
    pod_obj = core.read_namespaced_pod("logger", "default")
    pod_obj.status.phase = "Running"
    pod_obj.spec.active_deadline_seconds = 5
    replaced = core.replace_namespaced_pod("logger", "default", pod_obj)
    assert replaced.status.phase == "Pending" and replaced.spec.active_deadline_seconds == 5
    status_patched = core.patch_namespaced_pod_status(
        "logger", "default", {"status": {"phase": "Running", "podIP": "10.1.0.5"}, "spec": {"nodeName": "x"}},
        _content_type="application/merge-patch+json")
    assert status_patched.status.phase == "Running" and status_patched.spec.node_name is None
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "logger"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "aks-nodepool1-0"}}
    status, _ = kube.raw_json("POST", "/api/v1/namespaces/default/pods/logger/binding", binding)
    assert status == 201 and core.read_namespaced_pod("logger", "default").spec.node_name == "aks-nodepool1-0"
    status, again = kube.raw_json("POST", "/api/v1/namespaces/default/pods/logger/binding", binding)
    assert status == 409 and again["reason"] == "Conflict"

    apps.create_namespaced_replica_set("default", {
        "metadata": {"name": "scaled"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "s"}},
                                                 "template": {"metadata": {"labels": {"app": "s"}},
                                                              "spec": {"containers": [{"name": "c"}]}}}})
    scale = apps.read_namespaced_replica_set_scale("scaled", "default")
    assert scale.spec.replicas == 1 and scale.status.selector == "app=s"
    scale.spec.replicas = 4
    assert apps.replace_namespaced_replica_set_scale("scaled", "default", scale).spec.replicas == 4
    patched = apps.patch_namespaced_replica_set_scale("scaled", "default", {"spec": {"replicas": 2}},
                                                      _content_type="application/merge-patch+json")
    assert patched.spec.replicas == 2
    assert apps.read_namespaced_replica_set("scaled", "default").spec.replicas == 2
    scale.spec.replicas = 7                    # stale resourceVersion
    with pytest.raises(ApiException) as stale:
        apps.replace_namespaced_replica_set_scale("scaled", "default", scale)
    assert stale.value.status == 409


def test_delete_garbage_collects_owned_objects(core: client.CoreV1Api, apps: client.AppsV1Api,
                                               kube: KubeServer) -> None:
    deploy = apps.create_namespaced_deployment("default", {
        "metadata": {"name": "owner"},
        "spec": {"selector": {"matchLabels": {"app": "owner"}}, "template": {
            "metadata": {"labels": {"app": "owner"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "owner", "uid": deploy.metadata.uid,
           "controller": True, "blockOwnerDeletion": True}
    rs = apps.create_namespaced_replica_set("default", {
        "metadata": {"name": "owner-1", "ownerReferences": [ref], "labels": {"app": "owner"}},
        "spec": {"selector": {"matchLabels": {"app": "owner"}}, "template": {
            "metadata": {"labels": {"app": "owner"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    rs_ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "owner-1", "uid": rs.metadata.uid,
              "controller": True}
    core.create_namespaced_pod("default", {**pod("owner-1-x", labels={"app": "owner"}),
                                           "metadata": {"name": "owner-1-x", "ownerReferences": [rs_ref]}})
    deleted = apps.delete_namespaced_deployment("owner", "default", propagation_policy="Background")
    assert deleted.metadata.name == "owner" if hasattr(deleted, "metadata") else deleted
    assert core.list_namespaced_pod("default", field_selector="metadata.name=owner-1-x").items == []
    assert apps.list_namespaced_replica_set("default", label_selector="app=owner").items == []
    with pytest.raises(ApiException) as gone:
        apps.delete_namespaced_deployment("owner", "default")
    assert gone.value.status == 404
    kube.store.create("configmaps", {"metadata": {"name": "bye"}})
    assert 'configmap "bye" deleted' in kube.kubectl("delete", "configmap", "bye").stdout


# ------------------------------------------------------------------------------------------- watch

def test_watch_sees_node_created_from_another_thread(core: client.CoreV1Api, kube: KubeServer) -> None:
    def create_later() -> None:
        time.sleep(0.3)
        kube.store.create("nodes", node("late-node"))

    thread = threading.Thread(target=create_later)
    thread.start()
    seen = []
    w = watch.Watch()
    started = time.monotonic()
    for event in w.stream(core.list_node, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if event["object"].metadata.name == "late-node":
            w.stop()
    thread.join()
    assert ("ADDED", "aks-nodepool1-0") in seen                 # synthetic ADDED for current objects
    assert seen[-1] == ("ADDED", "late-node") and time.monotonic() - started < 4


def test_watch_timeout_resume_and_gone(core: client.CoreV1Api, kube: KubeServer) -> None:
    listed = core.list_namespaced_config_map("default")
    rv = listed.metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "w1", "labels": {"w": "yes"}}})
    core.patch_namespaced_config_map("w1", "default", {"metadata": {"labels": {"w": "no"}}},
                                     _content_type="application/merge-patch+json")
    core.delete_namespaced_config_map("w1", "default")
    started = time.monotonic()
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1)]
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    assert 0.9 < time.monotonic() - started < 3                 # the server closed the stream after timeoutSeconds
    selected = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, "default", label_selector="w=yes", resource_version=rv, timeout_seconds=1)]
    assert selected == [("ADDED", "w1"), ("DELETED", "w1")]      # stopped matching -> DELETED
    kube.store.bulk_load("configmaps", [{"metadata": {"name": "bulk-cm"}}])   # no history before this point
    with pytest.raises(ApiException) as gone:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=rv,
                                      timeout_seconds=1):
            pass
    assert gone.value.status == 410


def test_watch_as_table_and_bookmarks(kube: KubeServer) -> None:
    rv = kube.store.resource_version
    kube.store.create("nodes", node("table-node"))
    status, _, data = kube.raw("GET", f"/api/v1/nodes?watch=1&resourceVersion={rv}&timeoutSeconds=1",
                               headers={"Accept": TABLE_ACCEPT})
    events = [json.loads(line) for line in data.splitlines()]
    assert status == 200 and events[0]["type"] == "ADDED"
    table = events[0]["object"]
    assert table["kind"] == "Table" and table["rows"][0]["cells"][:2] == ["table-node", "Ready"]
    status, _, data = kube.raw("GET", "/api/v1/namespaces/kube-system/pods?watch=1&sendInitialEvents=true"
                                      "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1")
    events = [json.loads(line) for line in data.splitlines()]
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_stream_ends_when_endpoint_stops(tmp_path: Path) -> None:
    with KubeServer(tmp_path) as server:
        result: dict[str, Any] = {}

        def run() -> None:
            result["response"] = server.raw("GET", "/api/v1/nodes?watch=true", timeout=20)

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.3)
        started = time.monotonic()
        server.endpoint.stop()
        thread.join(timeout=5)
        assert not thread.is_alive() and time.monotonic() - started < 3
        assert result["response"][0] == 200


def test_watch_bookmarks_when_quiet(kube: KubeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from aksim.kube import api
    monkeypatch.setattr(api, "BOOKMARK_INTERVAL", 0.3)
    rv = kube.store.resource_version
    status, _, data = kube.raw("GET", f"/api/v1/namespaces/kube-public/configmaps?watch=1&resourceVersion={rv}"
                                      "&allowWatchBookmarks=true&timeoutSeconds=1")
    events = [json.loads(line) for line in data.splitlines()]
    assert status == 200 and events and {e["type"] for e in events} == {"BOOKMARK"}
    assert int(events[-1]["object"]["metadata"]["resourceVersion"]) >= rv
