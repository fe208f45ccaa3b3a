"""az aks virtual-node migrate --to v2 end to end: the real az with the installed wheel, the real helm and kubectl
against aksim, from the managed add-on and from the legacy chart to Virtual Nodes v2 (test chart
tests/fixtures/charts/virtualnode), with an availability watcher on the Deployments during the move."""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aksim.azconfig import az_command
from test_scenario_v2 import CHART, IDS, NAME, RG_ID, VNET_ID, Tools, assignments, helm_revisions, vn2_world
from waiting import wait_for

LEGACY_CHART = str(Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "virtual-kubelet-azure-aci")
MIGRATE = ["aks", "virtual-node", "migrate", *IDS, "--to", "v2", "--chart", CHART, "--timeout", "240"]
ADDON_NODE, CHART_NODE = "virtual-node-aci-linux", "virtual-node-aci-linux-helm"
SUBNET_ID = f"{VNET_ID}/subnets/virtual-node-aci"
MARKER = "Created by az aks virtual-node"
IMAGE = "mcr.microsoft.com/azuredocs/aci-helloworld"


def world_with(nodes: int = 4) -> dict[str, Any]:
    return vn2_world(nodes=nodes)


def deployment(name: str, replicas: int, cpu: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, **extra,
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": IMAGE,
                                                           "resources": {"requests": {"cpu": cpu}}}]}}}}


