"""az aks virtual-node place / prune and the workload diagnosis of status, end to end: the real az with the
installed wheel and the real kubectl against aksim (add-on mode; one chart-mode test with the real helm)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from aksim.scenario import read_raw
from conftest import TOOLS_BIN
from waiting import wait_for

RG, NAME = "demo-rg", "aks-demo"
IDS = ["-g", RG, "-n", NAME]
SUB = "00000000-0000-0000-0000-000000000001"
NODE_RG = "MC_demo-rg_aks-demo_westeurope"
VNODE = "virtual-node-aci-linux"
ANNOTATION = "virtual-node.aks.azure.com/placement"
PROVIDER = {"key": "virtual-kubelet.io/provider", "operator": "Exists"}
LEGACY = {"key": "azure.com/aci", "operator": "Exists", "effect": "NoSchedule"}
USER_TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
CHART = str(Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "virtual-kubelet-azure-aci")


def with_addon() -> dict:
    """demo with the add-on already on (subnet delegated, the add-on identity allowed to use it)."""
    raw = read_raw("demo")
    raw["resource_groups"][0]["vnets"][0]["subnets"].append(
        {"name": "virtual-node-aci", "prefix": "10.241.0.0/16",
         "delegation": "Microsoft.ContainerInstance/containerGroups"})
    raw["clusters"][0]["addon"] = {"subnet": "virtual-node-aci"}
    scope = f"/subscriptions/{{subscription}}/resourceGroups/{RG}"
    raw["clusters"][0]["role_assignments"] = [{"principal": "addon", "role": "Network Contributor", "scope": scope}]
    return raw


ADDON = with_addon()


# -- helpers ------------------------------------------------------------------------------------------------
class Kubectl:
    def __init__(self, vn, tmp_path: Path) -> None:
        self.kubeconfig = tmp_path / "kubeconfig"
        vn("aks", "get-credentials", *IDS, "--file", str(self.kubeconfig))
        self.tmp = tmp_path

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(TOOLS_BIN / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
                              capture_output=True, text=True, timeout=60, check=False, input=stdin)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc

    def json(self, *args: str) -> dict:
        return json.loads(self("get", *args, "-o", "json").stdout)

    def apply(self, obj: dict) -> None:
        self("apply", "-f", "-", stdin=json.dumps(obj))

    def pods(self, app: str, namespace: str = "default") -> list[dict]:
        return self.json("pods", "-n", namespace, "-l", f"app={app}")["items"]

    def settled(self, app: str, count: int, namespace: str = "default") -> list[dict]:
        """Wait until exactly ``count`` pods of ``app`` exist, all Running and Ready."""
        def check():
            pods = self.pods(app, namespace)
            ok = len(pods) == count and all(p["status"].get("phase") == "Running" and any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
                for p in pods)
            return pods if ok else None
        return wait_for(check, timeout=30, interval=0.3)


@pytest.fixture
def kubectl(vn, tmp_path) -> Kubectl:
    k = Kubectl(vn, tmp_path)
    wait_for(lambda: VNODE in k("get", "nodes").stdout if k.json("nodes").get("items") else False, timeout=20)
    return k


def deployment(name: str, replicas: int, namespace: str = "default", pod_spec: dict | None = None,
               cpu: str | None = None) -> dict:
    container: dict = {"name": name, "image": "mcr.microsoft.com/azuredocs/aci-helloworld"}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {**(pod_spec or {}), "containers": [container]}}}}


def place(vn, workload: str, policy: str, *extra: str, check: bool = True):
    return vn("aks", "virtual-node", "place", *IDS, "--workload", workload, "--policy", policy, *extra, check=check)


def nodes_of(pods: list[dict]) -> list[str]:
    return [p["spec"]["nodeName"] for p in pods]


# -- acceptance 1: only / off, each twice ------------------------------------------------------------------
@pytest.mark.scenario(ADDON)
def test_only_pins_to_the_virtual_node_off_restores_and_reruns_change_nothing(vn, sim, kubectl):
    kubectl("create", "namespace", "shop")
    kubectl.apply(deployment("web", 3, "shop", {"tolerations": [USER_TOLERATION]}))
    assert VNODE not in nodes_of(kubectl.settled("web", 3, "shop"))

    out = place(vn, "deployment/web", "only", "--namespace", "shop").json()
    assert out["applied"] is True and out["changed"] is True and out["mode"] == "addon"
    assert out["added"]["nodeSelector"] == {"type": "virtual-kubelet", "kubernetes.io/os": "linux"}
    pods = wait_for(lambda: (p := kubectl.settled("web", 3, "shop")) and set(nodes_of(p)) == {VNODE} and p,
                    timeout=30, interval=0.3)
    assert all(p["status"]["podIP"].startswith("10.241.") for p in pods)      # ACI addresses from the subnet
    groups = vn("container", "list", "-g", NODE_RG).json()
    assert sorted(g["name"] for g in groups) == sorted(f"shop-{p['metadata']['name']}" for p in pods)

    sim.reset_logs()
    again = place(vn, "deployment/web", "only", "--namespace", "shop")
    assert again.json()["changed"] is False and "nothing to change" in again.stderr
    assert sim.writes("kube") == [] and sim.writes("arm") == []

    place(vn, "deployment/web", "off", "--namespace", "shop")
    pods = wait_for(lambda: (p := kubectl.settled("web", 3, "shop")) and VNODE not in nodes_of(p) and p,
                    timeout=30, interval=0.3)
    spec = kubectl.json("deployment", "web", "-n", "shop")["spec"]["template"]["spec"]
    assert spec["tolerations"] == [USER_TOLERATION] and "nodeSelector" not in spec
    assert all(p["spec"]["tolerations"][0] == USER_TOLERATION for p in pods)
    assert ANNOTATION not in (kubectl.json("deployment", "web", "-n", "shop")["metadata"].get("annotations") or {})
    sim.reset_logs()
    assert place(vn, "deployment/web", "off", "--namespace", "shop").json()["changed"] is False
    assert sim.writes("kube") == []


# -- acceptance 2: burst ------------------------------------------------------------------------------------
@pytest.mark.scenario(ADDON)
def test_burst_fills_regular_nodes_first_and_scale_down_removes_the_virtual_pods_first(vn, sim, kubectl):
    # The README's order: place, then scale. (Placing a running Deployment rolls its pods, and the rollout's new
    # pods start while the old ones still hold the regular nodes, so those would land in ACI, as on a real cluster.)
    kubectl.apply(deployment("burst", 0, cpu="700m"))
    place(vn, "deployment/burst", "burst")
    kubectl("scale", "deployment/burst", "--replicas=12")
    pods = wait_for(lambda: (p := kubectl.settled("burst", 12)) and all(
        PROVIDER in x["spec"].get("tolerations", []) for x in p) and p, timeout=30, interval=0.3)
    on_virtual = [p for p in pods if p["spec"]["nodeName"] == VNODE]
    regular = [p for p in pods if p["spec"]["nodeName"] != VNODE]
    # The regular nodes are full: none has room for one more 700m pod. Only the rest went to ACI.
    from aksim import controlplane
    with sim.lock:
        scheduler = controlplane.control_plane(sim.cluster()).scheduler
        free = {n: info.cpu - (scheduler.usage[n].cpu if n in scheduler.usage else 0)
                for n, info in scheduler.nodes.items() if not info.virtual}
    assert all(f < 700 for f in free.values()), free
    per_node = {n: nodes_of(regular).count(n) for n in free}
    assert on_virtual and len(on_virtual) + len(regular) == 12
    # Real ActivePodsWithRanks: pods on the node holding most replicas of the set go first. The virtual node
    # holds more than any regular node here, so scale-down removes the virtual-node pods first.
    assert len(on_virtual) > max(per_node.values()), per_node
    kubectl("scale", "deployment/burst", f"--replicas={len(regular)}")
    left = kubectl.settled("burst", len(regular))
    assert VNODE not in nodes_of(left)
    assert {p["metadata"]["uid"] for p in left} == {p["metadata"]["uid"] for p in regular}
    wait_for(lambda: vn("container", "list", "-g", NODE_RG).json() == [], timeout=15)


# -- acceptance 4: dry run --------------------------------------------------------------------------------
@pytest.mark.scenario(ADDON)
def test_dry_run_writes_nothing_and_prints_a_fragment_kubectl_accepts(vn, sim, kubectl):
    kubectl.apply(deployment("web", 1, pod_spec={"tolerations": [USER_TOLERATION]}))
    before = kubectl.json("deployment", "web")
    sim.reset_logs()
    res = place(vn, "deployment/web", "only", "--dry-run", "-o", "yaml")
    assert sim.writes("kube") == [] and sim.writes("arm") == []
    fragment = yaml.safe_load(res.stdout)
    assert fragment["kind"] == "Deployment" and fragment["metadata"]["name"] == "web"
    assert "status" not in fragment and "resourceVersion" not in fragment["metadata"]
    assert fragment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    spec = fragment["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"type": "virtual-kubelet", "kubernetes.io/os": "linux"}
    assert spec["tolerations"] == [USER_TOLERATION, PROVIDER, LEGACY]
    path = kubectl.tmp / "fragment.yaml"
    path.write_text(res.stdout)
    sim.reset_logs()
    checked = kubectl("apply", "--dry-run=server", "-f", str(path))
    assert "(server dry run)" in checked.stdout
    assert all("dryRun=All" in e["query"] for e in sim.requests("kube") if e["method"] == "PATCH")
    after = kubectl.json("deployment", "web")
    assert after["spec"] == before["spec"] and after["metadata"].get("annotations") == \
        before["metadata"].get("annotations")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    json_out = place(vn, "deployment/web", "burst", "--dry-run").json()
    assert json_out["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100


# -- acceptance 5: status explains Pending pods ------------------------------------------------------------
@pytest.mark.scenario(ADDON)
def test_status_names_the_old_toleration_key_and_the_place_command_fixes_it(vn, sim, kubectl):
    legacy = {"nodeSelector": {"type": "virtual-kubelet", "kubernetes.io/os": "linux"},
              "tolerations": [{"key": "azure.com/aci", "effect": "NoSchedule"}]}
    kubectl.apply(deployment("legacy", 2, pod_spec=legacy))
    wait_for(lambda: len(kubectl.pods("legacy")) == 2 and all(
        any(c["type"] == "PodScheduled" and c["status"] == "False" for c in p["status"].get("conditions", []))
        for p in kubectl.pods("legacy")), timeout=20)
    sim.reset_logs()
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert sim.writes("kube") == [] and sim.writes("arm") == []
    pending = st["workload"]["pending"]
    assert len(pending) == 2 and {p["reason"] for p in pending} == {"TolerationMissing"}
    assert all("tolerates only the old key azure.com/aci" in p["detail"] for p in pending)
    assert all(p["workload"] == "deployment/legacy" and p["namespace"] == "default" for p in pending)
    assert "untolerated taint {virtual-kubelet.io/provider: azure}" in pending[0]["message"]
    problem = next(p for p in st["problems"] if p["code"] == "PodsCannotSchedule")
    fix = "az aks virtual-node place -g demo-rg -n aks-demo --workload deployment/legacy --namespace default " \
          "--policy only"
    assert fix in problem["hint"]
    pod_lists = [e for e in sim.requests("kube") if e["method"] == "GET" and e["path"] == "/api/v1/pods"]
    assert any("fieldSelector=status.phase%3DPending" in e["query"] or "status.phase=Pending" in e["query"]
               for e in pod_lists), pod_lists

    vn(*fix.split()[1:])
    assert set(nodes_of(kubectl.settled("legacy", 2))) == {VNODE}
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert st["workload"]["pending"] == [] and "PodsCannotSchedule" not in [p["code"] for p in st["problems"]]


# -- acceptance 6: orphaned container groups and prune -----------------------------------------------------
def bare_pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {"nodeSelector": {"type": "virtual-kubelet"}, "tolerations": [PROVIDER],
                     "containers": [{"name": "app", "image": "mcr.microsoft.com/azuredocs/aci-helloworld"}]}}


@pytest.mark.scenario(ADDON)
def test_orphaned_container_group_is_reported_and_pruned_exactly(vn, sim, kubectl):
    kubectl.apply(bare_pod("keep"))
    kubectl.apply(bare_pod("lost"))
    kubectl.settled("keep", 1)
    kubectl.settled("lost", 1)
    # The connector goes down (its replacement does not register for a minute), then the pod is deleted:
    # nobody deletes its container group.
    sim.admin("POST", "/_admin/timings", {"node_register": 60})
    kubectl("delete", "pod", "-n", "kube-system", "-l", "app=aci-connector-linux", "--wait=false")
    kubectl("delete", "pod", "lost", "--wait=false")
    wait_for(lambda: not kubectl.pods("lost"), timeout=10)
    assert sorted(g["name"] for g in vn("container", "list", "-g", NODE_RG).json()) == ["default-keep", "default-lost"]

    st = vn("aks", "virtual-node", "status", *IDS).json()
    orphaned = st["containerGroups"]["orphaned"]
    assert [(g["name"], g["namespace"], g["podName"]) for g in orphaned] == [("default-lost", "default", "lost")]
    assert st["containerGroups"]["count"] == 2
    problem = next(p for p in st["problems"] if p["code"] == "OrphanContainerGroups")
    assert "az aks virtual-node prune -g demo-rg -n aks-demo" in problem["hint"]

    sim.reset_logs()
    dry = vn("aks", "virtual-node", "prune", *IDS, "--dry-run")
    assert [g["name"] for g in dry.json()["orphanedContainerGroups"]] == ["default-lost"]
    assert "default-lost" in dry.stderr and dry.json()["deleted"] == []
    assert sim.writes("arm") == [] and sim.writes("kube") == []

    refused = vn("aks", "virtual-node", "prune", *IDS, check=False)          # no tty, no --yes: asks, cannot
    assert refused.returncode != 0 and "--yes" in refused.stderr and sim.writes("arm") == []

    out = vn("aks", "virtual-node", "prune", *IDS, "--yes").json()
    assert out["deleted"] == ["default-lost"]
    deletes = [w for w in sim.writes("arm") if w.startswith("DELETE")]
    assert len(deletes) == 1 and deletes[0].endswith("/containerGroups/default-lost")
    assert [g["name"] for g in vn("container", "list", "-g", NODE_RG).json()] == ["default-keep"]
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert st["containerGroups"]["orphaned"] == []
    sim.reset_logs()
    assert vn("aks", "virtual-node", "prune", *IDS, "--yes").json()["deleted"] == []
    assert sim.writes("arm") == []


# -- acceptance 7: bad input --------------------------------------------------------------------------------
def place_fails(vn, sim, *args: str, expect: str, code: int = 1) -> str:
    sim.reset_logs()
    res = vn("aks", "virtual-node", "place", *IDS, *args, check=False)
    assert res.returncode == code, str(res)
    assert expect in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert sim.writes("kube") == [] and sim.writes("arm") == []
    return res.stderr


@pytest.mark.scenario(ADDON)
def test_bad_input_is_refused_without_a_write(vn, sim, kubectl):
    kubectl.apply(deployment("web", 1))
    err = place_fails(vn, sim, "--workload", "deployment/nope", "--policy", "only",
                      expect="Deployment 'nope' was not found in namespace 'default'")
    assert "kubectl get deployments -n default" in err
    place_fails(vn, sim, "--workload", "daemonset/agents", "--policy", "only",
                expect="DaemonSets never run on virtual nodes")
    err = place_fails(vn, sim, "--workload", "deployment/web", "--namespace", "nope", "--policy", "only",
                      expect="Namespace 'nope' does not exist")
    assert "--namespace" in err
    place_fails(vn, sim, "--workload", "web", "--policy", "only", expect="expects KIND/NAME")
    place_fails(vn, sim, "--workload", "deployment/web", "--policy", "sometimes", expect="sometimes", code=2)
    place_fails(vn, sim, "--workload", "deployment/web", expect="--policy", code=2)
    kubectl.apply(deployment("win", 1, pod_spec={"nodeSelector": {"kubernetes.io/os": "windows"}}))
    place_fails(vn, sim, "--workload", "deployment/win", "--policy", "only",
                expect="kubernetes.io/os=windows, which contradicts")
    rs = kubectl.json("replicasets", "-l", "app=web")["items"][0]["metadata"]["name"]
    place_fails(vn, sim, "--workload", f"replicaset/{rs}", "--policy", "only",
                expect="is managed by Deployment 'web'")


def test_no_virtual_node_installed_is_refused_without_a_write(vn, sim, tmp_path):
    k = Kubectl(vn, tmp_path)
    k.apply(deployment("web", 1))
    err = place_fails(vn, sim, "--workload", "deployment/web", "--policy", "only",
                      expect="Virtual nodes are not enabled on cluster 'aks-demo'")
    assert "az aks virtual-node enable -g demo-rg -n aks-demo" in err


@pytest.mark.scenario(ADDON)
def test_warns_about_what_the_addon_cannot_run(vn, sim, kubectl):
    kubectl.apply(deployment("init", 1, pod_spec={"initContainers": [{"name": "migrate", "image": "busybox"}],
                                                  "volumes": [{"name": "data", "hostPath": {"path": "/data"}}]}))
    res = place(vn, "deployment/init", "only")
    assert "init containers (migrate)" in res.stderr and "'data' is a hostPath volume" in res.stderr
    assert len(res.json()["warnings"]) == 2 and res.json()["applied"] is True


# -- chart mode ---------------------------------------------------------------------------------------------
def test_chart_mode_places_on_the_chart_node(vn, sim, tmp_path):
    vn("aks", "virtual-node", "enable", *IDS, "--mode", "chart", "--chart", CHART, "--timeout", "120")
    k = Kubectl(vn, tmp_path)
    k.apply(deployment("web", 2))
    k.settled("web", 2)
    out = place(vn, "deployment/web", "only").json()
    assert out["mode"] == "chart"
    pods = wait_for(lambda: (p := k.settled("web", 2)) and set(nodes_of(p)) == {"virtual-node-aci-linux-helm"}
                    and p, timeout=30, interval=0.3)
    assert len(pods) == 2
