"""Virtual Nodes v2 (chart ``virtualnode``, microsoft/virtualnodesOnAzureContainerInstances): the facts an
installer needs, as pure functions — chart versions and their Kubernetes compatibility, the names the chart
renders, the infra pod's size and how many fit on the cluster's nodes, the values to install with, and which
node objects are ghosts.

Sources: the chart's templates and ``Docs/VersionCompatibility.md`` (see the project's reference notes). No
Azure or Kubernetes calls here: callers read the cluster and hand the facts in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

CHART_NAME = "virtualnode"
RELEASE = "virtualnode"
NAMESPACE = "vn2"
SUBNET = "cg"
SERVICE_ACCOUNT = "virtual-node2-helm"
ADMISSION_NAME = "virtual-node-admission-controller"      # Secret, Service, Deployment and webhook configuration
CRD_NAME = "virtualdaemonsets.virtualdaemonsets.aci.azure.microsoft.com"
AKS_EXTENSION_TYPE = "Microsoft.virtualnodes"
NODE_LABEL = ("virtualization", "virtualnode2")
TAINT_KEY = "virtual-kubelet.io/provider"
INFRA_SELECTOR = "app.kubernetes.io/name=virtualnode,app.kubernetes.io/instance={release}"
MAX_PODS_PER_NODE = 200
CHART_URL = ("https://github.com/microsoft/virtualnodesOnAzureContainerInstances/releases/download/"
             "virtualnode-{version}/virtualnode-{version}.tgz")

# Newest published chart of each line (a line = the Kubernetes minor whose binaries the chart bundles).
NEWEST = {29: "1.2912.25013001", 30: "1.3012.25080101", 32: "1.3208.25100802", 33: "1.3307.26033004",
          34: "1.3409.26080501"}
# Docs/VersionCompatibility.md: line -> {AKS minor: "Y" tested | "?" untested}; absent = not compatible.
# A tuple ("Y", version) means "tested from that chart version on".
COMPATIBILITY: dict[int, dict[int, Any]] = {
    29: {29: "Y"},
    30: {29: "Y", 30: "Y", 31: "Y", 32: "Y", 33: "?"},
    32: {32: "Y", 33: "?"},
    33: {32: "Y", 33: "Y", 34: ("Y", "1.3307.26033004")},
    34: {32: "?", 33: "Y", 34: "Y"},
}
# Infra pod requests (sum of the app containers; the init container asks less): since 1.3406.26051402
# 2.8 CPU / 9G, before that 3 CPU / 12G (proxycri 2/8G, kubelet 1/4G).
REQUESTS_NOW = (2800, 9 * 10 ** 9)
REQUESTS_BEFORE = (3000, 12 * 10 ** 9)
REQUESTS_CHANGED_IN = "1.3406.26051402"
NAMESPACE_RULE_SINCE = "1.3406.26050102"      # from here a namespaced install ('-n') puts everything there

_VERSION_RE = re.compile(r"^1\.(\d{2})(\d{2})\.(\d{6})(\d{2})$")


@dataclass(frozen=True)
class ChartVersion:
    text: str
    line: int            # Kubernetes minor of the bundled binaries (34 for 1.3409.x)
    patch: int
    build: tuple[int, int]

    @classmethod
    def parse(cls, text: str) -> "ChartVersion | None":
        m = _VERSION_RE.match(text.strip())
        if not m:
            return None
        return cls(text.strip(), int(m.group(1)), int(m.group(2)), (int(m.group(3)), int(m.group(4))))

    def key(self) -> tuple[int, int, tuple[int, int]]:
        return (self.line, self.patch, self.build)


def kubernetes_minor(version: str) -> int:
    """'1.33.2' / 'v1.33.2' -> 33."""
    parts = version.lstrip("v").split(".")
    if len(parts) < 2 or parts[0] != "1" or not parts[1].isdigit():
        raise ValueError(f"not a Kubernetes version: {version!r}")
    return int(parts[1])


def support(version: str, k8s_minor: int) -> str:
    """'Y' (tested), '?' (untested), '-' (not compatible) or 'unknown' (a version outside the scheme)."""
    parsed = ChartVersion.parse(version)
    if parsed is None or parsed.line not in COMPATIBILITY:
        return "unknown"
    entry = COMPATIBILITY[parsed.line].get(k8s_minor, "-")
    if isinstance(entry, tuple):
        floor = ChartVersion.parse(entry[1])
        return entry[0] if floor is not None and parsed.key() >= floor.key() else "-"
    return entry


def pick_version(k8s_minor: int) -> str | None:
    """The newest chart of the newest line tested ('Y') with this Kubernetes minor, or None."""
    for line in sorted(COMPATIBILITY, reverse=True):
        if support(NEWEST[line], k8s_minor) == "Y":
            return NEWEST[line]
    return None


def tested_lines(k8s_minor: int) -> list[str]:
    return [f"1.{line}" for line in sorted(COMPATIBILITY) if support(NEWEST[line], k8s_minor) == "Y"]


def fullname(release: str, settings: dict[str, Any] | None = None) -> str:
    """The chart's fullname: ``fullnameOverride``; else the release name if it contains the chart name (or
    ``nameOverride``), else ``<release>-<name>``; cut to 63 characters."""
    settings = settings or {}
    if settings.get("fullnameOverride"):
        return str(settings["fullnameOverride"])[:63].rstrip("-")
    name = settings.get("nameOverride") or CHART_NAME
    full = release if name in release else f"{release}-{name}"
    return full[:63].rstrip("-")


def target_namespace(release_namespace: str, settings: dict[str, Any] | None = None,
                     chart_version: str | None = None) -> str:
    """Where the chart puts its objects: the release namespace, unless the release lives in ``default`` (then
    ``values.namespace``, a Namespace the chart creates). Charts before 1.3406.26050102 always used
    ``values.namespace``."""
    ns_value = (settings or {}).get("namespace") or NAMESPACE
    parsed = ChartVersion.parse(chart_version or "")
    since = ChartVersion.parse(NAMESPACE_RULE_SINCE)
    old_chart = parsed is not None and since is not None and parsed.key() < since.key()
    return ns_value if old_chart or release_namespace == "default" else release_namespace


def node_names(full: str, replicas: int) -> list[str]:
    """Node name = pod name = ``<fullname>-<ordinal>``."""
    return [f"{full}-{i}" for i in range(replicas)]


def infra_requests(chart_version: str | None) -> tuple[int, int]:
    """(milli-CPU, bytes) one infra pod requests."""
    parsed = ChartVersion.parse(chart_version or "")
    changed = ChartVersion.parse(REQUESTS_CHANGED_IN)
    if parsed is not None and changed is not None and parsed.key() < changed.key():
        return REQUESTS_BEFORE
    return REQUESTS_NOW


@dataclass(frozen=True)
class NodeRoom:
    """Free allocatable room on one regular Linux node (allocatable minus what its pods request)."""
    name: str
    cpu_milli: int
    memory: int

    def fits(self, cpu_milli: int, memory: int) -> int:
        if cpu_milli <= 0 or memory <= 0:
            return 0
        return max(0, min(self.cpu_milli // cpu_milli, self.memory // memory))


def infra_pods_that_fit(rooms: Iterable[NodeRoom], requests: tuple[int, int]) -> int:
    return sum(room.fits(*requests) for room in rooms)


def capacity_error(rooms: list[NodeRoom], replicas: int, requests: tuple[int, int]) -> str | None:
    """None when ``replicas`` infra pods fit, else the message with the numbers."""
    fit = infra_pods_that_fit(rooms, requests)
    if fit >= replicas:
        return None
    cpu, mem = requests
    best = max(rooms, key=lambda r: (r.cpu_milli, r.memory), default=None)
    most = (f"the most free room on one node is {best.cpu_milli / 1000:g} CPU / {best.memory / 10 ** 9:.1f}G "
            f"({best.name})" if best else "the cluster has no regular Linux node")
    return (f"{replicas} Virtual Nodes v2 infra pod(s) need {cpu / 1000:g} CPU / {mem / 10 ** 9:g}G each on "
            f"regular Linux nodes, but only {fit} fit: {most}. Add nodes of at least 4 vCPU / 16 GiB "
            "(az aks nodepool add --node-vm-size Standard_D4s_v5 ...) or scale the node pool "
            "(az aks nodepool scale ...), or ask for fewer replicas.")


def values(replicas: int, subnets: list[str], aci_resource_group: str | None, namespace: str) -> dict[str, Any]:
    """The chart values this extension sets (the chart's own keys only)."""
    out: dict[str, Any] = {"replicaCount": replicas, "aciSubnetName": ",".join(subnets), "namespace": namespace}
    if aci_resource_group:
        out["aciResourceGroupName"] = aci_resource_group
    return out


def ghost_nodes(full: str, node_names_seen: Iterable[str], pod_names: Iterable[str]) -> list[str]:
    """Nodes of the release (``<fullname>-<ordinal>``) without a pod of the same name: left behind by a
    scale-down or an uninstall, and still shown Ready."""
    pattern = re.compile(rf"^{re.escape(full)}-\d+$")
    pods = set(pod_names)
    return sorted((n for n in node_names_seen if pattern.match(n) and n not in pods), key=_ordinal_key)


def _ordinal_key(name: str) -> tuple[str, int]:
    base, _, ordinal = name.rpartition("-")
    return (base, int(ordinal) if ordinal.isdigit() else -1)
