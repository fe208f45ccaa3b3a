"""az aks virtual-node --mode v2 end to end: the real az with the installed wheel, the REAL helm 3 and kubectl
against aksim's Virtual Nodes v2 (scenario vn2.yaml), installing the local `virtualnode` test chart
(tests/fixtures/charts/virtualnode, version 1.3409.26080501)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from aksim.scenario import read_raw
from conftest import FAST_TIMINGS, TOOLS_BIN
from waiting import wait_for

RG, NAME = "vn2-rg", "aks-vn2"
IDS = ["-g", RG, "-n", NAME]
SUB = "00000000-0000-0000-0000-000000000001"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}"
NODE_RG_ID = f"/subscriptions/{SUB}/resourceGroups/MC_vn2-rg_aks-vn2_westeurope"
VNET_ID = f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/vn2-vnet"
CG_ID = f"{VNET_ID}/subnets/cg"
CHART = str(Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "virtualnode")
NC, ACI, CONTRIBUTOR = ("4d97b98b-1d4f-4787-a291-c67834d212e7", "5d977122-f97e-4b4d-a52f-6b43003ddb4d",
                        "b24988ac-6180-42a0-ab88-20f7382dd24c")
MARKER = "Created by az aks virtual-node"
ENABLE = ["aks", "virtual-node", "enable", *IDS, "--mode", "v2", "--chart", CHART, "--timeout", "90"]
# VN2 timings as tests/aksim/test_vn2.py uses them (registration in 0.2 s instead of ~45 s)
TIMINGS = {**FAST_TIMINGS, "lro": 0.05, "poll": 0.05, "pod_start": 0.03, "controller": 0.01, "vn2_register": 0.2,
           "lease_renew": 0.1, "lease_duration": 0.5, "aci_create": 0.05, "backoff_scale": 0.02,
           "node_register": 0.05}
INFRA = "app.kubernetes.io/name=virtualnode,statefulset.kubernetes.io/pod-name"


@pytest.fixture(autouse=True)
def real_tools() -> None:
    for tool in ("helm", "kubectl"):
        if not (TOOLS_BIN / tool).exists():
            pytest.fail(f"real {tool} missing: run tools/fetch-kube-binaries.sh (make test does)")


def vn2_world(scenario: str = "vn2", **cluster: Any) -> dict[str, Any]:
    raw = read_raw(scenario)
    raw["clusters"][0].update(cluster)
    raw["timings"] = dict(TIMINGS)
    return raw


@pytest.fixture
def world(sim: Any, request: pytest.FixtureRequest) -> Any:
    marker = request.node.get_closest_marker("vn2")
    sim.sim.load(vn2_world(*(marker.args if marker else ()), **(marker.kwargs if marker else {})))
    return sim


def store(sim: Any) -> Any:
    return sim.cluster(NAME).store


def locked(sim: Any, fn: Any) -> Any:
    with sim.lock:
        return fn()


def kubelet(sim: Any) -> dict[str, Any]:
    return locked(sim, lambda: sim.world.arm.get(sim.cluster(NAME).resource_id))["properties"]["identityProfile"][
        "kubeletidentity"]


def assignments(sim: Any) -> list[dict[str, Any]]:
    return locked(sim, lambda: [r["properties"] for r in sim.world.arm.of_type(
        "Microsoft.Authorization/roleAssignments")])


def ours(sim: Any, principal: str) -> list[tuple[str, str]]:
    return sorted((a["scope"].lower(), a["roleDefinitionId"].rsplit("/", 1)[-1]) for a in assignments(sim)
                  if a["principalId"] == principal and (a.get("description") or "").startswith(MARKER))


def helm_revisions(sim: Any) -> list[str]:
    """The deployed revision of each release (Helm's records; superseded ones are kept as history)."""
    return sorted(s["metadata"]["labels"]["version"] for s in locked(sim, lambda: store(sim).list(
        "secrets", None, "owner=helm,status=deployed")))


def codes(st: dict[str, Any]) -> list[str]:
    return [p["code"] for p in st["problems"]]


class Tools:
    """Real kubectl/helm against the simulated cluster (admin kubeconfig in a private file)."""

    def __init__(self, sim: Any, tmp: Path) -> None:
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(sim.kubeconfig(NAME, admin=True)))
        kubeconfig.chmod(0o600)
        (tmp / "home").mkdir(exist_ok=True)
        self.tmp = tmp
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp / "home"), "KUBECONFIG": str(kubeconfig)}

    def run(self, tool: str, *args: str, check: bool = True, stdin: str | None = None) -> Any:
        proc = subprocess.run([str(TOOLS_BIN / tool), *args], env=self.env, capture_output=True, text=True,
                              timeout=120, check=False, input=stdin)
        if check and proc.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> Any:
        return self.run("kubectl", *args, check=check, stdin=stdin)

    def helm(self, *args: str, check: bool = True) -> Any:
        return self.run("helm", *args, check=check)


