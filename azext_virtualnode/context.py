"""The context every command works in: its clients, its cluster, its one in-memory kubeconfig."""
from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from knack.log import get_logger
from knack.util import CLIError

from azext_virtualnode import _client_factory as cf
from azext_virtualnode.addon import ClusterView, get_cluster
from azext_virtualnode.kube import (RETRY_WINDOW, ClusterAccessDenied, ClusterUnreachable, Kube, fetch_kubeconfig,
                                    session)
from azext_virtualnode.network import SubnetClient
from azext_virtualnode.roles import RoleClient

logger = get_logger(__name__)


class Timeout(CLIError):
    """A wait ran out of time; the message says what was still missing."""


class Deadline:
    """The one deadline of a command (``--timeout``): every wait, ARM long-running operations included, ends by it."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds if seconds is not None else math.inf

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at


@dataclass
class Ctx:  # pylint: disable=too-many-instance-attributes
    cmd: Any
    resource_group: str
    name: str
    _kubeconfig: dict[str, Any] | None = field(default=None, repr=False)
    deadline: Deadline = field(default_factory=lambda: Deadline(None))
    kube_retry_window: float = RETRY_WINDOW
    done: list[str] = field(default_factory=list)      # what this command changed, for a timeout's report
    _clusters: Any = field(default=None, repr=False)
    _entra: Any = field(default=None, repr=False)     # credentials.EntraToken for an Entra ID cluster

    @property
    def cli_ctx(self) -> Any:
        return self.cmd.cli_ctx

    @property
    def clusters(self) -> Any:
        if self._clusters is None:     # one client (one connection) per command
            self._clusters = cf.cf_managed_clusters(self.cli_ctx)
        return self._clusters

    @property
    def arm(self) -> Any:
        """Plain ARM GETs over the managed-clusters client's pipeline (arm_reads; used by status)."""
        from azure.cli.core.commands.client_factory import get_mgmt_service_client
        from azure.cli.core.profiles import ResourceType
        from azext_virtualnode.arm_reads import ArmReader
        return ArmReader(get_mgmt_service_client(self.cli_ctx, ResourceType.MGMT_CONTAINERSERVICE))

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
                if getattr(exc, "status_code", None) in (401, 403):
                    raise ClusterAccessDenied(exc.status_code, f"could not get cluster credentials: {exc}") from exc
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
        with session(self.kubeconfig(), self.deadline.at, self.kube_retry_window) as kube:
            if self._entra is not None:       # a long wait must not outlive the token
                kube.api.configuration.refresh_api_key_hook = self._entra.refresh_hook
            yield kube


def progress(message: str) -> None:
    logger.warning(message)


class Waiting:  # pylint: disable=too-many-instance-attributes
    """az's progress indicator while a wait runs: '<state> · 35 s', refreshed every second on a terminal.

    ``state`` (optional, called every ``every`` seconds from a helper thread) reads the current state; on a
    non-terminal nothing is shown or read (the caller's few stderr lines stay the record)."""

    def __init__(self, ctx: Ctx, what: str, state: Callable[[], str | None] | None = None,
                 every: float = 3.0) -> None:
        self.ctx, self.what, self.state_fn, self.every = ctx, what, state, every
        self.state: str = what
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hook: Any = None

    @staticmethod
    def on_terminal() -> bool:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())

    def __enter__(self) -> "Waiting":
        if self.on_terminal():
            self._hook = self.ctx.cli_ctx.get_progress_controller(det=False)
            self._hook.begin(message=self.what)
            self._thread = threading.Thread(target=self._run, name="azvn-progress", daemon=True)
            self._thread.start()
        return self

    def set(self, state: str) -> None:
        self.state = state

    def _run(self) -> None:
        last_read = -math.inf
        while not self._stop.wait(1.0):
            now = time.monotonic()
            if self.state_fn is not None and now - last_read >= self.every:
                last_read = now
                try:
                    self.state = self.state_fn() or self.state
                except Exception:  # pylint: disable=broad-except
                    pass
            self._hook.add(message=f"{self.state} · {now - self.start:.0f} s")

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._hook.end()


def node_resource_group_id(cluster: ClusterView) -> str:
    return f"/subscriptions/{cluster.id.split('/')[2]}/resourceGroups/{cluster.node_resource_group}"