class Kubectl:
    def __init__(self, tools: Tools) -> None:
        self.tools = tools

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None) -> Any:
        return self.tools.kubectl(*args, check=check, stdin=stdin)

    def json(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json").stdout)

    def apply(self, obj: dict[str, Any]) -> None:
        self("apply", "-f", "-", stdin=json.dumps(obj))

    def pods(self, app: str) -> list[dict[str, Any]]:
        return [p for p in self.json("pods", "-l", f"app={app}")["items"] if not p["metadata"].get("deletionTimestamp")]

    def settled(self, app: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        def check() -> list[dict[str, Any]] | None:
            pods = self.pods(app)
            ok = len(pods) == count and all(p["status"].get("phase") == "Running" and any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
                for p in pods)
            return pods if ok else None
        return wait_for(check, timeout=timeout, interval=0.3, what=f"{count} running pods of {app}")


def regular_nodes(kubectl: "Kubectl") -> list[str]:
    return sorted(n["metadata"]["name"] for n in kubectl.json("nodes")["items"]
                  if n["metadata"]["name"].startswith("aks-"))


def nodes_of(pods: list[dict[str, Any]]) -> list[str]:
    return [p["spec"]["nodeName"] for p in pods]


class Watcher(threading.Thread):
    """Records each Deployment's fewest available pods while the migration runs: pods of its label that are
    Ready and not terminating, counted from the simulated API server's store (not from the Deployment's status,
    which the simulated controller computes)."""

    def __init__(self, sim: Any, names: list[str]) -> None:
        super().__init__(daemon=True)
        self.sim, self.names = sim, names
        self.low: dict[str, int] = {}
        self.samples = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        store = self.sim.cluster(NAME).store
        while not self.stop_event.is_set():
            with self.sim.lock:
                for name in self.names:
                    available = sum(1 for p in store.list_page("pods", "default", f"app={name}").items
                                    if not p["metadata"].get("deletionTimestamp") and any(
                                        c.get("type") == "Ready" and c.get("status") == "True"
                                        for c in (p.get("status") or {}).get("conditions") or []))
                    self.low[name] = min(self.low.get(name, available), available)
                self.samples += 1
            time.sleep(0.02)

    def stop(self) -> dict[str, int]:
        self.stop_event.set()
        self.join(5)
        return self.low


@pytest.fixture
def cluster(sim: Any, tmp_path: Path) -> Any:
    sim.sim.load(world_with())
    return sim


@pytest.fixture
def kubectl(cluster: Any, tmp_path: Path) -> Kubectl:
    return Kubectl(Tools(cluster, tmp_path))


def enable_addon(vn: Any) -> None:
    vn("aks", "virtual-node", "enable", *IDS, "--subnet-name", "virtual-node-aci", "--subnet-cidr", "10.241.0.0/16",
       "--timeout", "120")


def pinned_on_addon(vn: Any, kubectl: Kubectl, **deployments: int) -> None:
    """The add-on enabled, and each Deployment (name=replicas, 100m) placed --policy only and running on it."""
    enable_addon(vn)
    for name, replicas in deployments.items():
        kubectl.apply(deployment(name, replicas, "100m"))
        vn("aks", "virtual-node", "place", *IDS, "--workload", f"deployment/{name}", "--policy", "only")
    for name, replicas in deployments.items():
        wait_for(lambda n=name, r=replicas: set(nodes_of(kubectl.settled(n, r))) == {ADDON_NODE}, timeout=30,
                 what=f"{name} on the add-on's node")


def with_workloads(vn: Any, kubectl: Kubectl) -> None:
    """A pinned Deployment (3 replicas) on the legacy node and a burst one (12 x 1 CPU) over the regular nodes
    (3 per 4-vCPU node), the rest on the legacy node. One regular node is cordoned while they start (a node the
    autoscaler added later): it stays empty, the room the v2 infra pod needs."""
    spare = regular_nodes(kubectl)[-1]
    kubectl("cordon", spare)
    kubectl.apply(deployment("pinned", 3, "100m"))
    kubectl.apply(deployment("burst", 0, "1"))          # placed before it scales up, as the README has it
    vn("aks", "virtual-node", "place", *IDS, "--workload", "deployment/pinned", "--policy", "only")
    vn("aks", "virtual-node", "place", *IDS, "--workload", "deployment/burst", "--policy", "burst")
    kubectl("scale", "deployment/burst", "--replicas=12")
    pinned = wait_for(lambda: (p := kubectl.settled("pinned", 3)) and set(nodes_of(p)) == {ADDON_NODE} and p,
                      timeout=60, what="pinned on the legacy node")
    burst = wait_for(lambda: (p := kubectl.settled("burst", 12)) and ADDON_NODE in nodes_of(p) and all(
        "virtual-kubelet.io/provider" in json.dumps(x["spec"].get("tolerations")) for x in p) and p, timeout=60,
        what="burst over regular nodes and the legacy node")
    assert len(pinned) == 3 and nodes_of(burst).count(ADDON_NODE) == 3
    kubectl("uncordon", spare)


def ours_at(sim: Any, scope: str) -> list[dict[str, Any]]:
    return [a for a in assignments(sim) if a["scope"].lower() == scope.lower()
            and (a.get("description") or "").startswith(MARKER)]


# -- 1: from the add-on, pinned and burst, availability watched ---------------------------------------------
def test_migrate_from_addon_moves_pinned_and_burst_without_losing_availability(vn: Any, cluster: Any,
                                                                               kubectl: Kubectl) -> None:
    sim = cluster
    enable_addon(vn)
    assert ours_at(sim, SUBNET_ID), "enable granted the add-on identity its subnet role"
    with_workloads(vn, kubectl)
    watcher = Watcher(sim, ["pinned", "burst"])
    watcher.start()
    res = vn(*MIGRATE, "--yes")
    low = watcher.stop()
    out = res.json()
    assert out["mode"] == "v2" and out["healthy"] is True, out["problems"]
    m = out["migration"]
    assert m["from"] == "addon" and m["connectorRemoved"] is True and m["subnetReused"] is True
    assert {x["workload"] for x in m["moved"]} == {"deployment/pinned", "deployment/burst"}
    # never fewer available than replicas - maxUnavailable (25%: 3 -> 0, 12 -> 3)
    assert low["pinned"] >= 3 and low["burst"] >= 9, low
    assert watcher.samples > 20
    pinned = kubectl.settled("pinned", 3)
    assert all(n.startswith("virtualnode-") for n in nodes_of(pinned))
    burst = kubectl.settled("burst", 12)
    assert ADDON_NODE not in nodes_of(burst)
    spec = kubectl.json("deployment", "burst")["spec"]["template"]["spec"]
    assert "nodeSelector" not in spec
    assert spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [
        {"weight": 100, "preference": {"matchExpressions": [
            {"key": "virtualization", "operator": "NotIn", "values": ["virtualnode2"]}]}}]
    regular = regular_nodes(kubectl)
    assert any(n.startswith("virtualnode-") for n in nodes_of(burst)) and any(n in regular for n in nodes_of(burst))
    # burst stays burst: scaled from zero, its pods fill the regular nodes first and only the rest go to v2
    kubectl("scale", "deployment/burst", "--replicas=0")
    wait_for(lambda: not kubectl.pods("burst"), timeout=30, what="burst scaled to zero")
    kubectl("scale", "deployment/burst", "--replicas=12")
    burst = kubectl.settled("burst", 12)
    from aksim import controlplane
    with sim.lock:
        scheduler = controlplane.control_plane(sim.cluster(NAME)).scheduler
        free = {n: info.cpu - (scheduler.usage[n].cpu if n in scheduler.usage else 0)
                for n, info in scheduler.nodes.items() if not info.virtual}
    assert all(f < 1000 for f in free.values()), free               # no regular node has room for one more
    on_v2 = [n for n in nodes_of(burst) if n.startswith("virtualnode-")]
    assert 0 < len(on_v2) < 12 and len(on_v2) + sum(n in regular for n in nodes_of(burst)) == 12
    # the add-on is off, its node gone, the subnet kept (v2 uses it), the add-on's role assignment gone
    show = vn("aks", "show", *IDS).json()
    assert not ((show.get("addonProfiles") or {}).get("aciConnectorLinux") or {}).get("enabled")
    assert ADDON_NODE not in kubectl("get", "nodes").stdout
    kept = ours_at(sim, SUBNET_ID)
    assert [a["principalId"] for a in kept] == [show["identityProfile"]["kubeletidentity"]["objectId"]]
    assert m["roleAssignmentsRemoved"] and all("virtual-node-aci" in r for r in m["roleAssignmentsRemoved"])

    sim.reset_logs()
    again = vn(*MIGRATE, "--yes")
    assert again.json()["migration"]["nothingToDo"] is True and "nothing to do" in again.stderr
    assert sim.writes("arm") == [] and sim.writes("kube") == []
    table = vn(*MIGRATE, "--yes", "-o", "table").stdout
    assert "v2" in table and "nothing to do" in table


def bare_pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {"nodeSelector": {"type": "virtual-kubelet"},
                     "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                     "containers": [{"name": "app", "image": IMAGE}]}}


def statefulset(name: str, replicas: int) -> dict[str, Any]:
    """A hand-written StatefulSet aimed at the legacy node (no 'place' annotation)."""
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "nodeSelector": {"type": "virtual-kubelet", "kubernetes.io/os": "linux"},
                         "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"},
                                         {"key": "azure.com/aci", "effect": "NoSchedule"}],
                         "containers": [{"name": "db", "image": IMAGE}]}}}}


