"""chart.py: values against the real values.yaml and the real Helm 3, helm discovery, temp files, scrubbing,
release records (no Azure, no cluster)."""
from __future__ import annotations

import base64
import gzip
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from azure.cli.core.azclierror import InvalidArgumentValueError, ValidationError

from azext_virtualnode import chart
from azext_virtualnode.chart import (ChartSettings, Helm, Release, chart_values, decode_release, find_helm, helm3,
                                     key_paths, private_files, releases_from, resolve_chart, scrub)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "tests" / "fixtures" / "charts" / "virtual-kubelet-azure-aci"
HELM = ROOT / ".tools" / "bin" / "helm"
SETTINGS = ChartSettings(
    namespace="vk-azure-aci", node_name="virtual-node-aci-linux-helm", aci_resource_group="MC_rg_c_westeurope",
    aci_region="westeurope", master_uri="https://c-dns.hcp.westeurope.azmk8s.io:443", vnet_resource_group="rg",
    vnet_name="vnet", subnet_name="virtual-node-aci", subnet_cidr="10.241.0.0/16", cluster_cidr="10.240.0.0/16",
    kube_dns_ip="10.0.0.10", identity_client_id="11111111-2222-3333-4444-555555555555")


def real_helm() -> str:
    if not HELM.exists():
        pytest.fail("real helm missing: run tools/fetch-kube-binaries.sh (make test does)")
    return str(HELM)


def fake_helm(tmp_path: Path, body: str) -> str:
    path = tmp_path / "helm"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


# -- values ---------------------------------------------------------------------------------------------
def test_values_file_is_the_reference_file_verbatim():
    text = (CHART / "values.yaml").read_text()
    assert text.startswith("# Source: github.com/virtual-kubelet/azure-aci path charts/virtual-kubelet/values.yaml "
                           "commit 382bbaad88c324d73f9da88f1919629254e0f0bd")
    reference = Path("/work/shared/reference/fixtures/azure-aci-values.yaml")
    if reference.exists():
        assert text == reference.read_text()


def test_every_key_set_exists_in_the_charts_values_yaml():
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    known = set(key_paths(defaults))
    for settings in (SETTINGS, ChartSettings(**{**SETTINGS.__dict__, "identity_client_id": None})):
        paths = key_paths(chart_values(settings))
        assert paths and set(paths) <= known, set(paths) - known
    assert "providers.azure.managedIdentityID" in key_paths(chart_values(SETTINGS))
    assert "providers.azure.managedIdentityID" not in key_paths(chart_values(
        ChartSettings(**{**SETTINGS.__dict__, "identity_client_id": None})))


