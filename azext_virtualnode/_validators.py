"""Argument validators: reject malformed input before any request is sent."""
from __future__ import annotations

import re
from typing import Any

from azure.cli.core.azclierror import InvalidArgumentValueError

_SUBNET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9_]$|^[A-Za-z0-9]$")


def validate_subnet_name(namespace: Any) -> None:
    name = getattr(namespace, "subnet_name", None)
    if name is None:
        return
    if "/" in name:
        raise InvalidArgumentValueError(
            f"--subnet-name expects the subnet's name, not a resource ID or path: '{name}'. The subnet must be in "
            "the cluster's virtual network; pass just its last segment, e.g. --subnet-name virtual-node-aci.")
    if not _SUBNET_NAME.match(name):
        raise InvalidArgumentValueError(
            f"--subnet-name '{name}' is not a valid subnet name: 1-80 characters, letters, digits, '_', '.', '-', "
            "starting with a letter or digit and ending with a letter, digit or '_'.")


def validate_subnet_cidr(namespace: Any) -> None:
    cidr = getattr(namespace, "subnet_cidr", None)
    if cidr is not None:
        from azext_virtualnode.network import parse_cidr
        parse_cidr(cidr)


def validate_positive(option: str, attr: str):
    def _validate(namespace: Any) -> None:
        value = getattr(namespace, attr, None)
        if value is not None and value <= 0:
            raise InvalidArgumentValueError(f"{option} must be a positive number of seconds, not {value}.")
    return _validate


_IDENTITY_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/"
                          r"userAssignedIdentities/[^/]+$", re.IGNORECASE)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_CHART_OPTIONS = (("chart", "--chart"), ("chart_version", "--chart-version"), ("release", "--release"),
                  ("connector_namespace", "--namespace"), ("node_name", "--node-name"), ("identity", "--identity"))


def validate_chart_options(namespace: Any) -> None:
    mode = getattr(namespace, "mode", "addon")
    v2_given = [option for attr, option in _V2_OPTIONS if getattr(namespace, attr, None)]
    if v2_given and mode != "v2":
        raise InvalidArgumentValueError(f"{', '.join(v2_given)} only apply with --mode v2.")
    if mode == "v2" and getattr(namespace, "node_name", None):
        raise InvalidArgumentValueError("--node-name only applies with --mode chart: Virtual Nodes v2 names its nodes "
                                        "<release>-<ordinal> (e.g. virtualnode-0).")
    if mode not in ("chart", "v2"):
        given = [option for attr, option in _CHART_OPTIONS if getattr(namespace, attr, None)]
        if given:
            raise InvalidArgumentValueError(f"{', '.join(given)} only apply with --mode chart or --mode v2.")
        return
    identity = getattr(namespace, "identity", None)
    if identity and not _IDENTITY_ID.match(identity):
        raise InvalidArgumentValueError(
            f"--identity expects the resource ID of a user-assigned managed identity "
            f"(/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
            f"<name>), not '{identity}'. 'az identity show -g <rg> -n <name> --query id -o tsv' prints it.")
    for attr, option, pattern, limit in (("release", "--release", _DNS_LABEL, 53),
                                         ("connector_namespace", "--namespace", _DNS_LABEL, 63),
                                         ("node_name", "--node-name", _DNS_SUBDOMAIN, 253)):
        value = getattr(namespace, attr, None)
        if value is not None and (len(value) > limit or not pattern.match(value)):
            raise InvalidArgumentValueError(
                f"{option} '{value}' is not a valid Kubernetes name: at most {limit} lowercase letters, digits and "
                f"'-'{', ' + repr('.') if pattern is _DNS_SUBDOMAIN else ''}, starting and ending with a letter or "
                "digit.")


_V2_OPTIONS = (("replicas", "--replicas"), ("nat_gateway", "--nat-gateway"))
MAX_REPLICAS = 30     # 30 virtual nodes x 200 pods: 6,000 ACI pods, and 30 infra pods of 2.8 CPU / 9G on the VMs


def replicas_type(value: str) -> int:
    """--replicas: a whole number from 1 to MAX_REPLICAS (a usage error otherwise: exit code 2)."""
    import argparse
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not 1 <= number <= MAX_REPLICAS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {MAX_REPLICAS}, not '{value}' (each replica is one virtual node of "
            f"200 pods whose kubelet pod needs 2.8 CPU / 9G on the cluster's own nodes; {MAX_REPLICAS} nodes hold "
            "6,000 pods — beyond that, split the work across clusters).")
    return number


def validate_v2_subnets(namespace: Any) -> None:
    text = getattr(namespace, "subnet_name", None)
    if text is None:
        return
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise InvalidArgumentValueError(f"--subnet-name '{text}' has an empty name; give NAME[,NAME...].")
    for name in names:
        validate_subnet_name(type("Args", (), {"subnet_name": name})())


def validate_enable(namespace: Any) -> None:
    if getattr(namespace, "mode", "addon") == "v2":
        validate_v2_subnets(namespace)
        if getattr(namespace, "subnet_cidr", None) and "," in (getattr(namespace, "subnet_name", None) or ""):
            raise InvalidArgumentValueError("--subnet-cidr applies to one new subnet; with several --subnet-name "
                                            "values create the extra subnets first.")
    else:
        validate_subnet_name(namespace)
    validate_subnet_cidr(namespace)
    validate_positive("--timeout", "timeout")(namespace)
    validate_chart_options(namespace)


def validate_wait(namespace: Any) -> None:
    if bool(getattr(namespace, "ready", False)) == bool(getattr(namespace, "deleted", False)):
        raise InvalidArgumentValueError("Specify exactly one of --ready or --deleted.")
    validate_positive("--timeout", "timeout")(namespace)
    validate_positive("--interval", "interval")(namespace)


def validate_place(namespace: Any) -> None:
    from azext_virtualnode.placement import PlacementError, parse_workload
    try:
        parse_workload(getattr(namespace, "workload", None) or "")
    except PlacementError as exc:
        raise InvalidArgumentValueError(str(exc)) from None
    ns = getattr(namespace, "namespace", None)
    if ns is not None and (len(ns) > 63 or not _DNS_LABEL.match(ns)):
        raise InvalidArgumentValueError(f"--namespace '{ns}' is not a valid namespace name: at most 63 lowercase "
                                        "letters, digits and '-', starting and ending with a letter or digit.")