def pdb(name: str, min_available: int) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": name}}}}


# -- 2: dry run writes nothing; a workload that would lose availability is refused ------------------------
def test_dry_run_prints_the_plan_and_writes_nothing_and_availability_risks_are_refused(vn: Any, cluster: Any,
                                                                                       kubectl: Kubectl) -> None:
    sim = cluster
    pinned_on_addon(vn, kubectl, web=2)
    kubectl.apply(statefulset("db", 1))
    kubectl.apply(pdb("db", 1))
    kubectl.apply(bare_pod("lonely"))
    kubectl.apply(deployment("regular", 1, "100m"))
    kubectl.settled("db", 1)
    kubectl.settled("lonely", 1)
    kubectl.settled("regular", 1)

    sim.reset_logs()
    res = vn(*MIGRATE, "--dry-run")
    assert sim.writes("arm") == [] and sim.writes("kube") == []
    posts = [e["path"] for e in sim.requests("kube") if e["method"] == "POST"]
    assert all(p.endswith("selfsubjectaccessreviews") for p in posts), posts
    plan = res.json()
    assert plan["dryRun"] is True and plan["from"] == "addon" and plan["v2"]["installed"] is False
    assert [(s["name"], s["id"], s["write"]) for s in plan["v2"]["subnets"]] == [
        ("virtual-node-aci", SUBNET_ID, False)]
    assert plan["v2"]["subnetReused"] is True and plan["v2"]["replicas"] == 1
    replace = {w["workload"]: w for w in plan["workloads"]["replace"]}
    assert set(replace) == {"deployment/web", "statefulset/db"}
    assert replace["deployment/web"]["policy"] == "only" and replace["deployment/web"]["how"] == "rollout"
    assert replace["statefulset/db"]["how"] == "evict" and replace["statefulset/db"]["podsOnLegacyNode"] == 1
    assert "PodDisruptionBudget 'db'" in replace["statefulset/db"]["availabilityRisk"]
    assert [(s["workload"], s["pods"]) for s in plan["workloads"]["notMovable"]] == [("pod/lonely", ["lonely"])]
    assert plan["workloads"]["unaffected"] >= 1                # deployment/regular (and the connector's own)
    assert len(plan["roleAssignmentsToRemove"]) == 1 and "virtual-node-aci" in plan["roleAssignmentsToRemove"][0]
    assert "cannot move default/pod/lonely: a bare pod" in res.stderr and "Dry run: nothing was changed" in res.stderr
    table = vn(*MIGRATE, "--dry-run", "-o", "table").stdout
    assert "deployment/web" in table and "re-place" in table and "cannot move" in table and "pod/lonely" in table
    assert sim.writes("arm") == [] and sim.writes("kube") == []

    sim.reset_logs()
    refused = vn(*MIGRATE, "--yes", check=False)
    assert refused.returncode == 1 and "would cost them availability" in refused.stderr
    assert "default/statefulset/db" in refused.stderr and "--force" in refused.stderr
    assert sim.writes("arm") == [] and sim.writes("kube") == []