@pytest.fixture
def tools(world: Any, tmp_path: Path) -> Tools:
    return Tools(world, tmp_path)


# -- 1: enable, exactly the roles VN2 needs, a re-run writes nothing ---------------------------------------------
def test_enable_two_replicas_least_privilege_and_idempotent(vn: Any, world: Any, tools: Tools) -> None:
    sim = world
    res = vn(*ENABLE, "--replicas", "2")
    st = res.json()
    assert st["healthy"] is True, st["problems"]
    assert st["mode"] == "v2" and st["chart"]["release"] == "virtualnode" and st["chart"]["namespace"] == "vn2"
    assert st["chart"]["version"] == "1.3409.26080501" and st["chart"]["revision"] == 1
    assert [(n["name"], n["ready"], n["labelOk"], n["taintOk"]) for n in st["nodes"]] == [
        ("virtualnode-0", True, True, True), ("virtualnode-1", True, True, True)]
    assert st["ghostNodes"] == [] and st["admissionController"]["webhookConfigured"] is True
    assert all(p["ready"] and p["containersReady"] == "6/6" for p in st["infraPods"])
    # the default subnet 'cg' was created and delegated; no NAT gateway: a warning, not an error
    assert st["subnets"][0]["name"] == "cg" and st["subnets"][0]["delegated"] and st["subnets"][0]["natGateway"] is None
    assert "OutboundMissing" in codes(st) and "no outbound internet" in res.stderr
    # least privilege: ACI Contributor on the ACI (node) resource group, Network Contributor on cg; no Contributor
    principal = kubelet(sim)["objectId"]
    assert ours(sim, principal) == sorted([(NODE_RG_ID.lower(), ACI), (CG_ID.lower(), NC)])
    listed = vn("role", "assignment", "list", "--assignee", principal, "--all").json()
    assert sorted((a["roleDefinitionName"], a["scope"].lower()) for a in listed) == sorted([
        ("Azure Container Instances Contributor Role", NODE_RG_ID.lower()), ("Network Contributor", CG_ID.lower())])
    assert not [a for a in assignments(sim) if a["roleDefinitionId"].endswith(CONTRIBUTOR)]
    # the values are the chart's own keys, computed from the cluster
    values = json.loads(tools.helm("get", "values", "virtualnode", "-o", "json").stdout)
    assert values == {"replicaCount": 2, "aciSubnetName": "cg", "namespace": "vn2",
                      "aciResourceGroupName": "MC_vn2-rg_aks-vn2_westeurope"}

    # a second run: no ARM write, no helm upgrade
    sim.reset_logs()
    again = vn(*ENABLE, "--replicas", "2")
    assert again.json()["healthy"] is True and "is up to date" in again.stderr
    assert sim.writes() == [] and helm_revisions(sim) == ["1"]
    # without --replicas a re-run keeps what is installed
    sim.reset_logs()
    vn(*ENABLE)
    assert sim.writes() == [] and helm_revisions(sim) == ["1"]


