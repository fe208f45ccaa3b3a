"""Microsoft Entra ID credentials for the API server, from az's own login: no kubelogin, nothing on disk.

For a cluster with Entra ID integration, ``listClusterUserCredential`` returns a kubeconfig whose user is a
kubelogin ``exec`` plugin (``kubelogin get-token --server-id 6dae42f8-… --tenant-id … --login devicecode``) or,
on old clusters, an ``auth-provider: azure`` entry. The API server wants an Entra ID access token whose audience
is that server id. kubelogin's ``azurecli`` mode gets it from az; this extension runs inside az, so it asks az's
credential directly (``Profile.get_raw_token`` for scope ``<server-id>/.default`` — user, service principal and
managed identity logins alike, in the account of the command's subscription) and hands the API server that token
as a bearer token. The token lives in memory only; it is fetched again when less than ``REFRESH_MARGIN`` seconds
(or a quarter of its lifetime, for short-lived tokens) are left — the kubernetes client calls the refresh hook
before every request — so a long wait never outlives it. Helm gets a kubeconfig with the token as a static
``token`` in its private 0600 file.
"""
from __future__ import annotations

import base64
import copy
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

AKS_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
REFRESH_MARGIN = 300


class CredentialError(Exception):
    """No token could be had for the API server (the message says why and what to do)."""


@dataclass(frozen=True)
class EntraLogin:
    """What a kubelogin exec user (or an ``azure`` auth-provider) asks for."""
    server_id: str
    tenant_id: str | None
    environment: str | None
    login: str | None


def _arg(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return str(args[i + 1])
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def entra_login(user: dict[str, Any]) -> EntraLogin | None:
    """The Entra ID login a kubeconfig user stands for, or None when it is anything else (token, certificate,
    another exec plugin)."""
    exec_ = user.get("exec")
    if isinstance(exec_, dict):
        command = os.path.basename(str(exec_.get("command") or "")).lower()
        args = [str(a) for a in exec_.get("args") or []]
        if not command.startswith("kubelogin") or "get-token" not in args:
            return None
        return EntraLogin(_arg(args, "--server-id") or AKS_SERVER_ID, _arg(args, "--tenant-id") or _arg(args, "-t"),
                          _arg(args, "--environment") or _arg(args, "-e"), _arg(args, "--login") or _arg(args, "-l"))
    provider = user.get("auth-provider")
    if isinstance(provider, dict) and provider.get("name") == "azure":
        config = provider.get("config") or {}
        return EntraLogin(config.get("apiserver-id") or AKS_SERVER_ID, config.get("tenant-id"),
                          config.get("environment"), None)
    return None


def current_user(kubeconfig: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(name, user entry) of the kubeconfig's current context."""
    ctx_name = kubeconfig.get("current-context")
    contexts = kubeconfig.get("contexts") or []
    ctx = next((c.get("context") or {} for c in contexts if c.get("name") == ctx_name),
               (contexts[0].get("context") or {}) if contexts else {})
    name = ctx.get("user")
    user = next((u.get("user") or {} for u in kubeconfig.get("users") or [] if u.get("name") == name), {})
    return name, user


def token_claims(token: str) -> dict[str, Any]:
    """The (unverified) payload of a JWT, for naming the identity in messages; {} when it is not a JWT."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims if isinstance(claims, dict) else {}
    except (IndexError, ValueError):
        return {}


class EntraToken:
    """An access token for the AKS server app from az's credential, refreshed before it expires."""

    def __init__(self, cli_ctx: Any, login: EntraLogin, subscription: str | None = None) -> None:
        self.cli_ctx, self.login, self.subscription = cli_ctx, login, subscription
        self._token: str | None = None
        self._expires_on = 0.0
        self._margin = float(REFRESH_MARGIN)
        self._lock = threading.Lock()

    @property
    def scope(self) -> str:
        return f"{self.login.server_id}/.default"

    def get(self) -> str:
        with self._lock:
            if self._token is None or self._expires_on - time.time() < self._margin:
                fetched = time.time()
                self._token, self._expires_on = self._fetch()
                self._margin = min(float(REFRESH_MARGIN), (self._expires_on - fetched) / 4)
            return self._token

    def _fetch(self) -> tuple[str, float]:
        from azure.cli.core._profile import Profile
        try:
            profile = Profile(cli_ctx=self.cli_ctx)
            account_tenant = profile.get_subscription(self.subscription).get("tenantId")
            if self.login.tenant_id and account_tenant and self.login.tenant_id.lower() != account_tenant.lower():
                # the cluster trusts another tenant than the subscription's account (user/SP logins only)
                (_, token, entry), _, _ = profile.get_raw_token(scopes=[self.scope], tenant=self.login.tenant_id)
            else:
                (_, token, entry), _, _ = profile.get_raw_token(scopes=[self.scope], subscription=self.subscription)
        except Exception as exc:  # pylint: disable=broad-except
            raise CredentialError(
                f"could not get a Microsoft Entra ID token for the cluster's API server (scope {self.scope}) from "
                f"your az login: {exc}. Check 'az account get-access-token --scope {self.scope}'.") from None
        return token, float(entry.get("expires_on") or time.time() + 600)

    @property
    def expires_on(self) -> float:
        return self._expires_on

    def identity(self) -> dict[str, str | None]:
        """Who the token says the caller is: object ID, UPN (users) and app ID; never the token itself."""
        claims = token_claims(self.get())
        return {"objectId": claims.get("oid"), "upn": claims.get("upn") or claims.get("unique_name"),
                "appId": claims.get("appid") or claims.get("azp"), "tenantId": claims.get("tid")}

    def refresh_hook(self, config: Any) -> None:
        """For ``Configuration.refresh_api_key_hook``: called before every request."""
        try:
            config.api_key["authorization"] = f"Bearer {self.get()}"
        except CredentialError as exc:
            from azext_virtualnode.kube import ClusterUnreachable
            raise ClusterUnreachable(str(exc)) from None


def with_token(kubeconfig: dict[str, Any], token: str) -> dict[str, Any]:
    """A copy of ``kubeconfig`` whose current user is a static bearer token (for the kubernetes client and
    Helm, which then need no exec plugin)."""
    name, _ = current_user(kubeconfig)
    out = copy.deepcopy(kubeconfig)
    for entry in out.get("users") or []:
        if entry.get("name") == name:
            entry["user"] = {"token": token}
    return out
