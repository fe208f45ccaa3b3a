"""Protobuf request bodies (Helm's release Secrets) and the real helm v3 against the simulated API server."""
from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from aksim.kube.protobuf import MAGIC, ProtobufError, decode_object
from kube_harness import KUBECTL, ROOT, KubeServer

HELM = ROOT / ".tools" / "bin" / "helm"


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def field(number: int, payload: bytes | str | int | bool) -> bytes:
    if isinstance(payload, (bool, int)):
        return varint(number << 3) + varint(int(payload))
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(kind: str, raw: bytes, api_version: str = "v1") -> bytes:
    type_meta = field(1, api_version) + field(2, kind)
    return MAGIC + field(1, type_meta) + field(2, raw) + field(4, "application/vnd.kubernetes.protobuf")


def secret_bytes() -> bytes:
    meta = (field(1, "sh.helm.release.v1.demo.v1") + field(2, "") + field(3, "default") + field(7, 0)
            + field(8, b"") + field(11, field(1, "owner") + field(2, "helm"))
            + field(13, field(1, "Deployment") + field(3, "d") + field(4, "u-1") + field(5, "apps/v1")
                    + field(6, True))
            + field(14, "example.com/f"))
    data = field(2, field(1, "release") + field(2, b"\x00\x01binary"))
    return field(1, meta) + data + field(3, "helm.sh/release.v1")


def test_decode_secret() -> None:
    raw = secret_bytes()
    secret = decode_object(envelope("Secret", raw))
    assert secret == {
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": "sh.helm.release.v1.demo.v1", "namespace": "default", "labels": {"owner": "helm"},
                     "ownerReferences": [{"kind": "Deployment", "name": "d", "uid": "u-1", "apiVersion": "apps/v1",
                                          "controller": True}],
                     "finalizers": ["example.com/f"]},
        "data": {"release": base64.b64encode(b"\x00\x01binary").decode()}}


def test_decode_delete_options_and_errors() -> None:
    options = decode_object(envelope("DeleteOptions", field(1, -1) + field(2, field(1, "uid-1")) + field(4, "Orphan"),
                                     "meta.k8s.io/v1"))
    assert options == {"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions", "gracePeriodSeconds": -1,
                       "preconditions": {"uid": "uid-1"}, "propagationPolicy": "Orphan"}
    with pytest.raises(ProtobufError, match="Pod"):
        decode_object(envelope("Pod", b""))
    with pytest.raises(ProtobufError):
        decode_object(b'{"kind": "Secret"}')
    with pytest.raises(ProtobufError, match="truncated"):
        decode_object(envelope("Secret", field(1, b"\x0a\x50abc")))


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubeServer]:
    with KubeServer(tmp_path) as server:
        yield server


def test_protobuf_create_over_http(kube: KubeServer) -> None:
    raw = secret_bytes()
    status, created = kube.raw_json("POST", "/api/v1/namespaces/default/secrets", envelope("Secret", raw),
                                    headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert status == 201 and created["metadata"]["uid"] and created["type"] == "helm.sh/release.v1"
    assert created["metadata"]["creationTimestamp"].startswith("20")
    status, body = kube.raw_json("POST", "/api/v1/namespaces/default/pods", envelope("Pod", b""),
                                 headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


@pytest.mark.skipif(not HELM.exists(), reason="real helm missing (tools/fetch-kube-binaries.sh)")
def test_real_helm_install_upgrade_uninstall(kube: KubeServer, tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n"
        "  value: {{ .Values.value | quote }}\n")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(kube.home), "KUBECONFIG": str(kube.kubeconfig_path)}

    def helm(*args: str) -> str:
        proc = subprocess.run([str(HELM), *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "STATUS: deployed" in helm("install", "demo", str(chart), "--set", "value=1")
    assert kube.store.get("configmaps", "default", "demo-cm")["data"] == {"value": "1"}  # type: ignore[index]
    helm("upgrade", "demo", str(chart), "--set", "value=2")
    assert kube.store.get("configmaps", "default", "demo-cm")["data"] == {"value": "2"}  # type: ignore[index]
    releases = kube.store.list("secrets", "default", "owner=helm,name=demo")
    assert [s["metadata"]["labels"]["status"] for s in releases] == ["superseded", "deployed"]
    assert "demo" in helm("list")
    helm("uninstall", "demo")
    assert kube.store.list("secrets", "default", "owner=helm") == []
    assert kube.store.get("configmaps", "default", "demo-cm") is None


@pytest.mark.skipif(not KUBECTL.exists(), reason="real kubectl missing (tools/fetch-kube-binaries.sh)")
def test_kubectl_typed_create_commands(kube: KubeServer) -> None:
    kube.kubectl("create", "namespace", "team")
    kube.kubectl("create", "secret", "generic", "s1", "-n", "team", "--from-literal=a=b")
    kube.kubectl("create", "configmap", "c1", "-n", "team", "--from-literal=x=y")
    kube.kubectl("create", "serviceaccount", "robot", "-n", "team")
    kube.kubectl("create", "role", "r1", "-n", "team", "--verb=get,list", "--resource=pods")
    kube.kubectl("create", "rolebinding", "rb1", "-n", "team", "--role=r1", "--serviceaccount=team:robot")
    kube.kubectl("create", "clusterrolebinding", "crb1", "--clusterrole=view", "--user=alice", "--group=devs")
    store = kube.store
    assert store.get("namespaces", None, "team")["status"]["phase"] == "Active"  # type: ignore[index]
    assert store.get("secrets", "team", "s1")["data"] == {"a": "Yg=="}  # type: ignore[index]
    assert store.get("configmaps", "team", "c1")["data"] == {"x": "y"}  # type: ignore[index]
    assert store.get("serviceaccounts", "team", "robot") is not None
    role = store.get("roles.rbac.authorization.k8s.io", "team", "r1")
    assert role is not None and role["rules"] == [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]
    binding = store.get("rolebindings.rbac.authorization.k8s.io", "team", "rb1")
    assert binding is not None and binding["subjects"] == [{"kind": "ServiceAccount", "name": "robot",
                                                            "namespace": "team"}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"}
    cluster_binding = store.get("clusterrolebindings.rbac.authorization.k8s.io", None, "crb1")
    assert cluster_binding is not None and [s["kind"] for s in cluster_binding["subjects"]] == ["User", "Group"]
    rejected = kube.kubectl("create", "deployment", "d", "--image=nginx", check=False)
    assert rejected.returncode != 0 and "protobuf bodies of kind Deployment are not supported" in rejected.stderr