# -- 4: bad input: a clear error and zero ARM writes ----------------------------------------------------------
def refused(vn: Any, sim: Any, *args: str, expect: str, code: int = 1, env: dict[str, str] | None = None) -> str:
    sim.reset_logs()
    res = vn(*args, check=False, env=env)
    assert res.returncode == code, str(res)
    assert expect in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert sim.writes() == [], f"writes reached ARM: {sim.writes()}"
    return res.stderr


CG_DELEGATED = {"name": "cg", "prefix": "10.2.0.0/16", "delegation": "Microsoft.ContainerInstance/containerGroups"}


def with_cg(raw: dict[str, Any]) -> dict[str, Any]:
    raw["resource_groups"][0]["vnets"][0]["subnets"].append(dict(CG_DELEGATED))
    return raw


@pytest.mark.parametrize("network, expect", [
    ({"plugin": "kubenet", "vnet_subnet": "vn2-vnet/aks"}, "uses the 'kubenet' network plugin"),
    ({"plugin": "azure", "plugin_mode": "overlay", "vnet_subnet": "vn2-vnet/aks"}, "Azure CNI Overlay"),
], ids=["kubenet", "overlay"])
def test_refuses_kubenet_and_overlay(vn: Any, sim: Any, network: dict[str, Any], expect: str) -> None:
    sim.sim.load(vn2_world(network={**network, "service_cidr": "10.4.0.0/16", "dns_service_ip": "10.4.0.10"}))
    refused(vn, sim, *ENABLE, expect=expect)


def test_refuses_authorized_ip_ranges(vn: Any, sim: Any) -> None:
    sim.sim.load(vn2_world(authorized_ip_ranges=["203.0.113.0/24"]))
    err = refused(vn, sim, *ENABLE, expect="restricts its API server to authorized IP ranges (203.0.113.0/24)")
    assert "--api-server-authorized-ip-ranges" in err


@pytest.mark.parametrize("value", ["0", "-1", "1000", "two"])
def test_refuses_bad_replicas_as_a_usage_error(vn: Any, world: Any, value: str) -> None:
    err = refused(vn, world, *ENABLE, "--replicas", value, expect="must be a whole number from 1 to 30", code=2)
    assert "--replicas" in err
    refused(vn, world, "aks", "virtual-node", "scale", *IDS, "--replicas", value, expect="from 1 to 30", code=2)


def test_refuses_a_chart_version_the_cluster_does_not_support(vn: Any, world: Any) -> None:
    err = refused(vn, world, "aks", "virtual-node", "enable", *IDS, "--mode", "v2", "--chart-version",
                  "1.2912.25013001", expect="does not support Kubernetes 1.34")
    assert "--chart-version 1.3409.26080501" in err


def test_refuses_v2_while_the_addon_is_on_and_scale_on_addon_mode(vn: Any, sim: Any) -> None:
    sim.sim.load(with_cg(vn2_world(addon={"subnet": "cg"})))
    err = refused(vn, sim, *ENABLE, expect="The managed ACI connector add-on is enabled")
    assert f"az aks virtual-node disable -g {RG} -n {NAME}" in err
    err = refused(vn, sim, "aks", "virtual-node", "scale", *IDS, "--replicas", "2",
                  expect="'scale' applies to Virtual Nodes v2 only")
    assert "mode 'addon'" in err


def test_refuses_v2_while_the_legacy_chart_runs(vn: Any, world: Any) -> None:
    legacy = str(Path(CHART).parent / "virtual-kubelet-azure-aci")
    vn("aks", "virtual-node", "enable", *IDS, "--mode", "chart", "--chart", legacy, "--no-wait")
    err = refused(vn, world, *ENABLE, expect="The legacy ACI connector chart is installed")
    assert "Helm release 'virtual-node'" in err and f"az aks virtual-node disable -g {RG} -n {NAME}" in err


def test_refuses_a_nat_gateway_that_does_not_exist(vn: Any, world: Any) -> None:
    err = refused(vn, world, *ENABLE, "--nat-gateway", "nope", expect="NAT gateway 'nope' was not found")
    assert "az network nat gateway create" in err


