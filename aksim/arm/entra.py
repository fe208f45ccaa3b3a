"""Microsoft Entra ID, the part the simulator needs: signed access tokens and an OAuth2 token endpoint.

Every token the simulator issues (the managed-identity endpoint, and the client-credentials endpoint that
``az login --service-principal`` talks to) is a JWT signed with HS256 under a key private to this process, so the
simulated AKS API server can tell its own tokens from anything else. Claims follow Entra ID v1 access tokens:
``aud`` (the resource, e.g. the AKS server app ``6dae42f8-…``), ``iss`` ``https://sts.windows.net/<tid>/``,
``tid``, ``oid``, ``appid``, ``exp``.

The token endpoint is served on the ARM host (the cloud's ``active_directory`` endpoint points there):
``GET /{tenant}/v2.0/.well-known/openid-configuration`` (MSAL's tenant discovery) and
``POST /{tenant}/oauth2/v2.0/token`` (``grant_type=client_credentials`` with ``client_secret``), answering
errors in the AADSTS shape. Only principals of the scenario's tenant that have a secret can sign in.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from aksim.httpcore import Request, Response

if TYPE_CHECKING:
    from aksim.context import SimContext

AKS_SERVER_APP = "6dae42f8-4368-4678-94ff-3960e28e3630"     # the AKS AAD server app: the API server's audience
AKS_CLIENT_APP = "80faf920-1908-4b52-b5ef-a8e7bedfc67a"     # kubelogin's public client (devicecode login)
TOKEN_LIFETIME = 3600
_KEY = secrets.token_bytes(32)
# Access tokens issued for the AKS audience, newest last: tests check none of them ends up on disk.
ISSUED_AKS_TOKENS: deque[str] = deque(maxlen=256)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "aksim"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(_KEY, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{_b64(mac)}"
    if claims.get("aud") == AKS_SERVER_APP:
        ISSUED_AKS_TOKENS.append(token)
    return token


def verify(token: str) -> dict[str, Any] | None:
    """The claims of a token this simulator signed and that has not expired; None for anything else."""
    try:
        header, body, mac = token.split(".")
        expected = hmac.new(_KEY, f"{header}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        claims = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    now = time.time()
    if not isinstance(claims, dict) or claims.get("exp", 0) <= now or claims.get("nbf", now) > now + 300:
        return None
    return claims


def make_token(tenant: str, oid: str, resource: str, app_id: str | None = None,
               lifetime: int = TOKEN_LIFETIME, groups: list[str] | None = None) -> tuple[str, int]:
    now = int(time.time())
    claims: dict[str, Any] = {"aud": resource, "iss": f"https://sts.windows.net/{tenant}/", "iat": now, "nbf": now,
                              "exp": now + lifetime, "oid": oid, "sub": oid, "tid": tenant, "appid": app_id or oid,
                              "idtyp": "app", "ver": "1.0", "uti": secrets.token_urlsafe(16)}
    if groups:
        claims["groups"] = list(groups)
    return sign(claims), now + lifetime


def caller_groups(world: Any, object_id: str) -> list[str] | None:
    """The ``groups`` claim: the scenario caller's ``groups`` (group object IDs), for the caller only."""
    return world.scenario.caller.get("groups") if object_id == world.caller.object_id else None


def scope_to_resource(scope: str) -> str:
    """``<resource>/.default`` -> ``<resource>`` (``https://management.core.windows.net//.default`` keeps its
    slash), as Entra ID's v1 audience."""
    first = scope.split()[0] if scope.split() else ""
    return first[:-len("/.default")] if first.endswith("/.default") else first


def _aad_error(status: int, error: str, code: int, description: str) -> Response:
    return Response(status, {"error": error, "error_description": f"AADSTS{code}: {description}",
                             "error_codes": [code], "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
                             "trace_id": "00000000-0000-0000-0000-000000000000",
                             "correlation_id": "00000000-0000-0000-0000-000000000000"})


def register(sim: "SimContext") -> None:
    def tenant_known(tenant: str) -> bool:
        return tenant.lower() in (sim.world.scenario.tenant_id.lower(), "organizations", "common")

    def openid_configuration(req: Request) -> Response:
        tenant = req.params["tenant"]
        if not tenant_known(tenant):
            return _aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure you "
                              "have the correct tenant ID and are signing into the correct cloud.")
        base = f"{sim.arm_url}/{sim.world.scenario.tenant_id}"
        return Response(200, {"token_endpoint": f"{base}/oauth2/v2.0/token",
                              "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                              "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                              "issuer": f"{base}/v2.0", "jwks_uri": f"{base}/discovery/v2.0/keys",
                              "token_endpoint_auth_methods_supported": ["client_secret_post"],
                              "tenant_region_scope": "EU"})

    def token(req: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(req.body.decode(errors="replace")).items()}
        tenant = req.params["tenant"]
        if not tenant_known(tenant):
            return _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type "
                              f"'{form.get('grant_type', '')}'. aksim serves client_credentials only.")
        client_id, scope = form.get("client_id", ""), form.get("scope", "")
        with sim.lock:
            world = sim.world
            principal = world.principal_by_client_id(client_id) if client_id else None
            if principal is None:
                return _aad_error(400, "unauthorized_client", 700016, f"Application with identifier '{client_id}' "
                                  f"was not found in the directory '{world.scenario.tenant_id}'.")
            if not principal.secret or not hmac.compare_digest(principal.secret, form.get("client_secret", "")):
                return _aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the "
                                  f"secret being sent in the request is the client secret value, not the client "
                                  f"secret ID, for a secret added to app '{client_id}'.")
            resource = scope_to_resource(scope)
            if not resource:
                return _aad_error(400, "invalid_scope", 1002012, "The provided value for scope is not valid.")
            lifetime = int(sim.timings.token_lifetime)
            access, _ = make_token(world.scenario.tenant_id, principal.object_id, resource, principal.client_id,
                                   lifetime, caller_groups(world, principal.object_id))
        return Response(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                              "access_token": access})

    sim.arm_router.add("GET", "/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration)
    sim.arm_router.add("POST", "/{tenant}/oauth2/v2.0/token", token)
