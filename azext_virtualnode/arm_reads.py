"""The ARM reads of ``status`` as plain GETs over one already-loaded client's pipeline.

``status`` reads a subnet, a provider, role assignments and container groups. Through their SDK clients that
means importing azure-mgmt-resource, -authorization and -containerinstance and opening a connection per client
(~0.3 s, most of what ``status`` cost beyond ``az aks show``). The same requests — same URLs, same api-versions
as the SDKs in azure-cli 2.91 send — go through the managed-clusters client's pipeline instead (its
credential, retry policy and connection), answered as wire JSON.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROVIDERS_API_VERSION = "2024-11-01"            # azure-mgmt-resource (resources) in azure-cli 2.91
ROLE_ASSIGNMENTS_API_VERSION = "2022-04-01"     # azure-mgmt-authorization
CONTAINER_GROUPS_API_VERSION = "2024-05-01-preview"   # azure-mgmt-containerinstance


@dataclass
class RoleAssignment:
    """The fields of a role assignment that role checks read (as the SDK model names them)."""
    id: str
    scope: str
    role_definition_id: str
    principal_id: str
    description: str | None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> "RoleAssignment":
        props = raw.get("properties") or {}
        return cls(raw["id"], props.get("scope", ""), props.get("roleDefinitionId", ""),
                   props.get("principalId", ""), props.get("description"))


class ArmReader:
    """GETs through an SDK service client's ``send_request`` (its pipeline: credential, retries)."""

    def __init__(self, service_client: Any) -> None:
        self._client = service_client

    def _send(self, request: Any) -> Any:
        return self._client.send_request(request)

    def get(self, url: str, api_version: str, **params: str) -> dict[str, Any] | None:
        """The resource at ``url`` (an ARM path), or None when it does not exist."""
        from azure.core.rest import HttpRequest
        response = self._send(HttpRequest("GET", url, params={"api-version": api_version, **params}))
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def list(self, url: str, api_version: str, **params: str) -> list[dict[str, Any]]:
        """Every item of a list, following ``nextLink``."""
        from azure.core.rest import HttpRequest
        items: list[dict[str, Any]] = []
        request = HttpRequest("GET", url, params={"api-version": api_version, **params})
        while request is not None:
            response = self._send(request)
            response.raise_for_status()
            body = response.json()
            items += body.get("value") or []
            request = HttpRequest("GET", body["nextLink"]) if body.get("nextLink") else None
        return items

    def provider_state(self, subscription: str, namespace: str) -> str | None:
        provider = self.get(f"/subscriptions/{subscription}/providers/{namespace}", PROVIDERS_API_VERSION)
        return (provider or {}).get("registrationState")

    def role_assignments_for(self, principal_id: str, scope: str) -> list[RoleAssignment]:
        return [RoleAssignment.of(r) for r in self.list(f"{scope}/providers/Microsoft.Authorization/roleAssignments",
                                                        ROLE_ASSIGNMENTS_API_VERSION,
                                                        **{"$filter": f"principalId eq '{principal_id}'"})]

    def container_groups(self, subscription: str, resource_group: str) -> list[dict[str, Any]]:
        return self.list(f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
                         "Microsoft.ContainerInstance/containerGroups", CONTAINER_GROUPS_API_VERSION)