def test_refuses_helm_2(vn: Any, world: Any, tmp_path: Path) -> None:
    helm2 = tmp_path / "helm"
    helm2.write_text('#!/bin/sh\necho "Client: v2.17.0+ga690bad"\n')
    helm2.chmod(0o755)
    refused(vn, world, *ENABLE, expect="is Helm v2.17.0", env={"HELM_CLIENT_PATH": str(helm2)})


@pytest.mark.vn2("vn2-small-nodes")
def test_small_nodes_are_refused_before_any_write_with_the_numbers(vn: Any, world: Any) -> None:
    err = refused(vn, world, *ENABLE, "--replicas", "2",
                  expect="2 Virtual Nodes v2 infra pod(s) need 2.8 CPU / 9G each")
    assert "but only 0 fit" in err and "Standard_D4s_v5" in err and "checked 3 of 3" in err


# -- 3: diagnosis -------------------------------------------------------------------------------------------
def status(vn: Any) -> dict[str, Any]:
    return vn("aks", "virtual-node", "status", *IDS).json()


def problem(st: dict[str, Any], code: str) -> dict[str, Any]:
    return next(p for p in st["problems"] if p["code"] == code)


def test_diagnosis_crash_loop_webhook_down_and_ghost_nodes(vn: Any, world: Any, tools: Tools) -> None:
    sim = world
    vn(*ENABLE, "--replicas", "2")
    principal = kubelet(sim)["objectId"]

    # the ACI role removed afterwards: a restarted infra pod crash-loops with the Azure error
    vn("role", "assignment", "delete", "--assignee", principal, "--role", "Azure Container Instances Contributor Role",
       "--scope", NODE_RG_ID)
    tools.kubectl("delete", "pod", "virtualnode-1", "-n", "vn2", "--wait=false")

    def crash_looping() -> Any:
        st = status(vn)
        return st if "InfraCrashLoop" in codes(st) else None
    st = wait_for(crash_looping, timeout=60, interval=0.5)
    crash = problem(st, "InfraCrashLoop")
    assert "virtualnode-1" in crash["message"] and "proxycri" in crash["message"]
    assert "AuthorizationFailed" in crash["message"] and "Microsoft.ContainerInstance/containerGroups/write" in \
        crash["message"]
    assert "--mode v2" in crash["hint"] and "kubectl logs -n vn2 virtualnode-1" in crash["hint"]
    assert "RoleMissing" in codes(st) and st["healthy"] is False
    # a re-run grants the role again and restarts the crash-looping pod at once
    healed = vn(*ENABLE)
    assert healed.json()["healthy"] is True and "Restarting infra pod virtualnode-1" in healed.stderr

    # the admission controller down
    tools.kubectl("scale", "deployment", "virtual-node-admission-controller", "-n", "vn2", "--replicas", "0")
    st = wait_for(lambda: (s := status(vn)) and "WebhookUnavailable" in codes(s) and s, timeout=30, interval=0.5)
    assert "0 of 0 admission controller pod(s) are ready" not in problem(st, "WebhookUnavailable")["message"]
    assert "kubectl scale deployment virtual-node-admission-controller -n vn2" in problem(st, "WebhookUnavailable")[
        "hint"]
    tools.kubectl("scale", "deployment", "virtual-node-admission-controller", "-n", "vn2", "--replicas", "1")

    # a ghost node left by a raw helm scale-down: still Ready, no pod behind it
    tools.helm("upgrade", "virtualnode", CHART, "--reuse-values", "--set", "replicaCount=1")
    wait_for(lambda: locked(sim, lambda: store(sim).get("pods", "vn2", "virtualnode-1")) is None, timeout=30)
    st = wait_for(lambda: (s := status(vn)) and "GhostNodes" in codes(s) and s, timeout=30, interval=0.5)
    ghost = problem(st, "GhostNodes")
    assert st["ghostNodes"] == ["virtualnode-1"] and "virtualnode-1" in ghost["message"]
    assert "kubectl delete node virtualnode-1" in ghost["hint"] and st["healthy"] is False
    assert [n["name"] for n in st["nodes"]] == ["virtualnode-0"]


