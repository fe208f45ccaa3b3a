"""The context every command works in: its clients, its cluster, its one in-memory kubeconfig."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

from knack.log import get_logger
from knack.util import CLIError

from azext_virtualnode import _client_factory as cf
from azext_virtualnode.addon import ClusterView, get_cluster
from azext_virtualnode.kube import ClusterUnreachable, Kube, fetch_kubeconfig, session
from azext_virtualnode.network import SubnetClient
from azext_virtualnode.roles import RoleClient

logger = get_logger(__name__)


class Timeout(CLIError):
    """A wait ran out of time; the message says what was still missing."""


@dataclass
class Ctx:
    cmd: Any
    resource_group: str
    name: str
    _kubeconfig: dict[str, Any] | None = field(default=None, repr=False)
    _entra: Any = field(default=None, repr=False)     # credentials.EntraToken for an Entra ID cluster

    @property
    def cli_ctx(self) -> Any:
        return self.cmd.cli_ctx

    @property
    def clusters(self) -> Any:
        return cf.cf_managed_clusters(self.cli_ctx)

    @property
    def subnets(self) -> SubnetClient:
        return SubnetClient(cf.cf_resources(self.cli_ctx))

    @property
    def roles(self) -> RoleClient:
        return RoleClient(cf.cf_authorization(self.cli_ctx))

    @property
    def ids(self) -> str:
        return f"-g {self.resource_group} -n {self.name}"

    def cluster(self) -> ClusterView:
        return get_cluster(self.clusters, self.resource_group, self.name)

    def kubeconfig(self) -> dict[str, Any]:
        """The cluster user kubeconfig from ARM, fetched once per command and kept in memory only. For an
        Entra ID cluster (kubelogin exec user) its user is az's current token for the AKS server app instead."""
        if self._kubeconfig is None:
            try:
                self._kubeconfig = fetch_kubeconfig(self.clusters, self.resource_group, self.name)
            except Exception as exc:  # pylint: disable=broad-except
                raise ClusterUnreachable(f"could not get cluster credentials: {exc}") from exc
        entra = self.entra()
        if entra is None:
            return self._kubeconfig
        from azext_virtualnode.credentials import CredentialError, with_token
        try:
            return with_token(self._kubeconfig, entra.get())
        except CredentialError as exc:
            raise ClusterUnreachable(str(exc)) from None

    def entra(self) -> Any:
        """The Entra ID token source when the cluster user is a kubelogin/azure login, else None."""
        if self._entra is None and self._kubeconfig is not None:
            from azure.cli.core.commands.client_factory import get_subscription_id
            from azext_virtualnode.credentials import EntraToken, current_user, entra_login
            login = entra_login(current_user(self._kubeconfig)[1])
            if login is not None:
                self._entra = EntraToken(self.cli_ctx, login, get_subscription_id(self.cli_ctx))
        return self._entra

    @contextlib.contextmanager
    def kube(self) -> Iterator[Kube]:
        with session(self.kubeconfig()) as kube:
            if self._entra is not None:       # a long wait must not outlive the token
                kube.api.configuration.refresh_api_key_hook = self._entra.refresh_hook
            yield kube


def progress(message: str) -> None:
    logger.warning(message)


def node_resource_group_id(cluster: ClusterView) -> str:
    return f"/subscriptions/{cluster.id.split('/')[2]}/resourceGroups/{cluster.node_resource_group}"
