"""The self-managed connector chart ``virtual-kubelet-azure-aci``: Helm, the chart's values, its releases.

Helm runs as a subprocess, as connectedk8s and k8s-extension run it: ``HELM_CLIENT_PATH`` first, then
``PATH``; Helm 3 only. Each run gets the ARM-issued kubeconfig, and the values, as 0600 files in a private
temporary directory that is removed whatever happens, so no credential or value is on the command line and
nothing is written to the user's kubeconfig. Helm's output is shown on failure with tokens, keys and
secret values scrubbed.

The values are computed from the cluster by a pure function and use the chart's own keys only (those of its
``values.yaml``). Installed releases are found the way Helm lists them: Secrets labelled ``owner=helm``, whose
``release`` field is base64(gzip(JSON)) inside the Secret's own base64 data; the cost depends on the number
of Helm releases, not on the size of the cluster.
"""
from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from azure.cli.core.azclierror import InvalidArgumentValueError, ValidationError
from knack.util import CLIError

from azext_virtualnode._consts import CHART_NAME, CHART_NAMESPACE, CHART_NODE_NAME, CHART_URL, CHART_VERSION

HELM_ENV = "HELM_CLIENT_PATH"
HELM_INSTALL_HINT = (
    "Install Helm 3 (https://helm.sh/docs/intro/install/), for example 'brew install helm', "
    "'winget install Helm.Helm', 'choco install kubernetes-helm' or the get-helm-3 script, and make sure "
    f"'helm' is on PATH, or set {HELM_ENV} to the path of the helm binary.")
# Helm's own release states that mean "a release exists" (the record is gone once uninstalled).
LIVE_STATES = ("deployed", "failed", "pending-install", "pending-upgrade", "pending-rollback", "uninstalling")
RELEASE_SELECTOR = "owner=helm,status!=superseded"
# Environment that would make helm talk to another cluster or namespace than the one we pass.
_HELM_CLUSTER_ENV = ("KUBECONFIG", "HELM_KUBECONTEXT", "HELM_NAMESPACE", "HELM_KUBETOKEN", "HELM_KUBEAPISERVER",
                     "HELM_KUBEASUSER", "HELM_KUBEASGROUPS", "HELM_KUBECAFILE", "HELM_KUBEINSECURE_SKIP_TLS_VERIFY",
                     "HELM_KUBETLS_SERVER_NAME")


class HelmError(CLIError):
    """helm failed; the message carries its scrubbed output."""


# -- finding Helm --------------------------------------------------------------------------------------
def find_helm(environ: dict[str, str] | None = None) -> str:
    """The helm binary: ``HELM_CLIENT_PATH`` if set (it must then exist), else ``helm`` on ``PATH``."""
    env = os.environ if environ is None else environ
    configured = env.get(HELM_ENV)
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise ValidationError(f"{HELM_ENV} is set to '{configured}', which is not an executable file. Point it "
                                  f"at a Helm 3 binary or unset it to use 'helm' from PATH. {HELM_INSTALL_HINT}")
        return configured
    found = shutil.which("helm", path=env.get("PATH"))
    if not found:
        raise ValidationError(f"Helm was not found: chart mode runs 'helm upgrade --install'. {HELM_INSTALL_HINT}")
    return found