# -- 2: scale ---------------------------------------------------------------------------------------------------
WEB = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
       "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                    "nodeSelector": {"virtualization": "virtualnode2", "kubernetes.io/os": "linux"},
                    "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                    "containers": [{"name": "web", "image": "nginx"}]}}}}


def web_pods(sim: Any) -> list[dict[str, Any]]:
    return [p for p in locked(sim, lambda: store(sim).list("pods", "default", "app=web"))
            if not p["metadata"].get("deletionTimestamp")]


def vn2_node_names(sim: Any) -> list[str]:
    return sorted(n["metadata"]["name"] for n in locked(sim, lambda: store(sim).list(
        "nodes", None, "virtualization=virtualnode2")))


def test_scale_up_and_down_moves_pods_and_leaves_no_ghost(vn: Any, world: Any, tools: Tools) -> None:
    sim = world
    vn(*ENABLE)
    up = vn("aks", "virtual-node", "scale", *IDS, "--replicas", "3", "--timeout", "90").json()
    assert up["from"] == 1 and up["to"] == 3 and up["status"]["healthy"] is True
    assert vn2_node_names(sim) == ["virtualnode-0", "virtualnode-1", "virtualnode-2"]
    assert json.loads(tools.helm("get", "values", "virtualnode", "-o", "json").stdout)["replicaCount"] == 3
    sim.reset_logs()
    same = vn("aks", "virtual-node", "scale", *IDS, "--replicas", "3")
    assert "nothing to change" in same.stderr and sim.writes() == [] and helm_revisions(sim) == ["2"]

    # a workload pod on virtualnode-2 (the others cordoned while it is placed)
    tools.kubectl("cordon", "virtualnode-0", "virtualnode-1")
    tools.kubectl("apply", "-f", "-", stdin=json.dumps(WEB))
    pod = wait_for(lambda: (p := web_pods(sim)) and p[0]["spec"].get("nodeName") and p[0], timeout=30)
    assert pod["spec"]["nodeName"] == "virtualnode-2"
    tools.kubectl("uncordon", "virtualnode-0", "virtualnode-1")

    busy = vn("aks", "virtual-node", "scale", *IDS, "--replicas", "1", "--yes", check=False)
    assert busy.returncode == 1 and f"default/{pod['metadata']['name']} on virtualnode-2" in busy.stderr
    assert "--force" in busy.stderr and vn2_node_names(sim) == ["virtualnode-0", "virtualnode-1", "virtualnode-2"]
    assert helm_revisions(sim) == ["2"]

    down = vn("aks", "virtual-node", "scale", *IDS, "--replicas", "1", "--force", "--yes", "--timeout", "90").json()
    assert down["evicted"] == [f"default/{pod['metadata']['name']}"]
    assert down["cordoned"] == ["virtualnode-1", "virtualnode-2"]
    assert down["nodesDeleted"] == ["virtualnode-1", "virtualnode-2"]
    assert vn2_node_names(sim) == ["virtualnode-0"]
    st = down["status"]
    assert st["healthy"] is True and st["ghostNodes"] == [] and [n["name"] for n in st["nodes"]] == ["virtualnode-0"]
    moved = wait_for(lambda: (p := web_pods(sim)) and p[0]["spec"].get("nodeName") and p[0], timeout=30)
    assert moved["spec"]["nodeName"] == "virtualnode-0" and moved["metadata"]["name"] != pod["metadata"]["name"]


