"""Virtual Nodes v2 in aksim: the `virtualnode` test chart installed with the REAL helm, inspected with the REAL
kubectl, roles granted and subnets made with the REAL az (tests/fixtures/charts/virtualnode)."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from aksim.controlplane import backoff
from aksim.scenario import read_raw
from conftest import TOOLS_BIN
from waiting import wait_for

CHART = str(Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "virtualnode")
SUB = "00000000-0000-0000-0000-000000000001"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/vn2-rg"
NODE_RG = "MC_vn2-rg_aks-vn2_westeurope"
NODE_RG_ID = f"/subscriptions/{SUB}/resourceGroups/{NODE_RG}"
VNET_ID = f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/vn2-vnet"
CG = {"name": "cg", "prefix": "10.2.0.0/16", "delegation": "Microsoft.ContainerInstance/containerGroups"}
TIMINGS = {"lro": 0.05, "poll": 0.05, "pod_start": 0.03, "controller": 0.01, "vn2_register": 0.2, "lease_renew": 0.1,
           "lease_duration": 0.5, "aci_create": 0.05, "backoff_scale": 0.02, "node_register": 0.05}
KUBELET_ROLES = [{"principal": "kubelet", "role": "Contributor", "scope": NODE_RG_ID},
                 {"principal": "kubelet", "role": "Contributor", "scope": RG_ID}]
INFRA = "app.kubernetes.io/name=virtualnode,statefulset.kubernetes.io/pod-name"


@pytest.fixture(autouse=True)
def real_tools() -> None:
    for tool in ("helm", "kubectl"):
        if not (TOOLS_BIN / tool).exists():
            pytest.fail(f"real {tool} missing: run tools/fetch-kube-binaries.sh (make test does)")


class Vn2:
    """The session simulator loaded with a VN2 scenario, plus real helm/kubectl against its cluster."""

    def __init__(self, sim: Any, tmp: Path, scenario: str = "vn2", cg: bool = True,
                 roles: list[dict[str, Any]] | None = None, **timings: float) -> None:
        raw = read_raw(scenario)
        if cg:
            raw["resource_groups"][0]["vnets"][0]["subnets"].append(dict(CG))
        raw["clusters"][0]["role_assignments"] = KUBELET_ROLES if roles is None else roles
        raw["timings"] = {**TIMINGS, **timings}
        sim.sim.load(raw)
        self.sim = sim
        self.store = sim.cluster("aks-vn2").store
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(sim.kubeconfig("aks-vn2", admin=True)))
        kubeconfig.chmod(0o600)
        (tmp / "home").mkdir(exist_ok=True)
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp / "home"), "KUBECONFIG": str(kubeconfig)}

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(TOOLS_BIN / tool), *args], env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, check=check)

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, check=check)

    def install(self, release: str = "virtualnode", *args: str) -> None:
        self.helm("upgrade", "--install", release, CHART, *args)

    def locked(self, fn: Callable[[], Any]) -> Any:
        with self.sim.lock:
            return fn()

    def until(self, fn: Callable[[], Any], timeout: float = 15, what: str = "") -> Any:
        return wait_for(lambda: self.locked(fn), timeout, 0.02, what)

    def get(self, resource: str, namespace: str | None, name: str) -> Any:
        return self.locked(lambda: self.store.get(resource, namespace, name))

    def pods(self, namespace: str = "vn2", labels: str = INFRA) -> list[dict[str, Any]]:
        return self.locked(lambda: self.store.list("pods", namespace, labels))

    def events(self, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.locked(lambda: self.store.list("events", namespace))
                if e["involvedObject"]["name"] == name and e["reason"] == reason]

    def ready_node(self, name: str) -> dict[str, Any]:
        def check() -> Any:
            node = self.store.get("nodes", None, name)
            ready = next((c for c in (node or {}).get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})
            return node if ready.get("status") == "True" else None
        return self.until(check, what=f"node {name} Ready")

    def kubelet_identity(self) -> dict[str, Any]:
        return self.locked(lambda: self.sim.world.arm.get(self.sim.cluster("aks-vn2").resource_id))[
            "properties"]["identityProfile"]["kubeletidentity"]


def ready(node: dict[str, Any]) -> str:
    return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")


def all_ready(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return len(statuses) == 6 and all(s["ready"] for s in statuses)


# -- 1 ------------------------------------------------------------------------------------------------
def test_chart_installs_two_nodes_and_uninstall_leaves_ready_ghosts(sim: Any, tmp_path: Path) -> None:
    vn = Vn2(sim, tmp_path)
    vn.install("virtualnode", "--set", "replicaCount=2", "--set", "podDisruptionBudget.minAvailable=1", "--wait",
               "--timeout", "60s")
    nodes = [vn.ready_node(f"virtualnode-{i}") for i in range(2)]
    for node in nodes:
        labels = node["metadata"]["labels"]
        assert labels["virtualization"] == "virtualnode2" and labels["type"] == "virtual-kubelet"
        assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/hostname"] == node["metadata"]["name"]
        assert {"key": "virtual-kubelet.io/provider", "effect": "NoSchedule"} in node["spec"]["taints"]
        assert node["status"]["capacity"]["pods"] == "200"
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.9"
    listed = vn.kubectl("get", "nodes", "-l", "virtualization=virtualnode2", "-o", "name").stdout.split()
    assert listed == ["node/virtualnode-0", "node/virtualnode-1"]
    pods = vn.until(lambda: (p := vn.store.list("pods", "vn2", INFRA)) and len(p) == 2 and all(map(all_ready, p))
                    and p, what="2 infra pods 6/6")
    assert all(p["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed" for p in pods)
    # infra pods run on regular nodes (the chart's forced affinity), in the Namespace the default->vn2 rule made
    assert {p["spec"]["nodeName"] for p in pods}.isdisjoint({"virtualnode-0", "virtualnode-1"})
    assert vn.get("namespaces", None, "vn2") is not None
    sts = vn.until(lambda: (s := vn.store.get("statefulsets.apps", "vn2", "virtualnode"))
                   and s["status"].get("readyReplicas") == 2 and s)
    assert {k: sts["status"][k] for k in ("replicas", "readyReplicas", "currentReplicas", "availableReplicas")} == {
        "replicas": 2, "readyReplicas": 2, "currentReplicas": 2, "availableReplicas": 2}
    assert sts["status"]["observedGeneration"] == sts["metadata"]["generation"]
    table = vn.kubectl("get", "statefulset,pdb,mutatingwebhookconfiguration,priorityclass", "-A").stdout
    for text in ("statefulset.apps/virtualnode", "2/2", "poddisruptionbudget.policy/virtual-node-pdb",
                 "mutatingwebhookconfiguration.admissionregistration.k8s.io/virtual-node-admission-controller",
                 "priorityclass.scheduling.k8s.io/system-node-critical",
                 "priorityclass.scheduling.k8s.io/system-cluster-critical"):
        assert text in table, table

    vn.helm("uninstall", "virtualnode")
    vn.until(lambda: not vn.store.list("pods", "vn2"), what="pods gone")
    time.sleep(3 * TIMINGS["lease_duration"])
    for name in ("virtualnode-0", "virtualnode-1"):
        ghost = vn.get("nodes", None, name)
        assert ghost is not None and ready(ghost) == "True"
        assert not any(t["key"] == "node.kubernetes.io/unreachable" for t in ghost["spec"]["taints"])
    assert "virtualnode-0" in vn.kubectl("get", "nodes", "-l", "virtualization=virtualnode2").stdout


# -- 2 ------------------------------------------------------------------------------------------------
def test_missing_role_crash_loops_with_growing_backoff_and_heals_after_grant(
        sim: Any, az: Any, tmp_path: Path) -> None:
    vn = Vn2(sim, tmp_path, roles=[KUBELET_ROLES[1]], backoff_scale=0.04)
    vn.install("virtualnode")
    seen: dict[int, float] = {}

    def restarts() -> int:
        pods = vn.store.list("pods", "vn2", INFRA)
        status = next((s for s in (pods[0]["status"].get("containerStatuses") or []) if s["name"] == "proxycri"),
                      None) if pods else None
        return status["restartCount"] if status else 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(seen) < 4:
        count = vn.locked(restarts)
        if count and count not in seen:
            seen[count] = time.monotonic()
        time.sleep(0.01)
    assert sorted(seen) == [1, 2, 3, 4], seen
    gaps = [seen[i + 1] - seen[i] for i in (1, 2, 3)]                   # 0.4, 0.8, 1.6 s (10, 20, 40 s scaled)
    assert 0.3 < gaps[0] < 0.7 and 1.5 < gaps[1] / gaps[0] < 2.6 and 1.5 < gaps[2] / gaps[1] < 2.6, gaps

    pod = vn.pods()[0]
    name = pod["metadata"]["name"]
    status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "proxycri")
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 1 and status["lastState"]["terminated"]["reason"] == "Error"
    kubelet = vn.kubelet_identity()
    azure_error = (f"The client '{kubelet['clientId']}' with object id '{kubelet['objectId']}' does not have "
                   f"authorization to perform action 'Microsoft.ContainerInstance/containerGroups/write' over scope "
                   f"'{NODE_RG_ID}' or the scope is invalid.")
    log = vn.kubectl("logs", name, "-n", "vn2", "-c", "proxycri").stdout
    assert "AuthorizationFailed" in log and azure_error in log
    failed = vn.events("vn2", name, "ProviderInitFailed")
    assert failed and failed[0]["type"] == "Warning" and azure_error in failed[0]["message"]
    assert vn.events("vn2", name, "BackOff")
    assert vn.get("nodes", None, "virtualnode-0") is None
    assert "CrashLoopBackOff" in vn.kubectl("get", "pods", "-n", "vn2").stdout

    before = vn.locked(restarts)
    az("role", "assignment", "create", "--assignee-object-id", kubelet["objectId"], "--assignee-principal-type",
       "ServicePrincipal", "--role", "Contributor", "--scope", NODE_RG_ID)
    vn.ready_node("virtualnode-0")
    healed = vn.until(lambda: (p := vn.store.list("pods", "vn2", INFRA)) and all_ready(p[0]) and p[0])
    assert healed["metadata"]["uid"] == pod["metadata"]["uid"]
    proxycri = next(s for s in healed["status"]["containerStatuses"] if s["name"] == "proxycri")
    assert before <= proxycri["restartCount"] <= before + 1


def test_backoff_doubles_caps_and_resets() -> None:
    b = backoff.Backoff()
    delays = [b.next_delay(1.0, now=float(t)) for t in range(10)]
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300, 300, 300] and b.restarts == 10
    assert b.next_delay(1.0, now=9 + 601) == 10                        # ran 10 min: starts over
    assert backoff.go_duration(160) == "2m40s" and backoff.go_duration(20) == "20s"


# -- 3 ------------------------------------------------------------------------------------------------
def test_small_nodes_leave_infra_pods_pending_with_the_real_failed_scheduling_text(sim: Any, tmp_path: Path) -> None:
    vn = Vn2(sim, tmp_path, scenario="vn2-small-nodes")
    vn.install("virtualnode", "--set", "replicaCount=2")
    message = ("0/3 nodes are available: 3 Insufficient cpu, 3 Insufficient memory. preemption: 0/3 nodes are "
               "available: 3 No preemption victims found for incoming pod.")
    for ordinal in range(2):
        name = f"virtualnode-{ordinal}"
        vn.until(lambda n=name: vn.events("vn2", n, "FailedScheduling"), what=f"{name} FailedScheduling")
        event = vn.events("vn2", name, "FailedScheduling")[0]
        assert event["type"] == "Warning" and event["message"] == message
        pod = vn.get("pods", "vn2", name)
        assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
        cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", message)
    assert vn.locked(lambda: vn.store.list("nodes", None, "virtualization=virtualnode2")) == []


# -- 4 ------------------------------------------------------------------------------------------------
def test_scale_down_removes_the_highest_ordinal_and_leaves_its_node(sim: Any, tmp_path: Path) -> None:
    vn = Vn2(sim, tmp_path)
    vn.kubectl("create", "namespace", "vn2")
    vn.install("vn2", "-n", "vn2", "--set", "replicaCount=2")
    for name in ("vn2-virtualnode-0", "vn2-virtualnode-1"):
        vn.ready_node(name)
    assert vn.get("namespaces", None, "vn2")["metadata"]["labels"].get("app.kubernetes.io/managed-by") is None
    rollout = vn.kubectl("rollout", "status", "statefulset/vn2-virtualnode", "-n", "vn2", "--timeout=20s").stdout
    assert "partitioned roll out complete: 2 new pods have been updated" in rollout
    described = vn.kubectl("describe", "statefulset", "vn2-virtualnode", "-n", "vn2").stdout
    assert "Pods Status:        2 Running / 0 Waiting / 0 Succeeded / 0 Failed" in described
    vn.kubectl("scale", "statefulset", "vn2-virtualnode", "-n", "vn2", "--replicas=1")
    vn.until(lambda: vn.store.get("pods", "vn2", "vn2-virtualnode-1") is None, what="-1 pod gone")
    assert vn.get("pods", "vn2", "vn2-virtualnode-0") is not None
    assert vn.events("vn2", "vn2-virtualnode", "SuccessfulDelete")[0]["message"] == \
        "delete Pod vn2-virtualnode-1 in StatefulSet vn2-virtualnode successful"
    time.sleep(3 * TIMINGS["lease_duration"])
    ghost = vn.get("nodes", None, "vn2-virtualnode-1")
    assert ghost is not None and ready(ghost) == "True"
    sts = vn.until(lambda: (s := vn.store.get("statefulsets.apps", "vn2", "vn2-virtualnode"))
                   and s["status"]["replicas"] == 1 and s)
    assert sts["spec"]["replicas"] == 1

    # a deleted pod comes back under the same name
    uid = vn.get("pods", "vn2", "vn2-virtualnode-0")["metadata"]["uid"]
    vn.kubectl("delete", "pod", "vn2-virtualnode-0", "-n", "vn2", "--wait=false")
    again = vn.until(lambda: (p := vn.store.get("pods", "vn2", "vn2-virtualnode-0")) and p["metadata"]["uid"] != uid
                     and all_ready(p) and p, what="vn2-virtualnode-0 recreated")
    assert again["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "vn2-virtualnode-0"


# -- 5 ------------------------------------------------------------------------------------------------
FAILING_WEBHOOK = """
apiVersion: v1
kind: Service
metadata: {name: nosvc, namespace: default}
spec:
  selector: {app: nothing-here}
  ports: [{port: 443, targetPort: 8443}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: strict}
