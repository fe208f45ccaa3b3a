"""Talking to the cluster's API server with credentials fetched through ARM, held in memory only.

The kubeconfig from ``listClusterUserCredential`` is parsed in memory; the CA goes to the client as data.
Only client-certificate credentials (which the Python client reads from files) touch the disk, in a 0600
temporary directory that is removed when the ``session`` context exits. Nothing is written to the user's
kubeconfig. All waits are watches (``fieldSelector=metadata.name=...``), not polling loops. Every call
retries transient API-server errors (kube_retry); objects come back as light JSON views (kube_rest).
"""
from __future__ import annotations

import base64
import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator
from urllib.parse import quote

from azure.cli.core.azclierror import ValidationError

from azext_virtualnode import kube_retry
from azext_virtualnode._consts import (CONNECTOR_LABEL_SELECTOR, CONNECTOR_NAMESPACE, LEASE_NAMESPACE, TAINT_EFFECT,
                                       TAINT_KEY, TAINT_VALUE, NODE_TYPE_LABEL)
from azext_virtualnode.kube_retry import ApiServerError, ClusterAccessDenied, ClusterUnreachable

__all__ = ["ApiServerError", "ClusterAccessDenied", "ClusterUnreachable", "Kube", "NodeFacts", "session"]

REQUEST_TIMEOUT = 15
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
RETRY_WINDOW = 30.0     # how long one read retries transient errors (waits retry until their deadline)


def kubernetes_client() -> Any:
    """``kubernetes.client`` without the package's ``__init__``, which imports ``kubernetes.config`` (kubeconfig
    loaders, OIDC, exec plugins: ~0.3 s this module never needs, since it builds the Configuration itself).
    Submodules (``kubernetes.watch``) still import on demand."""
    import sys
    if "kubernetes" not in sys.modules:
        import importlib.util
        spec = importlib.util.find_spec("kubernetes")
        if spec is not None and spec.submodule_search_locations:
            sys.modules["kubernetes"] = importlib.util.module_from_spec(spec)
    import kubernetes.client  # pylint: disable=import-outside-toplevel
    return kubernetes.client


def fetch_kubeconfig(mc_client: Any, resource_group: str, name: str) -> dict[str, Any]:
    import yaml
    creds = mc_client.list_cluster_user_credentials(resource_group, name)
    raw = creds.kubeconfigs[0].value
    return yaml.safe_load(raw.decode() if isinstance(raw, (bytes, bytearray)) else raw)


@contextlib.contextmanager
def session(kubeconfig: dict[str, Any], until: float | None = None,
            retry_window: float = RETRY_WINDOW) -> Iterator["Kube"]:
    """A Kube bound to the kubeconfig's current context; temporary credential files are always removed.

    Its reads retry transient errors for ``retry_window`` seconds each, never past ``until`` (monotonic)."""
    with contextlib.ExitStack() as cleanup:
        yield Kube(new_api_client(kubeconfig, cleanup), until, retry_window)