def test_refuses_without_a_legacy_connector(vn: Any, cluster: Any) -> None:
    cluster.reset_logs()
    res = vn(*MIGRATE, "--yes", check=False)
    assert res.returncode == 1 and "No legacy virtual node" in res.stderr
    assert "az aks virtual-node enable -g vn2-rg -n aks-vn2 --mode v2" in res.stderr
    assert cluster.writes("arm") == [] and cluster.writes("kube") == []


# -- 4: a bare pod stops the run before the add-on goes; --force proceeds --------------------------------
def test_bare_pod_stops_before_the_addon_is_disabled_and_force_proceeds(vn: Any, cluster: Any,
                                                                        kubectl: Kubectl) -> None:
    pinned_on_addon(vn, kubectl, web=2)
    kubectl.apply(bare_pod("lonely"))
    kubectl.settled("lonely", 1)

    res = vn(*MIGRATE, "--yes", check=False)
    assert res.returncode == 1, str(res)
    assert "1 pod(s) still run on the legacy node virtual-node-aci-linux" in res.stderr
    assert "default/lonely" in res.stderr and "--force" in res.stderr and "re-run" in res.stderr
    assert all(n.startswith("virtualnode-") for n in nodes_of(kubectl.settled("web", 2)))
    assert vn("aks", "show", *IDS).json()["addonProfiles"]["aciConnectorLinux"]["enabled"] is True
    node = kubectl.json("node", ADDON_NODE)
    assert node["spec"].get("unschedulable") is True
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert st["mode"] == "addon"
    problem = next(p for p in st["problems"] if p["code"] == "MigrationUnfinished")
    assert problem["severity"] == "warning" and "az aks virtual-node migrate -g vn2-rg -n aks-vn2 --to v2" in \
        problem["hint"]

    out = vn(*MIGRATE, "--yes", "--force").json()
    m = out["migration"]
    assert m["connectorRemoved"] is True and [s["workload"] for s in m["skipped"]] == ["pod/lonely"]
    assert not (vn("aks", "show", *IDS).json()["addonProfiles"].get("aciConnectorLinux") or {}).get("enabled")
    assert out["mode"] == "v2"


