"""Reliability, end to end against aksim with the real az: transient faults on every call enable makes, an API
server outage during the node wait, concurrent and killed runs, the one deadline, crash-loop healing, the
three cluster-read error codes, and the progress indicator on a terminal."""
from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from aksim.azconfig import az_command
from aksim.scenario import read_raw
from conftest import TOOLS_BIN
from waiting import wait_for

RG, NAME = "demo-rg", "aks-demo"
IDS = ["-g", RG, "-n", NAME]
ENABLE = ["aks", "virtual-node", "enable", *IDS, "--timeout", "90"]
NC = "4d97b98b-1d4f-4787-a291-c67834d212e7"
MARKER = "Created by az aks virtual-node"
NODE = "virtual-node-aci-linux"

# The calls one healthy add-on enable makes (from its request log), each failed a few times in turn.
ARM_WRITES = {
    "subnet-put": ("PUT", r"/subnets/virtual-node-aci$"),
    "cluster-put": ("PUT", r"/managedClusters/aks-demo$"),
    "role-put": ("PUT", r"/roleAssignments/[^/]+$"),
    "credentials-post": ("POST", r"/listClusterUserCredential$"),
}
KUBE_CALLS = {
    "helm-secrets-list": r"^/api/v1/secrets$",
    "connector-pods-list": r"^/api/v1/namespaces/kube-system/pods$",
    "node-get": rf"^/api/v1/nodes/{NODE}$",
    "node-watch": r"^/api/v1/nodes$",
    "lease-get": rf"/leases/{NODE}$",
}
STATUSES = [(429, "TooManyRequests"), (500, "InternalServerError"), (503, "ServiceUnavailable")]


def our_role_assignments(sim) -> list[dict]:
    with sim.lock:
        return [r for r in sim.world.arm.of_type("Microsoft.Authorization/roleAssignments")
                if (r["properties"].get("description") or "").startswith(MARKER)
                and r["properties"]["roleDefinitionId"].endswith(NC)]


def assert_healthy_once(vn, sim) -> None:
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert st["healthy"] is True, st["problems"]
    assert len(our_role_assignments(sim)) == 1


def fault(sim, endpoint: str, method: str, path: str, status: int, code: str, times: int = 2) -> None:
    rule = {"endpoint": endpoint, "method": method, "path": path, "status": status, "code": code, "times": times,
            "retry_after": 1 if status == 429 else None}
    sim.admin("POST", "/_admin/faults", rule)


def hits(sim) -> int:
    return sum(rule["hits"] for rule in sim.admin("GET", "/_admin/faults")["value"])


# -- 1. fault matrix ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("status,code", STATUSES, ids=[str(s) for s, _ in STATUSES])
@pytest.mark.parametrize("call", list(ARM_WRITES), ids=list(ARM_WRITES))
def test_transient_arm_errors_on_each_write(vn, sim, call, status, code):
    method, path = ARM_WRITES[call]
    fault(sim, "arm", method, path, status, code)
    res = vn(*ENABLE)
    assert res.json()["healthy"] is True
    assert "Traceback" not in res.stderr
    assert hits(sim) >= 1, "the fault never fired: the matrix no longer matches enable's calls"
    assert_healthy_once(vn, sim)


@pytest.mark.parametrize("status,code", STATUSES, ids=[str(s) for s, _ in STATUSES])
@pytest.mark.parametrize("call", list(KUBE_CALLS), ids=list(KUBE_CALLS))
def test_transient_kubernetes_errors_on_each_call(vn, sim, call, status, code):
    fault(sim, "kube", "GET", KUBE_CALLS[call], status, code)
    res = vn(*ENABLE)
    assert res.json()["healthy"] is True
    assert "Traceback" not in res.stderr
    assert hits(sim) >= 1, "the fault never fired: the matrix no longer matches enable's calls"
    assert_healthy_once(vn, sim)