def parse_helm_version(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


def helm3(path: str) -> str:
    """Raise unless ``path`` is Helm 3; returns its version (``v3.x.y``)."""
    try:
        proc = subprocess.run([path, "version", "--short", "--client"], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ValidationError(f"Could not run '{path} version': {exc}. {HELM_INSTALL_HINT}") from None
    output = (proc.stdout or "") + (proc.stderr or "")
    version = parse_helm_version(output)
    if version is None:
        raise ValidationError(f"'{path} version' did not report a Helm version (output: "
                              f"{output.strip()[:200] or 'none'}). {HELM_INSTALL_HINT}")
    text = f"v{version[0]}.{version[1]}.{version[2]}"
    if version[0] != 3:
        raise ValidationError(f"'{path}' is Helm {text}; chart mode needs Helm 3 (Helm 2 needs Tiller and cannot "
                              f"install this chart). {HELM_INSTALL_HINT}")
    return text


# -- the chart source -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChartRef:
    ref: str                    # what helm is given: a path or a URL
    version: str | None         # the chart version, when known before installing
    helm_version_flag: bool     # pass --version to helm (OCI references)


def resolve_chart(chart: str | None, version: str | None) -> ChartRef:
    """Check ``--chart``/``--chart-version`` before any change; local charts are read and must be this chart."""
    if not chart:
        wanted = version or CHART_VERSION
        return ChartRef(CHART_URL.format(version=wanted), wanted, False)
    if "://" in chart:
        if version and not chart.startswith("oci://"):
            raise InvalidArgumentValueError(
                f"--chart-version cannot be combined with the chart URL '{chart}', which names one package. "
                "Put the version in the URL, or omit --chart to use the official package of --chart-version.")
        return ChartRef(chart, version, bool(version))
    path = os.path.abspath(os.path.expanduser(chart))
    if not os.path.exists(path):
        raise InvalidArgumentValueError(
            f"--chart '{chart}' does not exist. Pass the chart's directory or .tgz package, or a URL; without "
            f"--chart the official {CHART_NAME} {CHART_VERSION} package is used.")
    meta = chart_metadata(path)
    if (meta.get("name") or "") != CHART_NAME:
        raise InvalidArgumentValueError(f"--chart '{chart}' is chart '{meta.get('name')}', not {CHART_NAME} (the "
                                        "virtual-kubelet/azure-aci connector chart).")
    found = str(meta.get("version") or "")
    if version and found != version:
        raise InvalidArgumentValueError(f"--chart '{chart}' is version {found}, not --chart-version {version}.")
    return ChartRef(path, found or None, False)


def chart_metadata(path: str) -> dict[str, Any]:
    """``Chart.yaml`` of a chart directory or ``.tgz`` package."""
    import yaml
    try:
        if os.path.isdir(path):
            with open(os.path.join(path, "Chart.yaml"), encoding="utf-8") as f:
                return yaml.safe_load(f) or {}
        with tarfile.open(path, "r:*") as tar:
            member = next((m for m in tar.getmembers() if m.name.count("/") == 1 and
                           m.name.endswith("/Chart.yaml")), None)
            if member is None:
                raise InvalidArgumentValueError(f"--chart '{path}' is not a Helm chart package (no Chart.yaml).")
            with tar.extractfile(member) as f:  # type: ignore[union-attr]
                return yaml.safe_load(f) or {}
    except (OSError, tarfile.TarError, yaml.YAMLError) as exc:
        raise InvalidArgumentValueError(f"--chart '{path}' is not a readable Helm chart: {exc}") from None


# -- values -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChartSettings:  # pylint: disable=too-many-instance-attributes
    """What the values are made of: facts about the cluster and the user's choices."""
    namespace: str
    node_name: str
    aci_resource_group: str
    aci_region: str
    master_uri: str
    vnet_resource_group: str
    vnet_name: str
    subnet_name: str
    subnet_cidr: str
    cluster_cidr: str
    kube_dns_ip: str
    identity_client_id: str | None
    os_type: str = "Linux"


def chart_values(s: ChartSettings) -> dict[str, Any]:
    """The values for ``helm upgrade --install``, keyed exactly as in the chart's ``values.yaml``."""
    azure: dict[str, Any] = {
        "targetAKS": True,
        "aciResourceGroup": s.aci_resource_group,
        "aciRegion": s.aci_region,
        "masterUri": s.master_uri,
        "vnet": {"enabled": True, "vnetResourceGroup": s.vnet_resource_group, "vnetName": s.vnet_name,
                 "subnetName": s.subnet_name, "subnetCidr": s.subnet_cidr, "clusterCidr": s.cluster_cidr,
                 "kubeDnsIp": s.kube_dns_ip},
    }
    if s.identity_client_id:
        azure["managedIdentityID"] = s.identity_client_id
    return {"namespace": s.namespace, "nodeName": s.node_name, "nodeOsType": s.os_type,
            "providers": {"azure": azure}}


def key_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the leaves of ``values`` (``providers.azure.vnet.subnetName``, ...)."""
    paths: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths += key_paths(value, path + ".") if isinstance(value, dict) else [path]
    return paths


def merge_values(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values over chart defaults (maps merge, everything else replaces)."""
    merged = dict(defaults)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


# -- running helm -------------------------------------------------------------------------------------
@contextlib.contextmanager
def private_files(files: dict[str, str]) -> Iterator[dict[str, str]]:
    """Write ``files`` (name -> text) as 0600 files in a fresh 0700 directory; always removed on exit."""
    directory = tempfile.mkdtemp(prefix="azvn-helm-")
    try:
        os.chmod(directory, 0o700)
        paths = {}
        for name, text in files.items():
            path = os.path.join(directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            paths[name] = path
        yield paths
    finally:
        shutil.rmtree(directory, ignore_errors=True)


_SECRET_KEYS = r"token|password|secret|clientKey|clientSecret|client-key-data|client-certificate-data|workspaceKey"
_SCRUB_PATTERNS = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), "***"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "***"),
    (re.compile(rf"(?i)((?:{_SECRET_KEYS})\"?\s*[=:]\s*\"?)[^\s,\"']+"), r"\1***"),
)


