"""A standalone simulated kube-apiserver over HTTPS for the kube tests: store, endpoint, kubeconfig, kubectl."""
from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import trustme
import yaml

from aksim.httpcore import Endpoint, FaultTable
from aksim.kube.api import KubeApi, bearer_auth, kube_error
from aksim.kube.store import KubeStore

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
TOKEN = "tok"


class KubeServer:
    def __init__(self, workdir: Path, *, store: KubeStore | None = None) -> None:
        self.workdir = workdir
        self.store = store or KubeStore(threading.RLock())
        self.api = KubeApi(self.store, version={"gitVersion": "v1.33.2"})
        self.ca = trustme.CA()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        self.endpoint = Endpoint("kube", self.api.router, FaultTable(), ssl_context=ctx, error_renderer=kube_error,
                                 authenticate=bearer_auth({TOKEN}))
        self.kubeconfig_path = workdir / "kubeconfig"
        self.home = workdir / "home"

    def __enter__(self) -> "KubeServer":
        self.endpoint.start()
        self.home.mkdir(exist_ok=True)
        self.kubeconfig_path.write_text(yaml.safe_dump(self.kubeconfig()))
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.endpoint.stop()

    @property
    def url(self) -> str:
        return self.endpoint.url

    def kubeconfig(self, token: str = TOKEN) -> dict[str, Any]:
        ca_data = base64.b64encode(self.ca.cert_pem.bytes()).decode()
        return {"apiVersion": "v1", "kind": "Config", "current-context": "sim",
                "clusters": [{"name": "sim", "cluster": {"server": self.url, "certificate-authority-data": ca_data}}],
                "users": [{"name": "user", "user": {"token": token}}],
                "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "user"}}]}

    def client(self, token: str = TOKEN) -> Any:
        from kubernetes import config
        return config.new_client_from_config_dict(self.kubeconfig(token))

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.home), "KUBECONFIG": str(self.kubeconfig_path)}
        proc = subprocess.run([str(KUBECTL), *args], env=env, input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def raw(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
            token: str | None = TOKEN, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
        """One plain HTTPS request: (status, lower-cased headers, body); dict bodies are sent as JSON."""
        ctx = ssl.create_default_context(cadata=self.ca.cert_pem.bytes().decode())
        conn = http.client.HTTPSConnection("127.0.0.1", self.endpoint.port, context=ctx, timeout=timeout)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        try:
            conn.request(method, path, body=data, headers=all_headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def raw_json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        status, _headers, data = self.raw(method, path, body, **kwargs)
        return status, json.loads(data) if data else None

    def requests(self) -> list[str]:
        return [f"{e['method']} {e['path']}?{e['query']}" for e in self.endpoint.log.snapshot()["entries"]]


def node(name: str, *, ready: str = "True", labels: dict[str, str] | None = None,
         taints: list[dict[str, str]] | None = None, version: str = "v1.33.2") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                       "message": "kubelet is ready."}],
                       "addresses": [{"type": "InternalIP", "address": "10.224.0.4"}],
                       "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                       "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                       "nodeInfo": {"kubeletVersion": version, "osImage": "Ubuntu 22.04", "kernelVersion": "5.15",
                                    "containerRuntimeVersion": "containerd://1.7", "architecture": "amd64",
                                    "operatingSystem": "linux"}}}


def pod(name: str, namespace: str = "default", *, node_name: str = "", labels: dict[str, str] | None = None,
        phase: str = "Running") -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                           "spec": {"containers": [{"name": "main", "image": "nginx"}]},
                           "status": {"phase": phase}}
    if node_name:
        obj["spec"]["nodeName"] = node_name
    if phase == "Running":
        obj["status"]["containerStatuses"] = [{"name": "main", "ready": True, "restartCount": 0, "image": "nginx",
                                               "imageID": "",
                                               "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}}}]
    return obj