# -- 3: killed at three points, re-run each time: it completes; then nothing to do ------------------------
def _run_until(vn: Any, sim: Any, hit: Any, what: str, timeout: float = 180) -> None:
    """Start migrate, kill it (SIGKILL, with its helm children) as soon as ``hit(sim)`` holds."""
    sim.reset_logs()
    proc = subprocess.Popen(az_command() + [*MIGRATE, "--yes"], env=vn.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: hit(sim) or proc.poll() is not None, timeout=timeout, interval=0.02, what=what)
        assert proc.poll() is None, f"migrate ended before {what}: {proc.communicate()}"
    finally:
        import os
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def test_killed_at_three_points_then_rerun_completes_and_a_second_run_has_nothing_to_do(
        vn: Any, cluster: Any, kubectl: Kubectl) -> None:
    sim = cluster
    pinned_on_addon(vn, kubectl, web=3, api=2)

    def kube_write(method: str, suffix: str) -> Any:
        return lambda s: any(e["method"] == method and e["path"].endswith(suffix) for e in s.requests("kube"))
    # 1: v2 is installed and verified, the legacy node is being cordoned
    _run_until(vn, sim, kube_write("PATCH", f"/nodes/{ADDON_NODE}"), "the cordon")
    # 2: the first workload is re-placed, its rollout under way
    _run_until(vn, sim, kube_write("PATCH", "/deployments/api"), "the first workload patch")
    # 3: the legacy connector's role assignment is being removed
    _run_until(vn, sim, lambda s: any(e["method"] == "DELETE" and "roleAssignments" in e["path"]
                                      for e in s.requests("arm")), "the role assignment delete")
    out = vn(*MIGRATE, "--yes").json()
    assert out["mode"] == "v2" and out["healthy"] is True, out["problems"]
    assert all(n.startswith("virtualnode-") for n in nodes_of(kubectl.settled("web", 3)) +
               nodes_of(kubectl.settled("api", 2)))
    assert not (vn("aks", "show", *IDS).json()["addonProfiles"].get("aciConnectorLinux") or {}).get("enabled")
    assert helm_revisions(sim) == ["1"]
    sim.reset_logs()
    again = vn(*MIGRATE, "--yes")
    assert again.json()["migration"]["nothingToDo"] is True
    assert sim.writes("arm") == [] and sim.writes("kube") == []


# -- 5: from the legacy chart ---------------------------------------------------------------------------
def test_migrate_from_the_legacy_chart(vn: Any, cluster: Any, kubectl: Kubectl) -> None:
    sim = cluster
    vn("aks", "virtual-node", "enable", *IDS, "--mode", "chart", "--chart", LEGACY_CHART, "--subnet-name",
       "virtual-node-aci", "--subnet-cidr", "10.241.0.0/16", "--timeout", "120")
    kubectl.apply(deployment("web", 3, "100m"))
    kubectl.apply(statefulset("db", 2))
    vn("aks", "virtual-node", "place", *IDS, "--workload", "deployment/web", "--policy", "only")
    wait_for(lambda: set(nodes_of(kubectl.settled("web", 3)) + nodes_of(kubectl.settled("db", 2))) == {CHART_NODE},
             timeout=30)
    sim.reset_logs()
    assert vn("aks", "virtual-node", "status", *IDS).json()["mode"] == "chart"
    assert len([e for e in sim.requests("kube") if e["path"] == "/api/v1/secrets"]) == 1, "Helm's records, once"
    principal = vn("aks", "show", *IDS).json()["identityProfile"]["kubeletidentity"]["objectId"]
    before = sorted(a["scope"].lower() for a in assignments(sim) if a["principalId"] == principal)

    res = vn(*MIGRATE, "--yes")
    out = res.json()
    assert out["mode"] == "v2" and out["healthy"] is True, out["problems"]
    m = out["migration"]
    assert m["from"] == "chart" and m["connectorRemoved"] is True and m["subnetReused"] is True
    assert sorted(x["workload"] for x in m["moved"]) == ["deployment/web", "statefulset/db"]
    db = next(x for x in m["moved"] if x["workload"] == "statefulset/db")
    assert sorted(db["evicted"]) == ["db-0", "db-1"]
    assert all(n.startswith("virtualnode-") for n in nodes_of(kubectl.settled("web", 3)) +
               nodes_of(kubectl.settled("db", 2)))
    spec = kubectl.json("statefulset", "db")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux", "virtualization": "virtualnode2"}
    assert spec["tolerations"] == [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}]
    # the chart is gone with its node; the kubelet identity's roles are v2's too: kept
    assert CHART_NODE not in kubectl("get", "nodes").stdout
    assert "virtual-kubelet-azure-aci" not in Tools(sim, kubectl.tools.tmp).helm("list", "-A").stdout
    assert m["roleAssignmentsRemoved"] == []
    after = sorted(a["scope"].lower() for a in assignments(sim) if a["principalId"] == principal)
    assert set(before) <= set(after) and RG_ID.lower() not in after


