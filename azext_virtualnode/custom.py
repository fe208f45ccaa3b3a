"""Command functions: argument plumbing only; the work is in workflow.py and the domain modules."""
# Parameters mirror the CLI options (az passes them as keyword arguments); keyword-only parameters would
# hide them from az's signature introspection.
# pylint: disable=too-many-positional-arguments
from __future__ import annotations

from typing import Any

from azext_virtualnode._consts import DEFAULT_TIMEOUT


def _ctx(cmd: Any, resource_group_name: str, name: str) -> Any:
    from azext_virtualnode.workflow import Ctx
    return Ctx(cmd, resource_group_name, name)


def enable_virtual_node(cmd: Any, resource_group_name: str, name: str, subnet_name: str | None = None,
                        subnet_cidr: str | None = None, skip_role_assignment: bool = False,
                        timeout: int = DEFAULT_TIMEOUT, no_wait: bool = False, mode: str = "addon",
                        chart: str | None = None, chart_version: str | None = None, release: str | None = None,
                        connector_namespace: str | None = None, node_name: str | None = None,
                        identity: str | None = None, replicas: int | None = None,
                        nat_gateway: str | None = None) -> dict[str, Any] | None:
    from azext_virtualnode.workflow import EnableOptions, enable
    return enable(_ctx(cmd, resource_group_name, name), EnableOptions(
        subnet_name=subnet_name, subnet_cidr=subnet_cidr, skip_role_assignment=skip_role_assignment, timeout=timeout,
        no_wait=no_wait, mode=mode, chart=chart, chart_version=chart_version, release=release,
        namespace=connector_namespace, node_name=node_name, identity=identity, replicas=replicas,
        nat_gateway=nat_gateway))


def disable_virtual_node(cmd: Any, resource_group_name: str, name: str, delete_subnet: bool = False,
                         force: bool = False, yes: bool = False, subnet_name: str | None = None,
                         timeout: int = DEFAULT_TIMEOUT) -> dict[str, Any]:
    from azext_virtualnode.workflow import disable
    return disable(_ctx(cmd, resource_group_name, name), delete_subnet, force, yes, timeout, subnet_name)


def virtual_node_status(cmd: Any, resource_group_name: str, name: str) -> dict[str, Any]:
    from azext_virtualnode.workflow import status
    return status(_ctx(cmd, resource_group_name, name))


def wait_virtual_node(cmd: Any, resource_group_name: str, name: str, ready: bool = False, deleted: bool = False,
                      timeout: int = DEFAULT_TIMEOUT, interval: int = 10) -> None:
    from azext_virtualnode.workflow import wait
    wait(_ctx(cmd, resource_group_name, name), ready, deleted, timeout, interval)


def place_workload(cmd: Any, resource_group_name: str, name: str, workload: str, policy: str,
                   namespace: str = "default", dry_run: bool = False) -> dict[str, Any]:
    from azext_virtualnode.workload_ops import place
    return place(_ctx(cmd, resource_group_name, name), workload, namespace, policy, dry_run)


def prune_virtual_node(cmd: Any, resource_group_name: str, name: str, dry_run: bool = False,
                       yes: bool = False) -> dict[str, Any]:
    from azext_virtualnode.workload_ops import prune
    return prune(_ctx(cmd, resource_group_name, name), dry_run, yes)


def scale_virtual_node(cmd: Any, resource_group_name: str, name: str, replicas: int, force: bool = False,
                       yes: bool = False, timeout: int = DEFAULT_TIMEOUT,
                       no_wait: bool = False) -> dict[str, Any] | None:
    from azext_virtualnode.connectors.v2_mode import scale
    return scale(_ctx(cmd, resource_group_name, name), replicas, force, yes, timeout, no_wait)


def migrate_virtual_node(cmd: Any, resource_group_name: str, name: str, to: str, replicas: int | None = None,
                         subnet_name: str | None = None, chart: str | None = None, chart_version: str | None = None,
                         dry_run: bool = False, yes: bool = False, force: bool = False,
                         timeout: int | None = None) -> dict[str, Any]:
    from azext_virtualnode.migrate import MIGRATE_TIMEOUT, MigrateOptions, migrate
    return migrate(_ctx(cmd, resource_group_name, name), MigrateOptions(
        to=to, replicas=replicas, subnet_name=subnet_name, chart=chart, chart_version=chart_version,
        dry_run=dry_run, yes=yes, force=force, timeout=timeout or MIGRATE_TIMEOUT))