# -- 5: disable ---------------------------------------------------------------------------------------------
def test_disable_removes_release_nodes_roles_and_subnet_then_nothing_to_do(vn: Any, world: Any) -> None:
    sim = world
    vn(*ENABLE, "--replicas", "2")
    principal = kubelet(sim)["objectId"]
    # the modes exclude each other: the add-on and the legacy chart refuse while v2 runs, naming disable
    legacy = str(Path(CHART).parent / "virtual-kubelet-azure-aci")
    for args in ([], ["--mode", "chart", "--chart", legacy]):
        err = refused(vn, sim, "aks", "virtual-node", "enable", *IDS, *args,
                      expect="Virtual Nodes v2 is installed on cluster 'aks-vn2' (Helm release 'virtualnode'")
        assert f"az aks virtual-node disable -g {RG} -n {NAME}" in err
    # an administrator's own grant is left alone
    vn("role", "assignment", "create", "--assignee-object-id", principal, "--assignee-principal-type",
       "ServicePrincipal", "--role", "Reader", "--scope", NODE_RG_ID)
    out = vn("aks", "virtual-node", "disable", *IDS, "--delete-subnet", "--yes", "--timeout", "90").json()
    assert out["mode"] == "v2" and out["chartUninstalled"] and out["subnetDeleted"]
    assert out["nodesRemoved"] == ["virtualnode-0", "virtualnode-1"] and len(out["roleAssignmentsRemoved"]) == 2
    assert ours(sim, principal) == [] and vn2_node_names(sim) == []
    assert [a for a in assignments(sim) if a["principalId"] == principal]      # the Reader grant stays
    assert helm_revisions(sim) == [] and locked(sim, lambda: store(sim).get("namespaces", None, "vn2")) is None
    assert locked(sim, lambda: sim.world.arm.get(CG_ID)) is None
    assert status(vn)["mode"] == "none"
    sim.reset_logs()
    second = vn("aks", "virtual-node", "disable", *IDS, "--yes")
    assert "nothing to do" in second.stderr and sim.writes() == []


def test_wait_deleted_waits_for_v2_nodes_a_manual_helm_uninstall_leaves(vn: Any, world: Any, tools: Tools) -> None:
    vn(*ENABLE)
    tools.helm("uninstall", "virtualnode", "-n", "default")
    wait_for(lambda: not locked(world, lambda: store(world).list("pods", "vn2")), timeout=30, what="infra pods gone")
    assert vn2_node_names(world) == ["virtualnode-0"]            # a ghost: no connector serves it any more
    res = vn("aks", "virtual-node", "wait", *IDS, "--deleted", "--timeout", "3", check=False)
    assert res.returncode == 1 and "node 'virtualnode-0' is still registered" in res.stderr, str(res)
    assert "kubectl delete node virtualnode-0" in res.stderr
    tools.kubectl("delete", "node", "virtualnode-0")
    vn("aks", "virtual-node", "wait", *IDS, "--deleted", "--timeout", "10")


def test_no_wait_then_wait_ready_and_busy_disable(vn: Any, world: Any, tools: Tools) -> None:
    started = vn(*ENABLE, "--replicas", "2", "--no-wait")
    assert started.stdout.strip() == ""
    vn("aks", "virtual-node", "wait", *IDS, "--ready", "--timeout", "60")
    assert status(vn)["healthy"] is True
    tools.kubectl("apply", "-f", "-", stdin=json.dumps(WEB))
    wait_for(lambda: (p := web_pods(world)) and p[0]["spec"].get("nodeName"), timeout=30)
    world.reset_logs()
    busy = vn("aks", "virtual-node", "disable", *IDS, "--yes", check=False)
    assert busy.returncode == 1 and "default/web-" in busy.stderr and world.writes() == []
    out = vn("aks", "virtual-node", "disable", *IDS, "--yes", "--force", "--timeout", "90").json()
    assert out["chartUninstalled"] and vn2_node_names(world) == []


