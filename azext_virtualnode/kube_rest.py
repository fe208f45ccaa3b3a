"""The few Kubernetes REST calls the commands make, over the ``kubernetes`` client's ApiClient (its TLS,
credentials and connection pool), answered as light JSON views instead of the generated models.

Why: in ``kubernetes`` 37 the generated API classes and models are pydantic classes; importing ``CoreV1Api``
alone builds ~250 of them (~0.5 s, a third of ``status``). The commands read a handful of fields, so they get
``Resource`` views of the JSON: attribute access in the models' snake_case (``pod.status.container_statuses``)
maps to the wire's camelCase, missing fields are None, maps (labels, annotations, data) stay plain dicts.
"""
from __future__ import annotations

import json
from typing import Any, Iterator


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


MAPS = frozenset({"labels", "annotations", "data", "stringData", "capacity", "allocatable", "nodeSelector"})


def view(value: Any) -> Any:
    if isinstance(value, dict):
        return Resource(value)
    if isinstance(value, list):
        return [view(v) for v in value]
    return value


class Resource:
    """A JSON object with model-style attribute access (snake_case → camelCase); absent fields are None.
    Maps (labels, annotations, data, ...) are returned as plain dicts; ``raw`` is the JSON itself."""
    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        key = _camel(name)
        value = self.raw.get(key, self.raw.get(name))
        return value if key in MAPS else view(value)

    def __repr__(self) -> str:
        return f"Resource({self.raw.get('kind', '')} {(self.raw.get('metadata') or {}).get('name', '')})"


class Rest:
    """GET/POST/DELETE/watch by path through the ApiClient (auth headers and TLS as the client configures them)."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def _send(self, method: str, url_path: str, query: dict[str, Any] | None, timeout: Any,
              body: dict[str, Any] | None = None) -> Any:
        from kubernetes.client.exceptions import ApiException
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        params = self.api.param_serialize(method=method, resource_path=url_path,
                                          query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
                                          header_params=headers, body=body,
                                          auth_settings=["BearerToken"])
        resp = self.api.call_api(*params, _request_timeout=timeout)
        if not 200 <= resp.status <= 299:
            resp.read()
            raise ApiException(http_resp=resp)
        return resp

    def get(self, url_path: str, query: dict[str, Any] | None = None, timeout: Any = None) -> Resource:
        resp = self._send("GET", url_path, query, timeout)
        return view(json.loads(resp.read() or b"{}"))

    def get_text(self, url_path: str, query: dict[str, Any] | None = None, timeout: Any = None) -> str:
        return self._send("GET", url_path, query, timeout).read().decode(errors="replace")

    def post(self, url_path: str, body: dict[str, Any], timeout: Any = None) -> Resource:
        resp = self._send("POST", url_path, None, timeout, body)
        return view(json.loads(resp.read() or b"{}"))

    def delete(self, url_path: str, timeout: Any = None) -> Resource:
        resp = self._send("DELETE", url_path, None, timeout)
        return view(json.loads(resp.read() or b"{}"))

    def write(self, method: str, url_path: str, body: dict[str, Any], content_type: str = "application/json",
              timeout: Any = None) -> Resource:
        """POST/PATCH/PUT a JSON ``body`` (``content_type``: e.g. application/merge-patch+json for PATCH)."""
        from kubernetes.client.exceptions import ApiException
        params = self.api.param_serialize(method=method, resource_path=url_path, body=body,
                                          header_params={"Accept": "application/json", "Content-Type": content_type},
                                          auth_settings=["BearerToken"])
        resp = self.api.call_api(*params, _request_timeout=timeout)
        if not 200 <= resp.status <= 299:
            resp.read()
            raise ApiException(http_resp=resp)
        return view(json.loads(resp.read() or b"{}"))

    def watch(self, url_path: str, query: dict[str, Any], timeout: Any = None) -> Iterator[dict[str, Any]]:
        """Events of ``?watch=1`` as {"type", "object"}; an ERROR event raises ApiException with its code."""
        from kubernetes.client.exceptions import ApiException
        resp = self._send("GET", url_path, {**query, "watch": "true"}, timeout).response
        try:
            buffer = b""
            for chunk in resp.stream(4096, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        obj = event.get("object") or {}
                        raise ApiException(status=obj.get("code", 500),
                                           reason=f"{obj.get('reason')}: {obj.get('message')}")
                    yield {"type": event.get("type"), "object": view(event.get("object"))}
        finally:
            resp.release_conn()