def new_api_client(kubeconfig: dict[str, Any], cleanup: contextlib.ExitStack) -> Any:
    """The ``kubernetes`` ApiClient for the kubeconfig's current context, built from the in-memory kubeconfig
    (server, CA data, token or client certificate). What it leaves behind (the client, a 0600 directory holding
    a client certificate) is released by ``cleanup``."""
    client = kubernetes_client()
    ctx_name = kubeconfig.get("current-context")
    ctx = next((c["context"] for c in kubeconfig.get("contexts", []) if c["name"] == ctx_name),
               kubeconfig["contexts"][0]["context"])
    cluster = next((c["cluster"] for c in kubeconfig["clusters"] if c["name"] == ctx["cluster"]), None)
    if cluster is None:  # (a bare next() here would surface as "RuntimeError: generator raised StopIteration")
        raise ClusterUnreachable(f"the cluster credentials name no cluster '{ctx['cluster']}'")
    user = next((u["user"] for u in kubeconfig.get("users", []) if u["name"] == ctx.get("user")), {})
    if "exec" in user or "auth-provider" in user:   # Entra ID logins are resolved to tokens (credentials.py)
        raise ValidationError(
            "The cluster credentials use an exec or auth-provider plugin this command cannot run "
            f"('{(user.get('exec') or {}).get('command') or (user.get('auth-provider') or {}).get('name')}'). "
            "Only Microsoft Entra ID (kubelogin), token and client-certificate credentials are supported.")
    config = client.Configuration()
    config.host = cluster["server"]
    if cluster.get("certificate-authority-data"):
        config.ca_cert_data = base64.b64decode(cluster["certificate-authority-data"]).decode()
    config.verify_ssl = not cluster.get("insecure-skip-tls-verify", False)
    config.retries = False      # kube_retry decides (urllib3 would retry connection errors on its own)
    if user.get("token"):
        config.api_key = {"authorization": f"Bearer {user['token']}"}
    if user.get("client-certificate-data") and user.get("client-key-data"):
        tmpdir = tempfile.mkdtemp(prefix="azvn-")
        cleanup.callback(shutil.rmtree, tmpdir, ignore_errors=True)
        os.chmod(tmpdir, 0o700)
        config.cert_file = _write_private(tmpdir, "client.crt", user["client-certificate-data"])
        config.key_file = _write_private(tmpdir, "client.key", user["client-key-data"])
    api = client.ApiClient(config)
    cleanup.callback(api.close)
    return api


def _write_private(directory: str, name: str, b64: str) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(b64))
    return path


def owned_by_daemonset(pod: Any) -> bool:
    """DaemonSet pods follow every node, virtual ones included; they never block removing a node."""
    return any(ref.kind == "DaemonSet" for ref in pod.metadata.owner_references or [])


def _age_seconds(ts: Any) -> float | None:
    if ts is None:
        return None
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return (datetime.now(timezone.utc) - ts).total_seconds()


@dataclass
class NodeFacts:  # pylint: disable=too-many-instance-attributes
    name: str
    registered: bool
    ready: bool = False
    ready_status: str = "Unknown"
    kubelet_version: str | None = None
    labels: dict[str, str] | None = None
    taints: list[dict[str, str]] | None = None
    lease_age: float | None = None

    @property
    def taint_ok(self) -> bool:
        return any(t.get("key") == TAINT_KEY and t.get("value") == TAINT_VALUE and t.get("effect") == TAINT_EFFECT
                   for t in self.taints or [])

    @property
    def label_ok(self) -> bool:
        return (self.labels or {}).get(NODE_TYPE_LABEL[0]) == NODE_TYPE_LABEL[1]

    def lease_fresh(self, duration: float) -> bool:
        return self.lease_age is not None and self.lease_age <= duration


def node_facts_from(node: Any, lease: Any | None, name: str) -> NodeFacts:
    if node is None:
        return NodeFacts(name=name, registered=False)
    cond = next((c for c in (node.status.conditions or []) if c.type == "Ready"), None)
    taints = [{"key": t.key, "value": t.value or "", "effect": t.effect} for t in node.spec.taints or []]
    return NodeFacts(name=name, registered=True, ready=bool(cond and cond.status == "True"),
                     ready_status=cond.status if cond else "Unknown",
                     kubelet_version=node.status.node_info.kubelet_version if node.status.node_info else None,
                     labels=dict(node.metadata.labels or {}), taints=taints,
                     lease_age=_age_seconds(lease.spec.renew_time) if lease is not None and lease.spec else None)


def _event_time(event: Any) -> datetime:
    when = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return when or datetime.min.replace(tzinfo=timezone.utc)