# -- place and prune on v2 ---------------------------------------------------------------------------------
def test_place_on_v2_and_prune_deletes_ghost_nodes(vn: Any, world: Any, tools: Tools) -> None:
    sim = world
    vn(*ENABLE, "--replicas", "2")
    plain = {**WEB, "spec": {**WEB["spec"], "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
        "containers": [{"name": "web", "image": "nginx"}]}}}}
    tools.kubectl("apply", "-f", "-", stdin=json.dumps(plain))
    vn("aks", "virtual-node", "place", *IDS, "--workload", "deployment/web", "--policy", "only")
    spec = locked(sim, lambda: store(sim).get("deployments.apps", "default", "web"))["spec"]["template"]["spec"]
    assert spec["nodeSelector"]["virtualization"] == "virtualnode2"
    pod = wait_for(lambda: (p := [x for x in web_pods(sim) if (x["spec"].get("nodeName") or "").startswith(
        "virtualnode-")]) and p[0], timeout=30)
    assert pod["spec"]["nodeName"] in ("virtualnode-0", "virtualnode-1")

    # a pod on the second node, whose container group is orphaned once that node's kubelet is gone
    stray = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "namespace": "default"},
             "spec": {"nodeName": "virtualnode-1", "tolerations": [{"key": "virtual-kubelet.io/provider",
                                                                   "operator": "Exists"}],
                      "containers": [{"name": "app", "image": "nginx"}]}}
    tools.kubectl("apply", "-f", "-", stdin=json.dumps(stray))
    wait_for(lambda: vn("container", "show", "-g", "MC_vn2-rg_aks-vn2_westeurope", "-n", "default-stray",
                        check=False).returncode == 0, timeout=30, what="the stray pod's container group")

    tools.helm("upgrade", "virtualnode", CHART, "--reuse-values", "--set", "replicaCount=1")
    wait_for(lambda: locked(sim, lambda: store(sim).get("pods", "vn2", "virtualnode-1")) is None, timeout=30)
    tools.kubectl("delete", "pod", "stray", "--grace-period=0", "--force")
    dry = vn("aks", "virtual-node", "prune", *IDS, "--dry-run").json()
    assert dry["ghostNodes"] == ["virtualnode-1"] and vn2_node_names(sim) == ["virtualnode-0", "virtualnode-1"]
    assert [g["name"] for g in dry["orphanedContainerGroups"]] == ["default-stray"]
    out = vn("aks", "virtual-node", "prune", *IDS, "--yes").json()
    assert "node/virtualnode-1" in out["deleted"] and vn2_node_names(sim) == ["virtualnode-0"]
    assert "default-stray" in out["deleted"]
    assert "GhostNodes" not in codes(status(vn))


# -- NAT gateway ---------------------------------------------------------------------------------------------
def test_nat_gateway_is_validated_and_attached(vn: Any, sim: Any) -> None:
    raw = vn2_world()
    raw["resource_groups"][0]["nat_gateways"] = ["egress"]
    raw["resource_groups"].append({"name": "far-rg", "location": "eastus", "nat_gateways": ["far"]})
    sim.sim.load(raw)
    far = f"/subscriptions/{SUB}/resourceGroups/far-rg/providers/Microsoft.Network/natGateways/far"
    refused(vn, sim, *ENABLE, "--nat-gateway", far, expect="is in region 'eastus', not in the cluster's region")
    res = vn(*ENABLE, "--nat-gateway", "egress")
    st = res.json()
    nat = f"{RG_ID}/providers/Microsoft.Network/natGateways/egress"
    assert st["subnets"][0]["natGateway"].lower() == nat.lower() and "OutboundMissing" not in codes(st)
    assert st["healthy"] is True and "no outbound internet" not in res.stderr
    cg = locked(sim, lambda: sim.world.arm.get(CG_ID))["properties"]
    assert cg["natGateway"]["id"].lower() == nat.lower() and cg["delegations"]
    sim.reset_logs()
    vn(*ENABLE, "--nat-gateway", "egress")
    assert sim.writes() == []


