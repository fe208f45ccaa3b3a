"""State and conventions shared by the simulated resource providers.

Resources are stored in ARM wire format (camelCase ``properties``), keyed by their lower-cased ID, exactly
as a client would see them. Long-running operations follow ARM's async pattern: the PUT/DELETE answers at
once with ``Azure-AsyncOperation`` (and ``Location``) plus a retry hint, the operation completes on the
timer thread after the scenario's ``lro`` delay, and only then do its side effects happen.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator

from aksim.httpcore import HttpError, Request, Response, retry_after_headers

if TYPE_CHECKING:
    from aksim.context import SimContext


def utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def not_found(kind: str, name: str, rg: str | None = None) -> HttpError:
    where = f" under resource group '{rg}'" if rg else ""
    return HttpError(404, "ResourceNotFound", f"The Resource '{kind}/{name}'{where} was not found. "
                     "For more details please go to https://aka.ms/ARMResourceNotFoundFix")


def rg_not_found(rg: str) -> HttpError:
    return HttpError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")


def parent_id(resource_id: str, levels: int = 2) -> str:
    return "/".join(resource_id.split("/")[:-levels])


def name_of(resource_id: str) -> str:
    return resource_id.rstrip("/").split("/")[-1]


_RG_RE = re.compile(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)", re.IGNORECASE)


def split_rg(resource_id: str) -> tuple[str, str]:
    m = _RG_RE.match(resource_id)
    if not m:
        raise ValueError(f"not a resource-group scoped id: {resource_id}")
    return m.group(1), m.group(2)


class ArmState:
    """Every ARM resource of the simulated cloud, by lower-cased resource ID."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}

    def get(self, resource_id: str) -> dict[str, Any] | None:
        return self.resources.get(resource_id.lower())

    def require(self, resource_id: str, kind: str) -> dict[str, Any]:
        res = self.get(resource_id)
        if res is None:
            sub_rg = _RG_RE.match(resource_id)
            rg = sub_rg.group(2) if sub_rg else None
            if rg and self.get(f"/subscriptions/{sub_rg.group(1)}/resourceGroups/{rg}") is None:
                raise rg_not_found(rg)
            raise not_found(kind, name_of(resource_id), rg)
        return res

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        self.resources[resource["id"].lower()] = resource
        return resource

    def delete(self, resource_id: str) -> dict[str, Any] | None:
        return self.resources.pop(resource_id.lower(), None)

    def children(self, parent: str, rtype: str) -> list[dict[str, Any]]:
        """Direct children of ``parent`` whose ``type`` equals ``rtype`` (case-insensitive)."""
        prefix = parent.lower().rstrip("/") + "/"
        depth = prefix.count("/") + 1
        rtype = rtype.lower()
        return [r for key, r in self.resources.items()
                if key.startswith(prefix) and key.count("/") == depth and r.get("type", "").lower() == rtype]

    def of_type(self, rtype: str, under: str = "") -> Iterator[dict[str, Any]]:
        rtype, under = rtype.lower(), under.lower()
        for key, r in list(self.resources.items()):
            if r.get("type", "").lower() == rtype and key.startswith(under):
                yield r


@dataclass
class Operation:
    id: str
    namespace: str
    location: str
    subscription: str
    status: str = "InProgress"
    start: str = field(default_factory=utcnow)
    end: str | None = None
    error: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.id, "status": self.status, "startTime": self.start}
        if self.end:
            out["endTime"] = self.end
        if self.error:
            out["error"] = self.error
        return out