def kubeconfig_secrets(kubeconfig: dict[str, Any]) -> list[str]:
    """Credential strings in a kubeconfig (tokens, client keys and certificates, also base64-decoded)."""
    found: list[str] = []
    for user in kubeconfig.get("users") or []:
        for key in ("token", "client-key-data", "client-certificate-data", "password"):
            value = (user.get("user") or {}).get(key)
            if value:
                found.append(str(value))
                with contextlib.suppress(Exception):
                    found.append(base64.b64decode(value).decode())
    return found


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the given secret strings, bearer tokens, JWTs, private keys or ``key=secret`` values."""
    for secret in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern, replacement in _SCRUB_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def values_secrets(values: dict[str, Any]) -> list[str]:
    azure = (values.get("providers") or {}).get("azure") or {}
    return [str(v) for v in (azure.get("clientKey"), (azure.get("loganalytics") or {}).get("workspaceKey")) if v]


@dataclass(frozen=True)
class Helm:
    path: str

    @classmethod
    def discover(cls) -> "Helm":
        helm = cls(find_helm())
        helm3(helm.path)
        return helm

    def run(self, args: list[str], kubeconfig: dict[str, Any], timeout: float,
            values: dict[str, Any] | None = None) -> str:
        """``helm <args> --kubeconfig <0600 temp file> [--values <0600 temp file>]``; HelmError on failure."""
        import yaml
        files = {"kubeconfig": yaml.safe_dump(kubeconfig)}
        if values is not None:
            files["values.yaml"] = yaml.safe_dump(values)
        secrets = kubeconfig_secrets(kubeconfig) + values_secrets(values or {})
        env = {k: v for k, v in os.environ.items() if k not in _HELM_CLUSTER_ENV}
        with private_files(files) as paths:
            # client-go's discovery cache (default ~/.kube/cache) goes to the private directory, and with it
            env["KUBECACHEDIR"] = os.path.join(os.path.dirname(paths["kubeconfig"]), "kube-cache")
            cmd = [self.path, *args, "--kubeconfig", paths["kubeconfig"]]
            if values is not None:
                cmd += ["--values", paths["values.yaml"]]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 1), env=env,
                                      check=False)
            except subprocess.TimeoutExpired:
                raise HelmError(f"'helm {' '.join(args[:2])}' did not finish within {timeout:.0f}s.") from None
            except OSError as exc:
                raise HelmError(f"Could not run helm ({self.path}): {exc}") from None
        if proc.returncode != 0:
            output = scrub((proc.stderr or proc.stdout or "").strip(), secrets)
            raise HelmError(f"'helm {' '.join(args[:2])}' failed (exit code {proc.returncode}):\n{output}")
        return proc.stdout

    # pylint: disable-next=too-many-positional-arguments
    def upgrade_install(self, release: str, chart: ChartRef, release_namespace: str, values: dict[str, Any],
                        kubeconfig: dict[str, Any], timeout: float) -> str:
        args = ["upgrade", "--install", release, chart.ref, "--namespace", release_namespace, "--reset-values",
                "--history-max", "5", "--timeout", f"{max(int(timeout), 1)}s"]
        if chart.helm_version_flag and chart.version:
            args += ["--version", chart.version]
        return self.run(args, kubeconfig, timeout + 5, values)

    def uninstall(self, release: str, release_namespace: str, kubeconfig: dict[str, Any], timeout: float) -> bool:
        """True when it was uninstalled, False when it was already gone."""
        try:
            self.run(["uninstall", release, "--namespace", release_namespace, "--timeout",
                      f"{max(int(timeout), 1)}s"], kubeconfig, timeout + 5)
        except HelmError as exc:
            if "not found" in str(exc):
                return False
            raise
        return True


def refuse_pending(ctx: Any, release: "Release") -> None:
    """A release left ``pending-*`` (a helm run interrupted, or one still running) makes every helm upgrade fail
    with 'another operation is in progress': say how to finish it instead."""
    state = release.status or ""
    if not state.startswith("pending-"):
        return
    ns = release.release_namespace
    fix = f"'helm rollback {release.name} -n {ns}'"
    if state == "pending-install":
        fix = f"'helm uninstall {release.name} -n {ns}' (it removes what the interrupted install created)"
    raise ValidationError(
        f"Helm release '{release.name}' on cluster '{ctx.name}' is '{state}': a helm operation on it is still "
        f"running, or was interrupted. If none is running, finish it with {fix}, then re-run this command. Nothing "
        "was changed.")


# -- releases -----------------------------------------------------------------------------------------
def decode_release(encoded: str | bytes) -> dict[str, Any]:
    """A Helm 3 release record from a Secret's ``data.release`` (base64 of base64 of gzipped JSON)."""
    raw = base64.b64decode(base64.b64decode(encoded))
    if raw[:3] == b"\x1f\x8b\x08":
        raw = gzip.decompress(raw)
    return json.loads(raw)