# -- status request count -------------------------------------------------------------------------------------
def v2_status_requests(vn: Any, sim: Any, nodes: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sim.sim.load(vn2_world(nodes=nodes))
    vn(*ENABLE, "--replicas", "2")
    sim.reset_logs()
    st = status(vn)
    assert st["healthy"] is True and len(st["nodes"]) == 2, st["problems"]
    return {ep: sim.request_log(ep)["counts"] for ep in ("arm", "kube")}, sim.requests("kube")


def test_v2_status_request_count_does_not_grow_with_the_cluster(vn: Any, sim: Any) -> None:
    small, _ = v2_status_requests(vn, sim, 3)
    large, entries = v2_status_requests(vn, sim, 12)
    assert large == small
    node_lists = [e for e in entries if e["path"] == "/api/v1/nodes" and e["method"] == "GET"]
    assert node_lists and all("labelSelector=virtualization" in e["query"] for e in node_lists), node_lists
    pod_lists = [e for e in entries if e["path"].endswith("/pods") and e["method"] == "GET"]
    assert all("labelSelector=" in e["query"] or "fieldSelector=spec.nodeName" in e["query"]
               or "fieldSelector=status.phase" in e["query"] for e in pod_lists), pod_lists


def test_verify_timeout_names_each_replica_and_why(vn: Any, world: Any) -> None:
    vn(*ENABLE, "--replicas", "2", "--skip-role-assignment", "--no-wait")
    res = vn("aks", "virtual-node", "wait", *IDS, "--ready", "--timeout", "8", check=False)
    assert res.returncode == 1 and "did not become ready within 8s" in res.stderr, res.stderr
    assert "still missing: virtualnode-0: infra pod" in res.stderr and "virtualnode-1" in res.stderr
    assert "[RoleMissing]" in res.stderr and "AuthorizationFailed" in res.stderr


# -- transient faults during a v2 enable (issue 9: the fault matrix, v2 part) ------------------------------
V2_FAULTS = {
    "subnet-put-503": ("arm", "PUT", r"/subnets/cg$", 503, "ServiceUnavailable"),
    "role-put-429": ("arm", "PUT", r"/roleAssignments/[^/]+$", 429, "TooManyRequests"),
    "helm-secrets-list-500": ("kube", "GET", r"^/api/v1/secrets$", 500, "InternalError"),
    "nodes-list-503": ("kube", "GET", r"^/api/v1/nodes$", 503, "ServiceUnavailable"),
    "infra-pods-429": ("kube", "GET", r"^/api/v1/namespaces/vn2/pods$", 429, "TooManyRequests"),
}


@pytest.mark.parametrize("case", list(V2_FAULTS))
def test_v2_enable_survives_transient_errors(vn: Any, world: Any, case: str) -> None:
    endpoint, method, path, status, code = V2_FAULTS[case]
    world.admin("POST", "/_admin/faults", {"endpoint": endpoint, "method": method, "path": path, "status": status,
                                           "code": code, "times": 2, "retry_after": 1 if status == 429 else None})
    res = vn(*ENABLE)
    st = res.json()
    assert st["healthy"] is True and st["mode"] == "v2", st["problems"]
    assert "Traceback" not in res.stderr
    assert sum(r["hits"] for r in world.admin("GET", "/_admin/faults")["value"]) >= 1, \
        "the fault never fired: the matrix no longer matches enable's calls"
    assert ours(world, kubelet(world)["objectId"]) == sorted([(NODE_RG_ID.lower(), ACI), (CG_ID.lower(), NC)])


# -- issue 10: a v1 selector on a v2 install ---------------------------------------------------------------
def test_v1_selector_on_v2_is_a_selector_mismatch(vn: Any, world: Any, tools: Tools) -> None:
    vn(*ENABLE)
    old = {**WEB, "spec": {**WEB["spec"], "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
        # the add-on tutorial's selector and toleration
        "nodeSelector": {"kubernetes.io/role": "agent", "beta.kubernetes.io/os": "linux", "type": "virtual-kubelet"},
        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
        "containers": [{"name": "web", "image": "nginx"}]}}}}
    tools.kubectl("apply", "-f", "-", stdin=json.dumps(old))
    wait_for(lambda: [p for p in web_pods(world) if (p.get("status") or {}).get("phase") == "Pending"], timeout=30)
    st = status(vn)
    pending = st["workload"]["pending"]
    assert [(p["name"].startswith("web-"), p["workload"], p["reason"]) for p in pending] == [
        (True, "deployment/web", "SelectorMismatch")], pending
    assert "virtualization=virtualnode2" in pending[0]["detail"]
    assert "PodsCannotSchedule" in codes(st) and st["healthy"] is True     # a warning: the v2 nodes work
