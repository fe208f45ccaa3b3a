"""KubeStore semantics as the control plane uses them (no HTTP)."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from aksim.kube.store import (AlreadyExists, Conflict, Gone, Invalid, KubeStore, NotFound, StoreEvent,
                              DEFAULT_HISTORY)
from kube_harness import node, pod


@pytest.fixture
def store() -> KubeStore:
    return KubeStore(threading.RLock())


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}}


def test_create_sets_metadata_and_defaults(store: KubeStore) -> None:
    created = store.create("deployments.apps", deployment("web"))
    meta = created["metadata"]
    assert created["kind"] == "Deployment" and created["apiVersion"] == "apps/v1"
    assert meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z") and len(meta["creationTimestamp"]) == 20
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"
    generated = store.create("pods", {"metadata": {"generateName": "web-", "namespace": "default"},
                                      "spec": {"containers": [{"name": "c"}]}})
    assert generated["metadata"]["name"].startswith("web-") and len(generated["metadata"]["name"]) == 9
    assert generated["status"]["phase"] == "Pending"
    with pytest.raises(AlreadyExists):
        store.create("deployments.apps", deployment("web"))
    with pytest.raises(NotFound, match='namespaces "nope" not found'):
        store.create("pods", pod("p", "nope"))
    with pytest.raises(Invalid, match="spec.containers"):
        store.create("pods", {"metadata": {"name": "bad"}, "spec": {}})
    with pytest.raises(Invalid, match="metadata.name"):
        store.create("configmaps", {"metadata": {"name": "Bad_Name"}})
    store.ensure_namespace("nope")
    assert store.create("pods", pod("p", "nope"))["metadata"]["namespace"] == "nope"


def test_get_and_list_return_copies(store: KubeStore) -> None:
    store.create("nodes", node("n1"))
    got = store.get("nodes", None, "n1")
    assert got is not None
    got["metadata"]["labels"]["x"] = "y"
    assert "x" not in store.get("nodes", None, "n1")["metadata"]["labels"]  # type: ignore[index]
    store.list("nodes")[0]["spec"]["unschedulable"] = True
    assert "unschedulable" not in store.get("nodes", None, "n1")["spec"]  # type: ignore[index]
    assert store.get("nodes", None, "missing") is None


def test_update_concurrency_and_generation(store: KubeStore) -> None:
    created = store.create("deployments.apps", deployment("web"))
    stale = dict(created)
    created["spec"]["replicas"] = 3
    updated = store.update("deployments.apps", created)
    assert updated["metadata"]["generation"] == 2
    assert int(updated["metadata"]["resourceVersion"]) > int(stale["metadata"]["resourceVersion"])
    with pytest.raises(Conflict, match="the object has been modified"):
        store.update("deployments.apps", stale)
    updated["status"] = {"replicas": 3}
    status_only = store.update("deployments.apps", updated)
    assert status_only["metadata"]["generation"] == 2
    unconditional = store.get("deployments.apps", "default", "web")
    assert unconditional is not None
    del unconditional["metadata"]["resourceVersion"]
    unconditional["metadata"]["labels"] = {"a": "b"}
    assert store.update("deployments.apps", unconditional)["metadata"]["labels"] == {"a": "b"}
    same = store.get("deployments.apps", "default", "web")
    assert store.update("deployments.apps", same)["metadata"]["resourceVersion"] == \
        same["metadata"]["resourceVersion"]  # type: ignore[index]  # no-op update commits nothing
    with pytest.raises(NotFound):
        store.update("deployments.apps", deployment("other"))


def test_mutate(store: KubeStore) -> None:
    store.create("nodes", node("n1"))
    result = store.mutate("nodes", None, "n1", lambda n: n["spec"].update(unschedulable=True))
    assert result["spec"]["unschedulable"] is True
    assert store.get("nodes", None, "n1")["spec"]["unschedulable"] is True  # type: ignore[index]
    with pytest.raises(NotFound):
        store.mutate("nodes", None, "nope", lambda n: None)


def test_subscribe_sees_every_write_under_lock(store: KubeStore) -> None:
    seen: list[tuple[str, str, str]] = []

    def callback(event_type: str, resource: str, obj: dict[str, Any]) -> None:
        assert store.lock._is_owned()  # type: ignore[attr-defined]
        obj["metadata"]["name"] = "tampered"            # subscribers get copies
        seen.append((event_type, resource, obj["kind"]))

    store.subscribe(callback)
    store.create("nodes", node("n1"))
    store.mutate("nodes", None, "n1", lambda n: n["metadata"]["labels"].update(a="b"))
    store.delete("nodes", None, "n1")
    assert seen == [("ADDED", "nodes", "Node"), ("MODIFIED", "nodes", "Node"), ("DELETED", "nodes", "Node")]


def test_indexed_lists(store: KubeStore) -> None:
    store.ensure_namespace("other")
    for i in range(6):
        store.create("pods", pod(f"p{i}", "default" if i % 2 else "other", node_name=f"n{i % 3}",
                                 labels={"app": "a" if i < 3 else "b", "idx": str(i)}))
    names = lambda items: [p["metadata"]["name"] for p in items]  # noqa: E731
    assert names(store.list("pods", field_selector="spec.nodeName=n1")) == ["p1", "p4"]
    assert names(store.list("pods", "default", field_selector="spec.nodeName=n1")) == ["p1"]
    assert names(store.list("pods", label_selector="app=b,idx!=4")) == ["p3", "p5"]
    assert names(store.list("pods", label_selector="idx in (0,1,9)")) == ["p1", "p0"]       # sorted by ns/name
    assert names(store.list("pods", label_selector="!idx")) == []
    assert names(store.list("pods", field_selector="metadata.name=p2")) == ["p2"]
    assert names(store.list("pods", field_selector="metadata.namespace=default,status.phase=Running")) == \
        ["p1", "p3", "p5"]
    store.mutate("pods", "default", "p1", lambda p: p["spec"].update(nodeName="n2"))
    store.mutate("pods", "default", "p3", lambda p: p["metadata"]["labels"].update(app="c"))
    assert names(store.list("pods", field_selector="spec.nodeName=n1")) == ["p4"]
    assert names(store.list("pods", label_selector="app=c")) == ["p3"]
    store.delete("pods", "other", "p4")
    assert names(store.list("pods", field_selector="spec.nodeName=n1")) == []


def test_paging(store: KubeStore) -> None:
    for i in range(7):
        store.create("configmaps", {"metadata": {"name": f"cm{i}"}})
    first = store.list_page("configmaps", "default", limit=3)
    assert [o["metadata"]["name"] for o in first.items] == ["cm0", "cm1", "cm2"] and first.remaining == 4
    second = store.list_page("configmaps", "default", limit=3, after=first.next_key)
    third = store.list_page("configmaps", "default", limit=3, after=second.next_key)
    assert [o["metadata"]["name"] for o in second.items + third.items] == ["cm3", "cm4", "cm5", "cm6"]
    assert third.next_key is None


def test_garbage_collection(store: KubeStore) -> None:
    deploy = store.create("deployments.apps", deployment("web"))
    owner = lambda o: [{"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"],  # noqa: E731
                        "uid": o["metadata"]["uid"], "controller": True}]
    rs = store.create("replicasets.apps", {**deployment("web-1"), "metadata": {
        "name": "web-1", "namespace": "default", "ownerReferences": owner(deploy)}})
    store.create("pods", {**pod("web-1-a"), "metadata": {"name": "web-1-a", "namespace": "default",
                                                         "ownerReferences": owner(rs)}})
    shared = store.create("configmaps", {"metadata": {"name": "shared", "ownerReferences":
                                                      owner(rs) + owner(store.get("nodes", None, "n") or
                                                                        store.create("nodes", node("n")))}})
    assert shared
    store.delete("deployments.apps", "default", "web")
    assert store.get("replicasets.apps", "default", "web-1") is None
    assert store.get("pods", "default", "web-1-a") is None
    remaining = store.get("configmaps", "default", "shared")
    assert remaining is not None and [r["kind"] for r in remaining["metadata"]["ownerReferences"]] == ["Node"]

    deploy = store.create("deployments.apps", deployment("keep"))
    store.create("replicasets.apps", {**deployment("keep-1"), "metadata": {
        "name": "keep-1", "namespace": "default", "ownerReferences": owner(deploy)}})
    store.delete("deployments.apps", "default", "keep", propagation="Orphan")
    orphan = store.get("replicasets.apps", "default", "keep-1")
    assert orphan is not None and "ownerReferences" not in orphan["metadata"]


def test_finalizers_delay_deletion(store: KubeStore) -> None:
    store.create("configmaps", {"metadata": {"name": "f", "finalizers": ["example.com/x"]}})
    marked = store.delete("configmaps", "default", "f")
    assert marked is not None and marked["metadata"]["deletionTimestamp"]
    assert store.get("configmaps", "default", "f") is not None
    store.mutate("configmaps", "default", "f", lambda o: o["metadata"].pop("finalizers"))
    assert store.get("configmaps", "default", "f") is None
    assert store.delete("configmaps", "default", "f") is None


def test_namespace_deletion_removes_contents(store: KubeStore) -> None:
    store.ensure_namespace("team")
    store.create("pods", pod("p", "team"))
    store.create("configmaps", {"metadata": {"name": "c", "namespace": "team"}})
    store.delete("namespaces", None, "team")
    assert store.list("pods", "team") == [] and store.list("configmaps", "team") == []


def _drain(start: Any) -> list[tuple[str, str]]:
    out = []
    for event in start.initial:
        seen = start.watcher.translate(event)
        if seen:
            out.append((seen[0], seen[1]["metadata"]["name"]))
    while (event := start.watcher.next(0)) is not None:
        seen = start.watcher.translate(event)
        if seen:
            out.append((seen[0], seen[1]["metadata"]["name"]))
    return out


def test_watch_selector_transitions_and_resume(store: KubeStore) -> None:
    store.create("pods", pod("a", labels={"app": "x"}))
    rv = store.resource_version
    start = store.watch("pods", "default", "app=x")
    store.create("pods", pod("b", labels={"app": "y"}))
    store.mutate("pods", "default", "b", lambda p: p["metadata"]["labels"].update(app="x"))   # enters: ADDED
    store.mutate("pods", "default", "a", lambda p: p["metadata"]["labels"].update(app="z"))   # leaves: DELETED
    store.mutate("pods", "default", "b", lambda p: p["metadata"].update(annotations={"k": "v"}))
    store.delete("pods", "default", "b")
    expected = [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a"), ("MODIFIED", "b"), ("DELETED", "b")]
    assert _drain(start) == expected
    store.unwatch(start)
    assert _drain(store.watch("pods", "default", "app=x", since=rv)) == expected[1:]


def test_watch_history_is_bounded(store: KubeStore) -> None:
    first_rv = store.resource_version
    store.create("configmaps", {"metadata": {"name": "c", "labels": {"n": "0"}}})
    for i in range(DEFAULT_HISTORY + 5):
        store.mutate("configmaps", "default", "c", lambda o, i=i: o["metadata"]["labels"].update(n=str(i)))
    with pytest.raises(Gone, match="too old resource version"):
        store.watch("configmaps", since=first_rv)
    recent = store.watch("configmaps", since=store.resource_version - 3)
    assert [e.type for e in recent.initial] == ["MODIFIED"] * 3
    assert all(isinstance(e, StoreEvent) for e in recent.initial)


def test_bulk_load(store: KubeStore) -> None:
    seen: list[str] = []
    store.subscribe(lambda t, r, o: seen.append(r))
    before = store.resource_version
    count = store.bulk_load("pods", (pod(f"p{i}", "bulk", node_name="n1", labels={"app": "a"}) for i in range(50)))
    store.bulk_load("configmaps", [{"metadata": {"name": "seeded", "uid": "fixed-uid",
                                                 "creationTimestamp": "2020-01-01T00:00:00Z"}}])
    seeded = store.get("configmaps", "default", "seeded")
    assert seeded is not None and seeded["metadata"]["uid"] == "fixed-uid"
    assert seeded["metadata"]["creationTimestamp"] == "2020-01-01T00:00:00Z"
    assert count == 50 and seen == ["namespaces"]            # the namespace was created, the pods were not fanned out
    pods = store.list("pods", "bulk", "app=a", "spec.nodeName=n1")
    assert len(pods) == 50 and all(p["metadata"]["uid"] and p["metadata"]["resourceVersion"] for p in pods)
    with pytest.raises(Gone):
        store.watch("pods", since=before)
    with pytest.raises(AlreadyExists):
        store.bulk_load("pods", [pod("p0", "bulk")])