webhooks:
  - name: strict.example.com
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: Fail
    timeoutSeconds: 5
    clientConfig: {service: {name: nosvc, namespace: default, path: /mutate}}
    rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
"""


def test_admission_webhooks_and_missing_priority_class(sim: Any, tmp_path: Path) -> None:
    vn = Vn2(sim, tmp_path)
    vn.run("kubectl", "apply", "-f", str(_write(tmp_path / "strict.yaml", FAILING_WEBHOOK)))
    refused = vn.kubectl("run", "probe", "--image=nginx", "--restart=Never", check=False)
    assert refused.returncode == 1
    assert ('Internal error occurred: failed calling webhook "strict.example.com": failed to call webhook: Post '
            '"https://nosvc.default.svc:443/mutate?timeout=5s": no endpoints available for service "nosvc"'
            ) in refused.stderr
    assert vn.get("pods", "default", "probe") is None
    vn.kubectl("delete", "mutatingwebhookconfiguration", "strict")

    # VN2's own webhook (Ignore) with its admission controller scaled to 0: pods are still created, unmutated
    vn.install("virtualnode")
    vn.until(lambda: vn.store.list("pods", "vn2", "app.kubernetes.io/name=admissioncontroller"), what="admission pod")
    vn.kubectl("scale", "deployment", "virtual-node-admission-controller", "-n", "vn2", "--replicas=0")
    vn.until(lambda: not vn.store.list("pods", "vn2", "app.kubernetes.io/name=admissioncontroller"),
             what="admission pod gone")
    assert vn.get("mutatingwebhookconfigurations.admissionregistration.k8s.io", None,
                  "virtual-node-admission-controller")["webhooks"][1]["failurePolicy"] == "Ignore"
    vn.kubectl("run", "probe", "--image=nginx", "--restart=Never")
    assert vn.get("pods", "default", "probe") is not None
    vn.helm("uninstall", "virtualnode")
    vn.until(lambda: vn.store.get("namespaces", None, "vn2") is None, what="vn2 namespace gone")

    # a PriorityClass named in the values that does not exist: FailedCreate on the StatefulSet, no pod
    vn.install("virtualnode", "--set", "priorityClassName=high-priority-virtnode")
    vn.until(lambda: vn.events("vn2", "virtualnode", "FailedCreate"), what="FailedCreate")
    event = vn.events("vn2", "virtualnode", "FailedCreate")[0]
    assert event["type"] == "Warning" and event["message"] == (
        'create Pod virtualnode-0 in StatefulSet virtualnode failed error: pods "virtualnode-0" is forbidden: no '
        "PriorityClass with name high-priority-virtnode was found")
    assert vn.pods() == []
    direct = vn.kubectl("run", "prio", "--image=nginx", "--restart=Never",
                        "--overrides", json.dumps({"spec": {"priorityClassName": "high-priority-virtnode"}}),
                        check=False)
    assert 'pods "prio" is forbidden: no PriorityClass with name high-priority-virtnode was found' in direct.stderr
    vn.kubectl("create", "priorityclass", "high-priority-virtnode", "--value=1000000")
    pod = vn.until(lambda: vn.store.get("pods", "vn2", "virtualnode-0"), what="pod after the class exists")
    assert pod["spec"]["priority"] == 1000000


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- 6 ------------------------------------------------------------------------------------------------
SAMPLE_POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "demo-pod", "namespace": "default"},
              "spec": {"containers": [{"name": "demo", "image": "mcr.microsoft.com/azuredocs/aci-helloworld",
                                       "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
                       "nodeSelector": {"virtualization": "virtualnode2", "kubernetes.io/os": "linux"},
                       "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}]}}


def test_readme_sample_pod_runs_as_a_container_group_in_cg(sim: Any, az: Any, tmp_path: Path) -> None:
    vn = Vn2(sim, tmp_path, cg=False)
    az("network", "vnet", "subnet", "create", "-g", "vn2-rg", "--vnet-name", "vn2-vnet", "-n", "cg",
       "--address-prefixes", "10.2.0.0/16", "--delegations", "Microsoft.ContainerInstance/containerGroups")
    vn.install("virtualnode")
    vn.ready_node("virtualnode-0")
    vn.run("kubectl", "apply", "-f", str(_write(tmp_path / "pod.json", json.dumps(SAMPLE_POD))))
    pod = vn.until(lambda: (p := vn.store.get("pods", "default", "demo-pod")) and p["status"].get("phase") == "Running"
                   and p, what="sample pod running")
    assert pod["spec"]["nodeName"] == "virtualnode-0" and pod["status"]["podIP"].startswith("10.2.")
    groups = vn.locked(lambda: list(sim.world.arm.of_type("Microsoft.ContainerInstance/containerGroups")))
    assert [g["id"] for g in groups] == [f"{NODE_RG_ID}/providers/Microsoft.ContainerInstance/containerGroups/"
                                         "default-demo-pod"]
    assert groups[0]["properties"]["subnetIds"][0]["id"] == f"{VNET_ID}/subnets/cg"
    listed = az("container", "list", "-g", NODE_RG).json()
    assert [g["name"] for g in listed] == ["default-demo-pod"]

    # DaemonSet pods never land on a VN2 node, even when they tolerate everything and select it
    ds = {**SAMPLE_POD, "metadata": {"name": "ds-pod", "namespace": "default", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "0000", "controller": True}]},
        "spec": {**SAMPLE_POD["spec"], "tolerations": [{"operator": "Exists"}]}}
    vn.run("kubectl", "apply", "-f", str(_write(tmp_path / "ds.json", json.dumps(ds))))
    vn.until(lambda: vn.events("default", "ds-pod", "FailedScheduling"), what="ds pod unschedulable")
    assert not vn.get("pods", "default", "ds-pod")["spec"].get("nodeName")


def test_missing_cg_subnet_is_the_azure_not_found_error_in_proxycri(sim: Any, tmp_path: Path) -> None:
    vn = Vn2(sim, tmp_path, cg=False)
    vn.install("virtualnode")
    crashed = vn.until(lambda: (p := vn.store.list("pods", "vn2", INFRA)) and any(
        s["name"] == "proxycri" and s["restartCount"] >= 1 for s in p[0]["status"].get("containerStatuses") or [])
        and p[0], what="proxycri crash-looping")
    log = vn.kubectl("logs", crashed["metadata"]["name"], "-n", "vn2", "-c", "proxycri").stdout
    assert f'Code="NotFound" Message="Resource {VNET_ID}/subnets/cg not found."' in log
    assert vn.get("nodes", None, "virtualnode-0") is None


def test_node_lifecycle_marks_a_node_unknown_when_its_lease_expires(sim: Any, tmp_path: Path) -> None:
    vn = Vn2(sim, tmp_path)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "edge-1", "labels": {"kubernetes.io/os": "linux"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status"}]}}
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "edge-1", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "edge-1", "leaseDurationSeconds": 40}}
    vn.run("kubectl", "apply", "-f", str(_write(tmp_path / "node.json", json.dumps(node))))
    vn.run("kubectl", "apply", "-f", str(_write(tmp_path / "lease.json", json.dumps(lease))))
    unknown = vn.until(lambda: (n := vn.store.get("nodes", None, "edge-1")) and ready(n) == "Unknown" and n,
                       what="edge-1 Unknown")
    assert {(t["key"], t["effect"]) for t in unknown["spec"]["taints"]} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    assert vn.events("default", "edge-1", "NodeNotReady")
    # the seeded VM nodes' kubelets are alive: they stay Ready
    assert all(ready(n) == "True" for n in vn.locked(lambda: vn.store.list("nodes", None, "agentpool=nodepool1")))


def test_virtualdaemonset_crd_is_established_and_served(sim: Any, tmp_path: Path) -> None:
    vn = Vn2(sim, tmp_path)
    vn.install("virtualnode", "--set", "virtualdaemonsets.crd.enable=true", "--set",
               "admissionControllerReplicaCount=0")
    crd = "virtualdaemonsets.virtualdaemonsets.aci.azure.microsoft.com"
    vn.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=20s")
    assert vn.get("mutatingwebhookconfigurations.admissionregistration.k8s.io", None,
                  "virtual-node-admission-controller") is None          # no webhook at 0 admission replicas
    vds = {"apiVersion": "virtualdaemonsets.aci.azure.microsoft.com/v1alpha1", "kind": "VirtualDaemonSet",
           "metadata": {"name": "agents", "namespace": "vn2"}, "spec": {}}
    vn.run("kubectl", "apply", "-f", str(_write(tmp_path / "vds.json", json.dumps(vds))))
    assert "agents" in vn.kubectl("get", "vds", "-n", "vn2").stdout
