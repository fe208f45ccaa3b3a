"""A sliver of Microsoft Graph: service principal look-up by appId, as azure-cli's Graph client does it.

The simulator's cloud registration points ``microsoftGraphResourceId`` at the ARM endpoint, so Graph calls
arrive here as ``/v1.0/servicePrincipals?$filter=...``.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aksim.httpcore import HttpError, Request, Response

if TYPE_CHECKING:
    from aksim.context import SimContext
    from aksim.world import Principal

_BY_SPN = re.compile(r"servicePrincipalNames/any\(c:c eq '([^']+)'\)", re.IGNORECASE)
_BY_APPID = re.compile(r"appId eq '([^']+)'", re.IGNORECASE)


def _sp_body(p: "Principal") -> dict[str, Any]:
    return {"id": p.object_id, "appId": p.client_id, "displayName": p.display_name,
            "servicePrincipalNames": [p.client_id], "servicePrincipalType":
            "ManagedIdentity" if p.kind == "ManagedIdentity" else "Application", "accountEnabled": True}


def register(sim: "SimContext") -> None:
    def list_sps(req: Request) -> Response:
        flt = req.q("$filter") or ""
        m = _BY_SPN.search(flt) or _BY_APPID.search(flt)
        with sim.lock:
            principals = list(sim.world.principals.values())
            if m:
                principals = [p for p in principals if p.client_id.lower() == m.group(1).lower()]
            return Response(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals",
                                  "value": [_sp_body(p) for p in principals]})

    def get_object(req: Request) -> Response:
        with sim.lock:
            p = sim.world.principals.get(req.params["oid"])
            if p is None:
                raise HttpError(404, "Request_ResourceNotFound",
                                f"Resource '{req.params['oid']}' does not exist or one of its queried reference-"
                                "property objects are not present.")
            return Response(200, {"@odata.type": "#microsoft.graph.servicePrincipal", **_sp_body(p)})

    def get_by_ids(req: Request) -> Response:
        ids = {i.lower() for i in (req.json() or {}).get("ids", [])}
        with sim.lock:
            found = [{"@odata.type": "#microsoft.graph.servicePrincipal", **_sp_body(p)}
                     for p in sim.world.principals.values() if p.object_id.lower() in ids]
        return Response(200, {"value": found})

    sim.arm_router.add("POST", "/v1.0/directoryObjects/getByIds", get_by_ids)
    sim.arm_router.add("GET", "/v1.0/servicePrincipals", list_sps)
    sim.arm_router.add("GET", "/v1.0/servicePrincipals/{oid}", get_object)
    sim.arm_router.add("GET", "/v1.0/directoryObjects/{oid}", get_object)
