"""The managed cluster and its ``aciConnectorLinux`` add-on: read, wait while busy, turn on and off.

Changes are GET–modify–PUT of the whole managed cluster with only the add-on profile touched, the add-on key
matched case-insensitively (as azure-cli does) and written back in its canonical casing.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any, Callable

from azure.cli.core.azclierror import AzureResponseError, InvalidArgumentValueError, ValidationError

from azext_virtualnode._consts import ADDON_KEY, ADDON_SUBNET_KEY, DEFAULT_TIMEOUT

BUSY_STATES = ("creating", "updating", "upgrading", "deleting", "scaling", "starting", "stopping", "migrating",
               "canceling")


def find_addon_key(profiles: dict[str, Any] | None) -> str | None:
    for key in profiles or {}:
        if key.lower() == ADDON_KEY.lower():
            return key
    return None


def _text(value: Any) -> str | None:
    """SDK enums are str subclasses whose str() is 'Enum.MEMBER' on Python 3.11; use the wire value."""
    return None if value is None else str(getattr(value, "value", value))


@dataclass
class ClusterView:
    """The facts about a managed cluster that the commands need, from one GET."""
    model: Any

    @property
    def id(self) -> str:
        return self.model.id

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def resource_group(self) -> str:
        return self.model.id.split("/")[4]

    @property
    def location(self) -> str:
        return self.model.location

    @property
    def provisioning_state(self) -> str:
        return _text(self.model.provisioning_state) or ""

    @property
    def busy(self) -> bool:
        return self.provisioning_state.lower() in BUSY_STATES

    @property
    def network_plugin(self) -> str:
        net = self.model.network_profile
        return _text(net.network_plugin if net else None) or "kubenet"

    @property
    def network_plugin_mode(self) -> str | None:
        net = self.model.network_profile
        return _text(net.network_plugin_mode) if net else None

    @property
    def node_subnet_id(self) -> str | None:
        pools = self.model.agent_pool_profiles or []
        return pools[0].vnet_subnet_id if pools else None

    @property
    def vnet_id(self) -> str | None:
        subnet = self.node_subnet_id
        return subnet.rsplit("/subnets/", 1)[0] if subnet else None

    @property
    def reserved_ranges(self) -> list[ipaddress.IPv4Network]:
        """Cluster-internal ranges (service, pod, docker bridge) a virtual-node subnet must not overlap."""
        net = self.model.network_profile
        if net is None:
            return []
        raw = list(net.service_cidrs or []) + [net.service_cidr] + list(getattr(net, "pod_cidrs", None) or []) + \
            [net.pod_cidr]
        return sorted({ipaddress.ip_network(c, strict=False) for c in raw if c})

    @property
    def node_resource_group(self) -> str:
        return self.model.node_resource_group

    @property
    def is_msi(self) -> bool:
        sp = self.model.service_principal_profile
        return sp is None or (sp.client_id or "msi").lower() == "msi"

    @property
    def service_principal_client_id(self) -> str | None:
        return None if self.is_msi else self.model.service_principal_profile.client_id

    @property
    def addon(self) -> Any | None:
        profiles = self.model.addon_profiles or {}
        key = find_addon_key(profiles)
        return profiles[key] if key else None

    @property
    def addon_enabled(self) -> bool:
        return bool(self.addon and self.addon.enabled)

    @property
    def addon_subnet(self) -> str | None:
        if not self.addon_enabled:
            return None
        return (self.addon.config or {}).get(ADDON_SUBNET_KEY)

    @property
    def addon_identity(self) -> Any | None:
        return self.addon.identity if self.addon_enabled else None

    @property
    def kubelet_identity(self) -> Any | None:
        return (self.model.identity_profile or {}).get("kubeletidentity")


def get_cluster(client: Any, resource_group: str, name: str) -> ClusterView:
    from azure.core.exceptions import ResourceNotFoundError as SdkNotFound
    try:
        return ClusterView(client.get(resource_group, name))
    except SdkNotFound as exc:
        code = getattr(getattr(exc, "error", None), "code", "") or ""
        if code == "ResourceGroupNotFound":
            raise InvalidArgumentValueError(
                f"Resource group '{resource_group}' was not found in the current subscription. Check the name, "
                "or select the right subscription with 'az account set -s <subscription>'.") from exc
        raise InvalidArgumentValueError(
            f"Managed cluster '{name}' was not found in resource group '{resource_group}'. "
            f"List the clusters with 'az aks list -g {resource_group} -o table'.") from exc


# pylint: disable-next=too-many-positional-arguments
def wait_until_idle(client: Any, resource_group: str, name: str, cluster: ClusterView, deadline: float,
                    interval: float = 5.0, on_wait: Callable[[str], None] | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> ClusterView:
    """Return the cluster once no operation runs on it; raise when it stays busy past ``deadline``."""
    while cluster.busy:
        if time.monotonic() + interval > deadline:
            raise ValidationError(
                f"Managed cluster '{name}' is busy (provisioningState: {cluster.provisioning_state}) and did not "
                f"finish within the timeout. Nothing was changed. Wait for it with 'az aks wait -g "
                f"{resource_group} -n {name} --updated', then re-run this command (or raise --timeout).")
        if on_wait:
            on_wait(f"cluster is {cluster.provisioning_state}; waiting for the running operation to finish")
        sleep(interval)
        cluster = get_cluster(client, resource_group, name)
    return cluster


def require_azure_cni(cluster: ClusterView) -> None:
    """Virtual nodes need Azure CNI (node-subnet IPs) and a custom VNet the ACI subnet can live in."""
    rg_hint = f"-g {cluster.resource_group} -n {cluster.name}"
    if cluster.network_plugin != "azure":
        raise ValidationError(
            f"Managed cluster '{cluster.name}' uses the '{cluster.network_plugin}' network plugin. Virtual nodes "
            "need Azure CNI (network plugin 'azure'), because ACI pods join the cluster's virtual network. "
            f"Create a cluster with '--network-plugin azure --vnet-subnet-id <subnet-id>' (az aks create {rg_hint} "
            "...), or use the self-managed connector chart in a supported setup.")
    if (cluster.network_plugin_mode or "").lower() == "overlay":
        raise ValidationError(
            f"Managed cluster '{cluster.name}' uses Azure CNI Overlay. Virtual nodes need pod IPs from the virtual "
            "network (Azure CNI without overlay); ACI pods cannot join an overlay network. Use a cluster created "
            "with '--network-plugin azure' and no '--network-plugin-mode overlay'.")
    if not cluster.node_subnet_id:
        raise ValidationError(
            f"Managed cluster '{cluster.name}' runs on the virtual network AKS manages for it (no custom subnet on "
            "its node pool). Virtual nodes need a subnet in the cluster's own virtual network, which you cannot "
            "add to the managed one. Create the cluster with '--vnet-subnet-id <subnet-id>' in your own VNet.")


# pylint: disable-next=too-many-positional-arguments
def set_addon(client: Any, resource_group: str, cluster: ClusterView, subnet_name: str | None,
              no_wait: bool = False, deadline: float | None = None) -> Any:
    """PUT the cluster with the add-on turned on (``subnet_name``) or off (None); returns the poller.

    The PUT carries ``If-Match`` with the eTag of the cluster as read, so a change someone else made since
    (tags, a node-pool scale, another add-on) is never overwritten: on 412 the cluster is read again (and waited
    for while busy) and only the add-on profile is re-applied.
    """
    from azure.core.exceptions import HttpResponseError
    from azext_virtualnode.lro import is_precondition_failed, poll_interval, write_with_etag
    name = cluster.name
    until = deadline if deadline is not None else time.monotonic() + DEFAULT_TIMEOUT

    def write(view: ClusterView) -> Any:
        from azure.core import MatchConditions
        mc = _with_addon(view.model, subnet_name)
        etag = getattr(mc, "e_tag", None)
        condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        return client.begin_create_or_update(resource_group, mc.name, mc, polling=not no_wait,
                                             polling_interval=poll_interval(), **condition)

    def reread() -> ClusterView:
        return wait_until_idle(client, resource_group, name, get_cluster(client, resource_group, name), until)

    try:
        return write_with_etag(cluster, write, reread, f"Managed cluster '{name}'")
    except HttpResponseError as exc:
        if is_precondition_failed(exc):
            raise AzureResponseError(
                f"Managed cluster '{name}' kept changing while this command tried to update it (412 "
                "PreconditionFailed on every attempt); nothing was overwritten. Re-run the command.") from exc
        raise AzureResponseError(f"Updating managed cluster '{name}' failed: {exc.message}") from exc


def _with_addon(mc: Any, subnet_name: str | None) -> Any:
    """The model with only the add-on profile changed (key in canonical casing)."""
    from azure.mgmt.containerservice.models import ManagedClusterAddonProfile
    profiles = dict(mc.addon_profiles or {})
    old_key = find_addon_key(profiles)
    if old_key and old_key != ADDON_KEY:
        profiles[ADDON_KEY] = profiles.pop(old_key)
    if subnet_name is None:
        profiles[ADDON_KEY] = ManagedClusterAddonProfile(enabled=False, config=None)
    else:
        profiles[ADDON_KEY] = ManagedClusterAddonProfile(enabled=True, config={ADDON_SUBNET_KEY: subnet_name})
    mc.addon_profiles = profiles
    return mc