def test_api_server_outage_during_the_node_wait(vn, sim):
    sim.admin("POST", "/_admin/timings", {"connector_start": 4})      # the node wait lasts a few seconds

    def outage() -> None:
        wait_for(lambda: any(e["query"] and "watch" in e["query"] for e in sim.requests("kube")), timeout=60,
                 interval=0.05)
        sim.admin("POST", f"/_admin/clusters/{RG}/{NAME}/apiserver", {"up": False})
        time.sleep(3)
        sim.admin("POST", f"/_admin/clusters/{RG}/{NAME}/apiserver", {"up": True})
    timer = threading.Thread(target=outage, daemon=True)
    timer.start()
    res = vn(*ENABLE)
    timer.join(30)
    assert res.json()["healthy"] is True and "Traceback" not in res.stderr
    assert_healthy_once(vn, sim)


def test_two_enable_runs_at_once(vn, sim):
    procs = [subprocess.Popen(az_command() + ENABLE, env=vn.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    codes = [p.returncode for p in procs]
    for code, (_, err) in zip(codes, outs):
        assert "Traceback" not in err
        assert code == 0 or (code == 1 and "ERROR" in err), err
    assert 0 in codes, outs
    assert_healthy_once(vn, sim)


STEPS = {
    "subnet-put": ("arm", "PUT", "/subnets/"),
    "cluster-put": ("arm", "PUT", "/managedClusters/"),
    "role-put": ("arm", "PUT", "/roleAssignments/"),
    "node-wait": ("kube", "GET", "/api/v1/nodes"),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_enable_killed_at_each_step_then_rerun(vn, sim, step):
    sim.admin("POST", "/_admin/timings", {"connector_start": 2})
    endpoint, method, fragment = STEPS[step]
    sim.reset_logs()
    proc = subprocess.Popen(az_command() + ENABLE, env=vn.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(e["method"] == method and fragment in e["path"] for e in sim.requests(endpoint)),
                 timeout=90, interval=0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    res = vn(*ENABLE)
    assert res.json()["healthy"] is True and "Traceback" not in res.stderr
    assert_healthy_once(vn, sim)


# -- 2. one deadline ------------------------------------------------------------------------------------------
def test_timeout_bounds_the_addon_operation(vn, sim):
    raw = read_raw("demo")
    subnets = raw["resource_groups"][0]["vnets"][0]["subnets"]
    subnets.append({"name": "virtual-node-aci", "prefix": "10.241.0.0/16",
                    "delegation": "Microsoft.ContainerInstance/containerGroups"})
    sim.load(raw)
    sim.admin("POST", "/_admin/timings", {"lro": 60})
    start = time.monotonic()
    res = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "5", check=False)
    elapsed = time.monotonic() - start
    assert res.returncode == 1, res
    assert elapsed < 15, elapsed
    assert "Traceback" not in res.stderr
    assert "Still running in Azure: turning on the ACI connector add-on" in res.stderr
    assert f"az aks virtual-node enable -g {RG} -n {NAME}" in res.stderr


# -- 5. heal at once ------------------------------------------------------------------------------------------
def connector_pods(sim) -> list[dict]:
    return sim.cluster().store.list("pods", "kube-system", "app=aci-connector-linux")


def test_rerun_that_grants_the_role_restarts_the_crash_looping_connector(vn, sim):
    sim.admin("POST", "/_admin/timings", {"connector_restart": 120})   # the back-off outlasts the test
    vn("aks", "virtual-node", "enable", *IDS, "--skip-role-assignment", "--no-wait")

    def crash_looping():
        pods = connector_pods(sim)
        return pods and any(((s.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
                            for s in pods[0]["status"].get("containerStatuses") or [])
    wait_for(crash_looping, timeout=30)
    sick = connector_pods(sim)[0]["metadata"]["name"]
    sim.reset_logs()
    res = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "30")
    assert res.json()["healthy"] is True, res.stderr
    assert f"Restarting connector pod {sick}" in res.stderr
    deletes = [e["path"] for e in sim.requests("kube") if e["method"] == "DELETE"]
    assert deletes == [f"/api/v1/namespaces/kube-system/pods/{sick}"], deletes


def test_no_restart_when_nothing_was_fixed_on_a_fresh_install(vn, sim):
    sim.reset_logs()
    vn(*ENABLE)
    assert not [e for e in sim.requests("kube") if e["method"] == "DELETE"]


# -- 5 (status codes). ClusterUnreachable / ApiServerError / ClusterAccessDenied ----------------------------
def problem(vn, code: str) -> dict:
    res = vn("aks", "virtual-node", "status", *IDS)
    assert "Traceback" not in res.stderr
    st = res.json()
    assert [p["code"] for p in st["problems"]] == [code], st["problems"]
    assert st["roleAssignment"]["present"] is True       # the Azure part is still read
    return st["problems"][0]


def test_status_tells_the_three_cluster_read_errors_apart(vn, sim):
    vn(*ENABLE)
    fault(sim, "kube", "*", ".*", 500, "InternalError", times=-1)
    server = problem(vn, "ApiServerError")
    assert "500" in server["message"] and "retry in a few minutes" in server["hint"]
    sim.admin("DELETE", "/_admin/faults")

    fault(sim, "kube", "*", ".*", 403, "Forbidden", times=-1)
    denied = problem(vn, "ClusterAccessDenied")
    assert "403" in denied["message"] and "Cluster User Role" in denied["hint"]
    sim.admin("DELETE", "/_admin/faults")

    sim.admin("POST", f"/_admin/clusters/{RG}/{NAME}/apiserver", {"up": False})
    unreachable = problem(vn, "ClusterUnreachable")
    assert "private cluster" in unreachable["hint"]
    assert len({server["hint"], denied["hint"], unreachable["hint"]}) == 3


def test_transient_errors_do_not_surface_in_status(vn, sim):
    vn(*ENABLE)
    fault(sim, "kube", "GET", rf"^/api/v1/nodes/{NODE}$", 503, "ServiceUnavailable", times=2)
    st = vn("aks", "virtual-node", "status", *IDS).json()
    assert st["healthy"] is True and st["problems"] == []
    assert hits(sim) == 2


# -- 7. progress on a terminal --------------------------------------------------------------------------------
def test_progress_indicator_on_a_terminal(vn, sim):
    sim.admin("POST", "/_admin/timings", {"connector_start": 4})
    master, slave = pty.openpty()
    proc = subprocess.Popen(az_command() + ENABLE + ["-o", "none"], env=vn.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif proc.poll() is not None:
            break
    proc.wait(30)
    os.close(master)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "waiting for node" in text or "connector" in text, text
    assert " · " in text and " s" in text, text


# -- 1. chart mode: a smaller matrix (real helm) ------------------------------------------------------------
CHART = str(Path(__file__).resolve().parents[1] / "fixtures" / "charts" / "virtual-kubelet-azure-aci")
CHART_NODE = "virtual-node-aci-linux-helm"
CHART_ENABLE = ["aks", "virtual-node", "enable", *IDS, "--mode", "chart", "--chart", CHART, "--timeout", "120"]
CHART_FAULTS = {
    "subnet-put-503": ("arm", "PUT", r"/subnets/virtual-node-aci$", 503, "ServiceUnavailable"),
    "role-put-429": ("arm", "PUT", r"/roleAssignments/[^/]+$", 429, "TooManyRequests"),
    "helm-secrets-list-500": ("kube", "GET", r"^/api/v1/secrets$", 500, "InternalError"),
    "node-watch-503": ("kube", "GET", r"^/api/v1/nodes$", 503, "ServiceUnavailable"),
    "lease-get-429": ("kube", "GET", rf"/leases/{CHART_NODE}$", 429, "TooManyRequests"),
}


@pytest.mark.parametrize("case", list(CHART_FAULTS))
def test_chart_mode_transient_errors(vn, sim, case):
    if not (TOOLS_BIN / "helm").exists():
        pytest.fail("real helm missing: run tools/fetch-kube-binaries.sh (make test does)")
    endpoint, method, path, status, code = CHART_FAULTS[case]
    fault(sim, endpoint, method, path, status, code)
    res = vn(*CHART_ENABLE)
    st = res.json()
    assert st["healthy"] is True and st["mode"] == "chart", st["problems"]
    assert "Traceback" not in res.stderr
    assert hits(sim) >= 1, "the fault never fired: the matrix no longer matches enable's calls"
    with sim.lock:
        ours = [r for r in sim.world.arm.of_type("Microsoft.Authorization/roleAssignments")
                if (r["properties"].get("description") or "").startswith(MARKER)]
    assert len(ours) == 2, ours             # Network Contributor on the subnet, ACI Contributor on the node RG
