"""Talking to the cluster's API server with credentials fetched through ARM, held in memory only.

The kubeconfig from ``listClusterUserCredential`` is parsed in memory; the CA goes to the client as data.
Only client-certificate credentials (which the Python client reads from files) touch the disk, in a 0600
temporary directory that is removed when the ``session`` context exits. Nothing is written to the user's
kubeconfig. All waits are watches (``fieldSelector=metadata.name=...``), not polling loops.
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

from azure.cli.core.azclierror import ValidationError

from azext_virtualnode._consts import (CONNECTOR_LABEL_SELECTOR, CONNECTOR_NAMESPACE, LEASE_NAMESPACE, TAINT_EFFECT,
                                       TAINT_KEY, TAINT_VALUE, NODE_TYPE_LABEL)

REQUEST_TIMEOUT = 15


class ClusterUnreachable(Exception):
    """The API server could not be reached or refused the credentials."""


class ClusterAccessDenied(ClusterUnreachable):
    """401 (credentials rejected) or 403 (the verb on the resource is denied); ``message`` is the API server's."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the API server refused the {'credentials' if status == 401 else 'request'} "
                         f"({status}): {message}")
        self.status, self.server_message = status, message

    @classmethod
    def of(cls, exc: Any) -> "ClusterAccessDenied":
        import json
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.reason
        except (TypeError, ValueError, AttributeError):
            message = exc.reason
        return cls(exc.status, str(message or ""))


def fetch_kubeconfig(mc_client: Any, resource_group: str, name: str) -> dict[str, Any]:
    import yaml
    creds = mc_client.list_cluster_user_credentials(resource_group, name)
    raw = creds.kubeconfigs[0].value
    return yaml.safe_load(raw.decode() if isinstance(raw, (bytes, bytearray)) else raw)


@contextlib.contextmanager
def session(kubeconfig: dict[str, Any]) -> Iterator["Kube"]:
    """A Kube bound to the kubeconfig's current context; temporary credential files are always removed."""
    from kubernetes import client
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
    if user.get("token"):
        config.api_key = {"authorization": f"Bearer {user['token']}"}
    tmpdir = None
    try:
        if user.get("client-certificate-data") and user.get("client-key-data"):
            tmpdir = tempfile.mkdtemp(prefix="azvn-")
            os.chmod(tmpdir, 0o700)
            config.cert_file = _write_private(tmpdir, "client.crt", user["client-certificate-data"])
            config.key_file = _write_private(tmpdir, "client.key", user["client-key-data"])
        api = client.ApiClient(config)
        try:
            yield Kube(api)
        finally:
            api.close()
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _write_private(directory: str, name: str, b64: str) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(b64))
    return path


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
    return when or datetime.min.replace(tzinfo=timezone.utc)


class Kube:
    """The few API calls the commands make; every one is a GET by name or a selector-scoped list."""

    def __init__(self, api: Any) -> None:
        from kubernetes import client
        self.api = api
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError
        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status in (401, 403):
                raise ClusterAccessDenied.of(exc) from exc
            raise ClusterUnreachable(f"the API server answered {exc.status} {exc.reason}") from exc
        except (HTTPError, OSError) as exc:
            raise ClusterUnreachable(f"cannot reach the API server: {exc}") from exc

    def node(self, name: str) -> Any | None:
        return self._call(self.core.read_node, name)

    def lease(self, name: str) -> Any | None:
        return self._call(self.coordination.read_namespaced_lease, name, LEASE_NAMESPACE)

    def node_facts(self, name: str) -> NodeFacts:
        node = self.node(name)
        return node_facts_from(node, self.lease(name) if node is not None else None, name)

    def connector_pods(self, namespace: str = CONNECTOR_NAMESPACE,
                       selector: str = CONNECTOR_LABEL_SELECTOR) -> list[Any]:
        pods = self._call(self.core.list_namespaced_pod, namespace, label_selector=selector)
        return list(pods.items) if pods else []

    def pods_on_node(self, node_name: str) -> list[Any]:
        pods = self._call(self.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node_name}")
        return list(pods.items) if pods else []

    def namespace(self, name: str) -> Any | None:
        return self._call(self.core.read_namespace, name)

    def delete_node(self, name: str) -> bool:
        """Delete the node object; False when it was already gone."""
        return self._call(self.core.delete_node, name) is not None

    def helm_release_secrets(self, selector: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        """(namespace, labels, data) of the Secrets matching ``selector`` in all namespaces (Helm's records)."""
        secrets = self._call(self.core.list_secret_for_all_namespaces, label_selector=selector)
        return [(s.metadata.namespace, dict(s.metadata.labels or {}), dict(s.data or {}))
                for s in (secrets.items if secrets else [])]

    def pod_events(self, namespace: str, pod_name: str, limit: int = 5) -> list[Any]:
        events = self._call(self.core.list_namespaced_event, namespace,
                            field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod_name}")
        items = list(events.items) if events else []
        items.sort(key=_event_time)
        return items[-limit:]

    def pod_log_tail(self, namespace: str, pod_name: str, lines: int = 5) -> str:
        return self._call(self.core.read_namespaced_pod_log, namespace=namespace, name=pod_name,
                          tail_lines=lines) or ""

    def wait_node(self, name: str, deadline: float, want: Callable[[Any | None], bool]) -> Any | None:
        """Watch the node until ``want(node_or_None)`` holds; returns it. Raises TimeoutError at ``deadline``."""
        return self._wait_named("node", self.node, self.core.list_node, name=name, deadline=deadline, want=want)

    def wait_lease_fresh(self, name: str, duration: float, deadline: float) -> float:
        """Watch the node's Lease until it was renewed within ``duration`` seconds; returns its age."""
        def fresh(lease: Any | None) -> bool:
            age = _age_seconds(lease.spec.renew_time) if lease is not None and lease.spec else None
            return age is not None and age <= duration
        lease = self._wait_named("lease", self.lease, self.coordination.list_namespaced_lease,
                                 list_args=(LEASE_NAMESPACE,), name=name, deadline=deadline, want=fresh)
        return _age_seconds(lease.spec.renew_time)

    def _wait_named(self, kind: str, read: Callable[[str], Any | None], list_fn: Callable[..., Any], *,
                    list_args: tuple[Any, ...] = (), name: str, deadline: float,
                    want: Callable[[Any | None], bool]) -> Any | None:
        """Read the object by name, then watch it (``fieldSelector=metadata.name=``) until ``want`` holds.

        A watch that expires (410) or times out is re-established; other failures are ClusterUnreachable.
        """
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException
        obj = read(name)
        if want(obj):
            return obj
        while time.monotonic() < deadline:
            remaining = max(1, int(deadline - time.monotonic()))
            w = watch.Watch()
            try:
                for event in w.stream(list_fn, *list_args, field_selector=f"metadata.name={name}",
                                      timeout_seconds=remaining, _request_timeout=remaining + 5):
                    obj = None if event["type"] == "DELETED" else event["object"]
                    if want(obj):
                        return obj
            except ApiException as exc:
                if exc.status == 410:
                    continue
                if exc.status in (401, 403):
                    raise ClusterAccessDenied.of(exc) from exc
                raise ClusterUnreachable(f"watching {kind} {name} failed: {exc}") from exc
            except Exception as exc:  # pylint: disable=broad-except
                raise ClusterUnreachable(f"watching {kind} {name} failed: {exc}") from exc
            finally:
                w.stop()
            obj = read(name)
            if want(obj):
                return obj
        raise TimeoutError(name)
