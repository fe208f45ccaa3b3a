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
        """The cluster user kubeconfig from ARM, fetched once per command and kept in memory only."""
        if self._kubeconfig is None:
            try:
                self._kubeconfig = fetch_kubeconfig(self.clusters, self.resource_group, self.name)
            except Exception as exc:  # pylint: disable=broad-except
                raise ClusterUnreachable(f"could not get cluster credentials: {exc}") from exc
        return self._kubeconfig

    @contextlib.contextmanager
    def kube(self) -> Iterator[Kube]:
        with session(self.kubeconfig()) as kube:
            yield kube


def progress(message: str) -> None:
    logger.warning(message)


def node_resource_group_id(cluster: ClusterView) -> str:
    return f"/subscriptions/{cluster.id.split('/')[2]}/resourceGroups/{cluster.node_resource_group}"