def test_real_helm_3_renders_the_chart_with_these_values(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(chart_values(SETTINGS)))
    proc = subprocess.run([real_helm(), "template", "vn", str(CHART), "--namespace", "default", "--values",
                           str(values)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(proc.stdout) if d}
    assert ("Namespace", "vk-azure-aci") in docs
    deploy = docs[("Deployment", "vn-virtual-kubelet-azure-aci")]
    assert deploy["metadata"]["namespace"] == "vk-azure-aci"
    pod = deploy["spec"]["template"]
    assert pod["metadata"]["labels"] == {"app": "vn-virtual-kubelet-azure-aci"}
    container = pod["spec"]["containers"][0]
    assert container["image"] == "mcr.microsoft.com/oss/virtual-kubelet/virtual-kubelet:1.6.4"
    args = container["args"]
    assert args[args.index("--nodename") + 1] == "virtual-node-aci-linux-helm"
    assert args[args.index("--os") + 1] == "Linux"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VIRTUALNODE_USER_IDENTITY_CLIENTID"] == SETTINGS.identity_client_id
    assert env["ACI_RESOURCE_GROUP"] == "MC_rg_c_westeurope" and env["ACI_REGION"] == "westeurope"
    assert env["ACI_SUBNET_NAME"] == "virtual-node-aci" and env["ACI_SUBNET_CIDR"] == "10.241.0.0/16"
    assert env["ACI_VNET_NAME"] == "vnet" and env["ACI_VNET_RESOURCE_GROUP"] == "rg"
    assert env["MASTER_URI"] == SETTINGS.master_uri
    assert env["CLUSTER_CIDR"] == "10.240.0.0/16" and env["KUBE_DNS_IP"] == "10.0.0.10"
    assert env["AKS_CREDENTIAL_LOCATION"] == "/etc/aks/azure.json"
    assert (env["VKUBELET_TAINT_KEY"], env["VKUBELET_TAINT_VALUE"], env["VKUBELET_TAINT_EFFECT"]) == (
        "virtual-kubelet.io/provider", "azure", "NoSchedule")


# -- helm discovery ---------------------------------------------------------------------------------------
def test_helm_client_path_wins_and_must_be_executable(tmp_path):
    helm = fake_helm(tmp_path, "echo v3.12.0\n")
    assert find_helm({"HELM_CLIENT_PATH": helm, "PATH": ""}) == helm
    with pytest.raises(ValidationError, match="not an executable file"):
        find_helm({"HELM_CLIENT_PATH": str(tmp_path / "nope"), "PATH": str(tmp_path)})


def test_helm_from_path_or_a_clear_error(tmp_path):
    helm = fake_helm(tmp_path, "echo v3.12.0\n")
    assert find_helm({"PATH": str(tmp_path)}) == helm
    with pytest.raises(ValidationError) as err:
        find_helm({"PATH": str(tmp_path / "empty")})
    assert "Helm was not found" in str(err.value) and "HELM_CLIENT_PATH" in str(err.value)
    assert "brew install helm" in str(err.value)


def test_helm_version_must_be_3(tmp_path):
    assert helm3(real_helm()).startswith("v3.")
    helm2 = fake_helm(tmp_path, 'echo "Client: v2.17.0+ga690bad"\n')
    with pytest.raises(ValidationError, match="is Helm v2.17.0; chart mode needs Helm 3"):
        helm3(helm2)
    garbage = fake_helm(tmp_path, "echo hello\n")
    with pytest.raises(ValidationError, match="did not report a Helm version"):
        helm3(garbage)


# -- chart source ------------------------------------------------------------------------------------------
def test_resolve_chart_default_local_dir_and_package(tmp_path):
    assert resolve_chart(None, None).ref.endswith("/charts/virtual-kubelet-azure-aci-1.6.4.tgz")
    assert resolve_chart(None, "1.6.3").ref.endswith("-1.6.3.tgz")
    local = resolve_chart(str(CHART), None)
    assert (local.ref, local.version) == (str(CHART), "1.6.4")
    subprocess.run([real_helm(), "package", str(CHART), "-d", str(tmp_path)], check=True, capture_output=True)
    package = resolve_chart(str(tmp_path / "virtual-kubelet-azure-aci-1.6.4.tgz"), "1.6.4")
    assert package.version == "1.6.4"


@pytest.mark.parametrize("chart_arg, version, message", [
    ("/no/such/chart", None, "does not exist"),
    (str(CHART), "1.6.3", "is version 1.6.4, not --chart-version 1.6.3"),
    ("https://example.invalid/x-1.0.0.tgz", "1.0.0", "cannot be combined with the chart URL"),
])
def test_resolve_chart_errors(chart_arg, version, message):
    with pytest.raises(InvalidArgumentValueError, match=message):
        resolve_chart(chart_arg, version)


def test_resolve_chart_refuses_another_chart(tmp_path):
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: nginx\nversion: 1.0.0\n")
    with pytest.raises(InvalidArgumentValueError, match="is chart 'nginx', not virtual-kubelet-azure-aci"):
        resolve_chart(str(tmp_path), None)


# -- private files and scrubbing -------------------------------------------------------------------------
def test_private_files_are_0600_in_a_0700_dir_and_always_removed():
    with pytest.raises(RuntimeError):
        with private_files({"kubeconfig": "secret"}) as paths:
            path = Path(paths["kubeconfig"])
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            raise RuntimeError("boom")
    assert not path.exists() and not path.parent.exists()


def test_scrub_removes_tokens_keys_and_secret_values():
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----"
    text = (f"Error: Authorization: Bearer abc.def-ghi token=s3cr3tvalue clientKey: hunter2hunter {key} "
            "eyJhbGciOiJub25lIn0.eyJvaWQiOiJ4In0.sig kubeconfig-secret-123456")
    out = scrub(text, ["kubeconfig-secret-123456"])
    for secret in ("abc.def-ghi", "s3cr3tvalue", "hunter2hunter", "MIIEabc", "eyJhbGciOiJub25lIn0",
                   "kubeconfig-secret-123456"):
        assert secret not in out
    assert out.startswith("Error: Authorization: Bearer ***")


def test_helm_run_passes_kubeconfig_and_values_as_private_files_and_scrubs_errors(tmp_path):
    record = tmp_path / "record.json"
    helm = fake_helm(tmp_path, f"""
python3 - "$@" <<'EOF'
import json, os, stat, sys
args = sys.argv[1:]
files = {{a: args[i + 1] for i, a in enumerate(args) if a in ("--kubeconfig", "--values")}}
json.dump({{"args": args, "modes": {{k: stat.S_IMODE(os.stat(v).st_mode) for k, v in files.items()}},
           "values": open(files["--values"]).read(),
           "env": sorted(k for k in os.environ if k.startswith("HELM_KUBE"))}},
          open({str(record)!r}, "w"))
EOF
echo "Error: Unauthorized: token tok-SECRET-123456 rejected" >&2
exit 1
""")
    kubeconfig = {"users": [{"name": "u", "user": {"token": "tok-SECRET-123456"}}]}
    os.environ["HELM_KUBECONTEXT"] = "elsewhere"
    try:
        with pytest.raises(chart.HelmError) as err:
            Helm(helm).upgrade_install("vn", resolve_chart(str(CHART), None), "default", {"nodeName": "n"},
                                       kubeconfig, 30)
    finally:
        del os.environ["HELM_KUBECONTEXT"]
    assert "tok-SECRET-123456" not in str(err.value) and "Unauthorized" in str(err.value)
    seen = json.loads(record.read_text())
    assert seen["args"][:4] == ["upgrade", "--install", "vn", str(CHART)]
    assert "--set" not in seen["args"] and seen["env"] == []
    assert seen["modes"] == {"--kubeconfig": 0o600, "--values": 0o600}
    assert yaml.safe_load(seen["values"]) == {"nodeName": "n"}
    kube_file = seen["args"][seen["args"].index("--kubeconfig") + 1]
    assert not os.path.exists(kube_file) and not os.path.exists(os.path.dirname(kube_file))


# -- release records -------------------------------------------------------------------------------------
def encode(record: dict) -> str:
    """As the API server returns Helm's Secret data: base64 of (base64 of gzip(JSON))."""
    inner = base64.b64encode(gzip.compress(json.dumps(record).encode()))
    return base64.b64encode(inner).decode()


def record(name: str, revision: int, status: str, chart_name: str = "virtual-kubelet-azure-aci",
           config: dict | None = None) -> dict:
    return {"name": name, "namespace": "default", "version": revision, "info": {"status": status},
            "chart": {"metadata": {"name": chart_name, "version": "1.6.4"},
                      "values": yaml.safe_load((CHART / "values.yaml").read_text())},
            "config": config or {}}


def secret(rec: dict) -> tuple[str, dict, dict]:
    labels = {"owner": "helm", "name": rec["name"], "status": rec["info"]["status"], "version": str(rec["version"])}
    return rec["namespace"], labels, {"release": encode(rec)}


def test_decode_release_and_find_only_this_chart_newest_revision():
    mine = record("vn", 2, "deployed", config={"nodeName": "custom-node", "namespace": "team-vk",
                                               "providers": {"azure": {"managedIdentityID": "cid"}}})
    assert decode_release(encode(mine))["name"] == "vn"
    secrets = [secret(record("vn", 1, "superseded")), secret(mine),
               secret(record("nginx", 1, "deployed", chart_name="nginx")),
               secret(record("old", 3, "uninstalled"))]
    found = releases_from(secrets)
    assert [(r.name, r.revision) for r in found] == [("vn", 2)]
    r = found[0]
    assert (r.node_name, r.namespace, r.identity_client_id) == ("custom-node", "team-vk", "cid")
    assert r.subnet_name is None                         # vnet.enabled stays false in that config
    assert r.values["image"]["tag"] == "1.6.4"           # chart defaults merged under the config
    assert r.selector == "app=vn-virtual-kubelet-azure-aci"
    assert r.as_status()["namespace"] == "team-vk" and r.as_status()["version"] == "1.6.4"


def test_release_defaults_are_the_charts():
    r = Release.of(record("vn", 1, "deployed"))
    assert (r.node_name, r.namespace) == ("virtual-node-aci-linux-helm", "vk-azure-aci")


@pytest.mark.parametrize("state, fix", [("pending-install", "'helm uninstall vn -n default'"),
                                        ("pending-upgrade", "'helm rollback vn -n default'"),
                                        ("pending-rollback", "'helm rollback vn -n default'")])
def test_a_release_left_pending_is_refused_with_the_helm_command_that_finishes_it(state: str, fix: str) -> None:
    class Named:
        name = "aks-demo"
    with pytest.raises(ValidationError) as err:
        chart.refuse_pending(Named(), Release.of(record("vn", 1, state)))
    assert f"is '{state}'" in str(err.value) and fix in str(err.value) and "Nothing was changed" in str(err.value)
    chart.refuse_pending(Named(), Release.of(record("vn", 1, "deployed")))
    chart.refuse_pending(Named(), Release.of(record("vn", 1, "failed")))