class Operations:
    """ARM async operations: ``.../providers/{ns}/locations/{loc}/operations/{id}`` (+ ``operationresults``)."""

    def __init__(self, sim: "SimContext") -> None:
        self.sim = sim
        self.ops: dict[str, Operation] = {}

    # pylint: disable-next=too-many-positional-arguments
    def start(self, subscription: str, namespace: str, location: str,
              complete: Callable[[], dict[str, Any] | None], delay: float | None = None,
              status: str = "InProgress") -> Operation:
        """Begin an operation; ``complete`` runs after ``delay`` and returns an ARM error dict on failure.
        ``status`` is what polls show meanwhile (ACI says ``Pending``, the others ``InProgress``)."""
        op = Operation(str(uuid.uuid4()), namespace, location.replace(" ", "").lower(), subscription, status)
        self.ops[op.id] = op

        def finish() -> None:
            try:
                error = complete()
            except HttpError as err:
                error = {"code": err.code, "message": err.message}
            op.status = "Failed" if error else "Succeeded"
            op.error = error
            op.end = utcnow()

        self.sim.timers.call_later(self.sim.timings.lro if delay is None else delay, finish)
        return op

    def _hint(self) -> dict[str, str]:
        """Real AKS/Network LROs carry no retry hint; only the ``timings.retry_after_hint`` switch adds one."""
        timings = self.sim.timings
        return retry_after_headers(timings.poll) if timings.retry_after_hint else {}

    def headers(self, op: Operation, api_version: str | None, location: bool = False) -> dict[str, str]:
        """``Azure-AsyncOperation`` (PUT); ``location=True`` adds ``Location`` as on a DELETE's 202."""
        base = (f"{self.sim.arm_url}/subscriptions/{op.subscription}/providers/{op.namespace}"
                f"/locations/{op.location}")
        query = f"?api-version={api_version}" if api_version else ""
        headers = {"Azure-AsyncOperation": f"{base}/operations/{op.id}{query}"}
        if location:
            headers["Location"] = f"{base}/operationresults/{op.id}{query}"
        headers.update(self._hint())
        return headers

    def status(self, op_id: str) -> Response:
        op = self._find(op_id)
        body = op.body()
        quirk = str(self.sim.scenario.arm_quirks.get("not_latest_operation") or "").lower()
        if (op.namespace.lower() == "microsoft.containerservice" and quirk and not op.error
                and quirk in ("all", "true", op.status.lower())):
            body["error"] = {"code": "NotLatestOperation",
                             "message": "Cannot proceed with the operation because another operation was started "
                                        "on the managed cluster after this one; get the status of the latest "
                                        "operation instead."}
        headers = self._hint() if op.status not in ("Succeeded", "Failed", "Canceled") else {}
        return Response(200, body, headers)

    def result(self, op_id: str, url: str) -> Response:
        op = self._find(op_id)
        if op.status not in ("Succeeded", "Failed", "Canceled"):
            return Response(202, None, {"Location": url, **self._hint()})
        if op.status == "Failed":
            raise HttpError(400, (op.error or {}).get("code", "Failed"), (op.error or {}).get("message", ""))
        return Response(204)

    def _find(self, op_id: str) -> Operation:
        op = self.ops.get(op_id)
        if op is None:
            raise HttpError(404, "NotFound", f"Operation {op_id} was not found.")
        return op


def api_version(req: Request) -> str | None:
    return req.q("api-version")


def require_api_version(req: Request) -> str:
    version = api_version(req)
    if not version:
        raise HttpError(400, "MissingApiVersionParameter",
                        "The api-version query parameter (?api-version=) is required for all requests.")
    return version


def ok_list(items: list[dict[str, Any]]) -> Response:
    return Response(200, {"value": items})


def new_etag(weak: bool = False) -> str:
    """AKS uses a bare GUID as ``eTag``; the Network RP a weak validator ``W/"<guid>"``."""
    tag = str(uuid.uuid4())
    return f'W/"{tag}"' if weak else tag


def _etag_matches(header: str, current: str | None) -> bool:
    if current is None:
        return False
    wanted = [t.strip() for t in header.split(",") if t.strip()]
    bare = current[2:] if current.startswith("W/") else current
    return any(t == "*" or t in (current, bare, f'"{bare}"', bare.strip('"')) for t in wanted)


def check_preconditions(req: Request, current_etag: str | None, exists: bool, unwrapped: bool = False) -> None:
    """Honour ``If-Match`` / ``If-None-Match`` against the stored eTag: 412 ``PreconditionFailed`` otherwise."""
    if_match, if_none = req.headers.get("if-match"), req.headers.get("if-none-match")
    failed = None
    if if_match is not None and not (exists and _etag_matches(if_match, current_etag)):
        failed = (f"Operation is not allowed because the eTag in the If-Match header ({if_match}) does not match "
                  f"the current eTag of the resource ({current_etag or 'none: the resource does not exist'}). "
                  "Get the resource again and retry with its current eTag.")
    elif if_none is not None and exists and (if_none.strip() == "*" or _etag_matches(if_none, current_etag)):
        failed = (f"Operation is not allowed because the resource already exists (If-None-Match: {if_none}, "
                  f"current eTag {current_etag}).")
    if failed:
        raise HttpError(412, "PreconditionFailed", failed, unwrapped=unwrapped)


def etag_header(resource: dict[str, Any]) -> dict[str, str]:
    tag = resource.get("eTag") or resource.get("etag")
    if not tag:
        return {}
    return {"ETag": tag if tag.startswith(("W/", '"')) else f'"{tag}"'}
