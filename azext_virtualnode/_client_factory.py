"""SDK clients from azure-cli-core, so the user's cloud, subscription and credentials apply."""
from __future__ import annotations

from typing import Any

from azure.cli.core.commands.client_factory import get_mgmt_service_client
from azure.cli.core.profiles import ResourceType


def cf_managed_clusters(cli_ctx: Any, *_: Any) -> Any:
    return get_mgmt_service_client(cli_ctx, ResourceType.MGMT_CONTAINERSERVICE).managed_clusters


def cf_resources(cli_ctx: Any) -> Any:
    return get_mgmt_service_client(cli_ctx, ResourceType.MGMT_RESOURCE_RESOURCES).resources


def cf_providers(cli_ctx: Any) -> Any:
    return get_mgmt_service_client(cli_ctx, ResourceType.MGMT_RESOURCE_RESOURCES).providers


def cf_authorization(cli_ctx: Any) -> Any:
    return get_mgmt_service_client(cli_ctx, ResourceType.MGMT_AUTHORIZATION)


def cf_container_groups(cli_ctx: Any) -> Any:
    # ResourceType.MGMT_CONTAINERINSTANCE names no client class in azure-cli-core, so pass the class itself.
    from azure.mgmt.containerinstance import ContainerInstanceManagementClient
    return get_mgmt_service_client(cli_ctx, ContainerInstanceManagementClient).container_groups


def cf_graph(cli_ctx: Any) -> Any:
    from azure.cli.command_modules.role._msgrpah import GraphClient
    return GraphClient(cli_ctx)