class Kube:
    """The few API calls the commands make; every one is a GET by name or a selector-scoped list."""

    def __init__(self, api: Any, until: float | None = None, retry_window: float = RETRY_WINDOW) -> None:
        from azext_virtualnode.kube_rest import Rest
        self.api = api
        self.rest = Rest(api)
        self.until, self.retry_window = until, retry_window

    def _until(self) -> float:
        end = time.monotonic() + self.retry_window
        return end if self.until is None else min(end, self.until)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``; None on 404; transient errors retried (kube_retry)."""
        from kubernetes.client.exceptions import ApiException

        def once() -> Any:
            try:
                return fn(*args, timeout=REQUEST_TIMEOUT, **kwargs)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        return kube_retry.call(once, self._until())

    def _get(self, url_path: str, **query: Any) -> Any | None:
        return self._call(self.rest.get, url_path, query)

    def node(self, name: str) -> Any | None:
        return self._get(f"/api/v1/nodes/{quote(name)}")

    def lease(self, name: str) -> Any | None:
        return self._get(f"{LEASES}/{quote(name)}")

    def node_facts(self, name: str) -> NodeFacts:
        node = self.node(name)
        return node_facts_from(node, self.lease(name) if node is not None else None, name)

    def connector_pods(self, namespace: str = CONNECTOR_NAMESPACE,
                       selector: str = CONNECTOR_LABEL_SELECTOR) -> list[Any]:
        pods = self._get(f"/api/v1/namespaces/{quote(namespace)}/pods", labelSelector=selector)
        return list(pods.items or []) if pods else []

    def pods_on_node(self, node_name: str) -> list[Any]:
        pods = self._get("/api/v1/pods", fieldSelector=f"spec.nodeName={node_name}")
        return list(pods.items or []) if pods else []

    def pod(self, namespace: str, name: str) -> Any | None:
        return self._get(f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}")

    def list_raw(self, url_path: str, **query: Any) -> list[dict[str, Any]]:
        """The items of a list call as plain JSON dicts (for the pure rules that read whole objects)."""
        found = self._get(url_path, **query)
        return [item.raw for item in (found.items or [])] if found else []

    def access_allowed(self, verb: str, resource: str, group: str = "") -> bool:
        """A SelfSubjectAccessReview: may the caller ``verb`` ``resource`` cluster-wide?"""
        review = self._call(self.rest.post, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "group": group}}})
        return bool(review is not None and review.status and review.status.allowed)

    def namespace(self, name: str) -> Any | None:
        return self._get(f"/api/v1/namespaces/{quote(name)}")

    def delete_node(self, name: str) -> bool:
        """Delete the node object; False when it was already gone."""
        return self._call(self.rest.delete, f"/api/v1/nodes/{quote(name)}") is not None

    def delete_pod(self, namespace: str, name: str) -> bool:
        """Delete a pod (its controller recreates it); False when it was already gone."""
        return self._call(self.rest.delete, f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}") is not None

    def helm_release_secrets(self, selector: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        """(namespace, labels, data) of the Secrets matching ``selector`` in all namespaces (Helm's records)."""
        secrets = self._get("/api/v1/secrets", labelSelector=selector)
        return [(s.metadata.namespace, dict(s.metadata.labels or {}), dict(s.data or {}))
                for s in ((secrets.items or []) if secrets else [])]

    def pod_events(self, namespace: str, pod_name: str, limit: int = 5) -> list[Any]:
        events = self._get(f"/api/v1/namespaces/{quote(namespace)}/events",
                           fieldSelector=f"involvedObject.kind=Pod,involvedObject.name={pod_name}")
        items = list(events.items or []) if events else []
        items.sort(key=_event_time)
        return items[-limit:]

    def pod_log_tail(self, namespace: str, pod_name: str, lines: int = 5, container: str | None = None) -> str:
        return self._call(self.rest.get_text, f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod_name)}/log",
                          {"tailLines": lines, "container": container}) or ""

    # -- generic reads and writes by path (Virtual Nodes v2: connectors/v2_kube.py) --------------------------
    def get(self, url_path: str, **query: Any) -> Any | None:
        """GET ``url_path`` (a named object or a selector-scoped list); None on 404; transient errors retried."""
        return self._get(url_path, **query)

    def write(self, method: str, url_path: str, body: dict[str, Any], content_type: str = "application/json") -> Any:
        """POST/PATCH ``body``; None on 404. Other API errors raise ``ApiException`` (e.g. 429 for an eviction a
        PodDisruptionBudget blocks); transient errors are retried."""
        return self._call(self.rest.write, method, url_path, body, content_type)

    def wait_node(self, name: str, deadline: float, want: Callable[[Any | None], bool]) -> Any | None:
        """Watch the node until ``want(node_or_None)`` holds; returns it. Raises TimeoutError at ``deadline``."""
        return self._wait_named("node", self.node, "/api/v1/nodes", name=name, deadline=deadline, want=want)

    def wait_lease_fresh(self, name: str, duration: float, deadline: float) -> float:
        """Watch the node's Lease until it was renewed within ``duration`` seconds; returns its age."""
        def fresh(lease: Any | None) -> bool:
            age = _age_seconds(lease.spec.renew_time) if lease is not None and lease.spec else None
            return age is not None and age <= duration
        lease = self._wait_named("lease", self.lease, LEASES, name=name, deadline=deadline, want=fresh)
        return _age_seconds(lease.spec.renew_time)

    def _wait_named(self, kind: str, read: Callable[[str], Any | None], list_path: str, *, name: str,
                    deadline: float, want: Callable[[Any | None], bool]) -> Any | None:
        """Read the object by name, then watch it (``fieldSelector=metadata.name=``) until ``want`` holds.

        Transient errors (5xx, 429, connection loss, an outage) are retried with back-off until ``deadline``;
        a broken watch resumes from the last resourceVersion it saw, an expired one (410) re-reads the object.
        """
        from kubernetes.client.exceptions import ApiException
        outer = self.until, self.retry_window
        self.until, self.retry_window = deadline, float("inf")    # reads inside a wait retry until its deadline
        backoff = kube_retry.Backoff()
        try:
            obj = read(name)
            if want(obj):
                return obj
            rv = obj.metadata.resource_version if obj is not None else None
            while time.monotonic() < deadline:
                remaining = max(1, int(deadline - time.monotonic()))
                try:
                    for event in self.rest.watch(list_path, {"fieldSelector": f"metadata.name={name}",
                                                             "timeoutSeconds": remaining, "resourceVersion": rv},
                                                 timeout=(REQUEST_TIMEOUT, remaining + 5)):
                        backoff.reset()
                        obj = None if event["type"] == "DELETED" else event["object"]
                        rv = (event["object"].metadata.resource_version if event["object"] else None) or rv
                        if want(obj):
                            return obj
                except ApiException as exc:
                    if exc.status == 410:            # too old: start again from a fresh read
                        rv = None
                    else:
                        self._pause(exc, backoff, deadline, f"watching {kind} {name}")
                except Exception as exc:  # pylint: disable=broad-except
                    self._pause(exc, backoff, deadline, f"watching {kind} {name}")
                if rv is None:
                    obj = read(name)
                    if want(obj):
                        return obj
                    rv = obj.metadata.resource_version if obj is not None else None
            raise TimeoutError(name)
        finally:
            self.until, self.retry_window = outer

    @staticmethod
    def _pause(exc: Exception, backoff: kube_retry.Backoff, deadline: float, what: str) -> None:
        """Sleep before re-establishing a broken watch, or raise the classified error when that cannot help."""
        retryable, retry_after, error = kube_retry.classify(exc)
        if error is None:
            error = ClusterUnreachable(f"{what} failed: {exc}")
            retryable = True      # e.g. a stream cut mid-line (ProtocolError wrapped by the client)
        if not retryable:
            raise error from exc
        delay = backoff.next(retry_after)
        if time.monotonic() + delay > deadline:
            raise TimeoutError(what) from exc
        time.sleep(delay)