def test_refuses_when_the_v2_preflight_fails_and_without_to(vn: Any, sim: Any) -> None:
    sim.sim.load(vn2_world("vn2-small-nodes"))
    enable_addon(vn)
    sim.reset_logs()
    res = vn(*MIGRATE, "--yes", check=False)
    assert res.returncode == 1 and "Not enough room on cluster 'aks-vn2'" in res.stderr, str(res)
    assert "Nothing was changed" in res.stderr and "Traceback" not in res.stderr
    assert sim.writes("arm") == [] and sim.writes("kube") == []
    usage = vn("aks", "virtual-node", "migrate", *IDS, check=False)
    assert usage.returncode == 2 and "--to" in usage.stderr
    usage = vn("aks", "virtual-node", "migrate", *IDS, "--to", "v3", check=False)
    assert usage.returncode == 2 and "v3" in usage.stderr


# -- an interruption inside helm: the release is left pending-install --------------------------------------
def test_killed_inside_helm_install_then_rerun_says_how_to_finish(vn: Any, cluster: Any, kubectl: Kubectl) -> None:
    sim = cluster
    enable_addon(vn)
    # helm's first object after its pending-install record takes 5 s: the kill lands inside the install
    sim.admin("POST", "/_admin/faults", {"endpoint": "kube", "method": "POST", "path": "/namespaces/vn2/",
                                         "status": 0, "latency": 5, "times": 1})

    def helm_record(s: Any) -> bool:
        return any(e["method"] == "POST" and e["path"] == "/api/v1/namespaces/default/secrets"
                   for e in s.requests("kube"))
    _run_until(vn, sim, helm_record, "helm's pending-install record")
    sim.reset_logs()
    res = vn(*MIGRATE, "--yes", check=False)
    assert res.returncode == 1 and "is 'pending-install'" in res.stderr, str(res)
    assert "'helm uninstall virtualnode -n default'" in res.stderr and "Nothing was changed" in res.stderr
    assert sim.writes("arm") == [] and sim.writes("kube") == []
    kubectl.tools.helm("uninstall", "virtualnode", "-n", "default")
    out = vn(*MIGRATE, "--yes").json()
    assert out["mode"] == "v2" and out["healthy"] is True and out["migration"]["connectorRemoved"] is True


def test_a_refused_workload_change_stops_with_how_to_continue_and_a_rerun_finishes(vn: Any, cluster: Any,
                                                                                   kubectl: Kubectl) -> None:
    sim = cluster
    pinned_on_addon(vn, kubectl, web=2)
    # an admission policy (say) refuses the first change of the Deployment
    sim.admin("POST", "/_admin/faults", {"endpoint": "kube", "method": "PATCH", "path": "/deployments/web$",
                                         "status": 422, "message": "denied by policy", "times": 1})
    res = vn(*MIGRATE, "--yes", check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr, str(res)
    assert "denied by policy" in res.stderr and "Nothing was changed" not in res.stderr
    assert "re-run 'az aks virtual-node migrate -g vn2-rg -n aks-vn2 --to v2' to continue" in res.stderr
    assert vn("aks", "show", *IDS).json()["addonProfiles"]["aciConnectorLinux"]["enabled"] is True
    out = vn(*MIGRATE, "--yes").json()
    assert out["migration"]["connectorRemoved"] is True
    assert all(n.startswith("virtualnode-") for n in nodes_of(kubectl.settled("web", 2)))