@dataclass(frozen=True)
class Release:  # pylint: disable=too-many-instance-attributes
    name: str
    release_namespace: str
    revision: int
    status: str
    chart_name: str
    chart_version: str
    config: dict[str, Any]        # the values the user (this extension) supplied
    values: dict[str, Any]        # chart defaults with ``config`` merged in
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)   # Helm's whole record

    @classmethod
    def of(cls, record: dict[str, Any]) -> "Release":
        chart = record.get("chart") or {}
        meta = chart.get("metadata") or {}
        config = record.get("config") or {}
        return cls(record.get("name", ""), record.get("namespace", ""), int(record.get("version") or 0),
                   (record.get("info") or {}).get("status", ""), meta.get("name", ""), str(meta.get("version", "")),
                   config, merge_values(chart.get("values") or {}, config), record)

    @property
    def namespace(self) -> str:
        return self.values.get("namespace") or CHART_NAMESPACE

    @property
    def node_name(self) -> str:
        return self.values.get("nodeName") or CHART_NODE_NAME

    @property
    def _azure(self) -> dict[str, Any]:
        return (self.values.get("providers") or {}).get("azure") or {}

    @property
    def subnet_name(self) -> str | None:
        vnet = self._azure.get("vnet") or {}
        return vnet.get("subnetName") if vnet.get("enabled") else None

    @property
    def identity_client_id(self) -> str | None:
        return self._azure.get("managedIdentityID") or self._azure.get("clientId") or None

    @property
    def deployment(self) -> str:
        return fullname(self.name, self.chart_name)

    @property
    def selector(self) -> str:
        """The connector pods' label (the chart labels its pod template ``app: <release>-<chart>``)."""
        return f"app={self.deployment}"

    def as_status(self) -> dict[str, Any]:
        return {"release": self.name, "namespace": self.namespace, "version": self.chart_version,
                "releaseNamespace": self.release_namespace, "revision": self.revision, "status": self.status,
                "deployment": self.deployment}


def fullname(release: str, chart: str = CHART_NAME) -> str:
    """The chart's ``vk.fullname``: ``<release>-<chart>``, cut to 63 characters."""
    return f"{release}-{chart}"[:63].rstrip("-")


def releases_from(secrets: Iterable[tuple[str, dict[str, str], dict[str, str]]],
                  chart_names: Iterable[str] = (CHART_NAME,)) -> list[Release]:
    """The newest live revision of every release of the given charts (default: this one), from (namespace,
    labels, data) of Helm's Secrets."""
    names = set(chart_names)
    newest: dict[tuple[str, str], tuple[int, str]] = {}
    for namespace, labels, data in secrets:
        if labels.get("owner") != "helm" or labels.get("status") not in LIVE_STATES or "release" not in (data or {}):
            continue
        key = (namespace, labels.get("name") or "")
        revision = int(labels.get("version") or 0)
        if key not in newest or revision > newest[key][0]:
            newest[key] = (revision, data["release"])
    found = []
    for _, encoded in newest.values():
        try:
            release = Release.of(decode_release(encoded))
        except (ValueError, OSError, EOFError):  # not a Helm 3 record we can read: not ours
            continue
        if release.chart_name in names:
            found.append(release)
    return sorted(found, key=lambda r: (r.release_namespace, r.name))


def find_releases(kube: Any, chart_names: Iterable[str] = (CHART_NAME,)) -> list[Release]:
    """Releases of ``virtual-kubelet-azure-aci`` (or of ``chart_names``) on the cluster (one list call,
    selector-scoped)."""
    return releases_from(kube.helm_release_secrets(RELEASE_SELECTOR), chart_names)
