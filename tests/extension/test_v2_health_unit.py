"""Virtual Nodes v2 status rules (connectors/v2_health.py): facts in, problems out; plus the small pure helpers of
v2_kube (quantities, pod requests) and the --replicas type."""
from __future__ import annotations

import argparse
import ipaddress
from types import SimpleNamespace
from typing import Any

import pytest

from azext_virtualnode._validators import replicas_type
from azext_virtualnode.chart import Release
from azext_virtualnode.connectors import v2_kube
from azext_virtualnode.connectors.v2_health import InfraPod, V2Facts, V2Node, V2Subnet, build_status, evaluate
from azext_virtualnode.connectors.v2_mode import V2Release, azure_error
from azext_virtualnode.kube_rest import view
from azext_virtualnode.network import SubnetFacts

CLUSTER = SimpleNamespace(id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/"
                          "managedClusters/c",
                          name="c", resource_group="rg", location="westeurope", provisioning_state="Succeeded",
                          busy=False, network_plugin="azure", network_plugin_mode=None)
SUBNET = SubnetFacts("/x/subnets/cg", "cg", [ipaddress.ip_network("10.2.0.0/16")],
                     ["Microsoft.ContainerInstance/containerGroups"], None, 0, 0)


def release(version: str = "1.3409.26080501", **values: Any) -> V2Release:
    vals = {"replicaCount": 2, "namespace": "vn2", "aciSubnetName": "cg", "admissionControllerReplicaCount": 1,
            **values}
    return V2Release(Release("virtualnode", "default", 1, "deployed", "virtualnode", version, vals, vals))


def healthy(**changes: Any) -> V2Facts:
    f = V2Facts(CLUSTER, release(), k8s_minor=34, subnets=[V2Subnet("cg", SUBNET.id, SUBNET, "/nat/id")],
                provider_state="Registered", identity={"objectId": "oid"},
                roles=[{"present": True, "role": "Azure Container Instances Contributor Role", "scope": "/rg"}],
                pods=[InfraPod(f"virtualnode-{i}", "Running", True, "6/6", 0, "aks-0") for i in range(2)],
                nodes=[V2Node(f"virtualnode-{i}", True, True, True, True, 1.0, 3) for i in range(2)],
                admission={"desired": 1, "ready": 1}, webhook=True)
    for key, value in changes.items():
        setattr(f, key, value)
    return f


def codes(f: V2Facts) -> list[str]:
    return [p.code for p in evaluate(f)]


def test_healthy_has_no_problem_and_the_documented_shape() -> None:
    f = healthy()
    assert codes(f) == []
    st = build_status(f, evaluate(f))
    assert st["mode"] == "v2" and st["healthy"] is True and st["chart"]["replicas"] == 2
    assert [n["name"] for n in st["nodes"]] == ["virtualnode-0", "virtualnode-1"] and st["ghostNodes"] == []
    assert st["subnets"][0]["natGateway"] == "/nat/id" and st["subnets"][0]["ipUsage"]["usable"] == 65531
    assert st["admissionController"] == {"deployment": {"desired": 1, "ready": 1}, "webhookConfigured": True}


def test_pending_and_crash_looping_infra_pods_name_the_replica_and_the_cause() -> None:
    msg = "0/3 nodes are available: 3 Insufficient cpu, 3 Insufficient memory."
    crash = ('Code="AuthorizationFailed" Message="The client \'x\' does not have authorization to perform action '
             '\'Microsoft.ContainerInstance/containerGroups/write\'"')
    f = healthy(pods=[InfraPod("virtualnode-0", "Pending", False, "0/6", 0, None, "Unschedulable", msg),
                      InfraPod("virtualnode-1", "Running", False, "5/6", 4, "aks-1", "CrashLoopBackOff", crash,
                               "proxycri")])
    problems = {p.code: p for p in evaluate(f)}
    assert "virtualnode-0" in problems["InfraPodPending"].message and msg in problems["InfraPodPending"].message
    assert "Standard_D4s_v5" in problems["InfraPodPending"].hint
    assert "proxycri" in problems["InfraCrashLoop"].message and "AuthorizationFailed" in problems[
        "InfraCrashLoop"].message
    assert "--mode v2" in problems["InfraCrashLoop"].hint and "Network Contributor" in problems["InfraCrashLoop"].hint


def test_missing_pod_ghosts_capacity_and_webhook() -> None:
    f = healthy(pods=[healthy().pods[0]], ghosts=["virtualnode-2"],
                nodes=[V2Node("virtualnode-0", True, True, True, True, 1.0, 181), V2Node("virtualnode-1", False)],
                admission={"desired": 0, "ready": 0}, webhook=True)
    problems = {p.code: p for p in evaluate(f)}
    assert set(problems) == {"InfraPodMissing", "GhostNodes", "NodeCapacityLow", "WebhookUnavailable"}
    assert "kubectl delete node virtualnode-2" in problems["GhostNodes"].hint
    assert problems["NodeCapacityLow"].severity == "warning" and "181 of its 200" in problems["NodeCapacityLow"].message
    assert "scaled to 0" in problems["WebhookUnavailable"].message
    assert codes(healthy(nodes=[V2Node("virtualnode-0", True, True, True, True, 1.0, 179)])) == []


def test_admission_off_by_choice_is_no_problem() -> None:
    f = healthy(admission=None, webhook=False)
    f.release = release(admissionControllerReplicaCount=0)
    assert "WebhookUnavailable" not in codes(f)
    assert "WebhookUnavailable" in codes(healthy(webhook=False))


def test_version_outbound_role_and_subnet_rules() -> None:
    f = healthy(subnets=[V2Subnet("cg", SUBNET.id, SUBNET, None), V2Subnet("cg2", "/x/subnets/cg2", None)],
                roles=[{"present": False, "role": "Network Contributor", "scope": "/x/subnets/cg"}])
    f.release = release("1.2912.25013001")
    problems = {p.code: p for p in evaluate(f)}
    assert set(problems) == {"VersionUnsupported", "OutboundMissing", "RoleMissing", "SubnetMissing"}
    assert "--chart-version 1.3409.26080501" in problems["VersionUnsupported"].hint
    assert problems["OutboundMissing"].severity == "warning" and "--nat-gateway" in problems["OutboundMissing"].hint
    assert build_status(f, evaluate(f))["healthy"] is False
    assert codes(healthy(k8s_minor=33)) == [] and codes(healthy(kube_error="down")) == ["ClusterUnreachable"]


def test_release_view_follows_the_chart_rules() -> None:
    r = release(replicaCount=3, aciSubnetName="cg, cg2")
    assert r.fullname == "virtualnode" and r.namespace == "vn2" and r.subnets == ["cg", "cg2"]
    assert r.node_names() == ["virtualnode-0", "virtualnode-1", "virtualnode-2"]
    other = V2Release(Release("vn2", "vn2", 1, "deployed", "virtualnode", "1.3409.26080501", {}, {}))
    assert other.fullname == "vn2-virtualnode" and other.namespace == "vn2" and other.replicas == 1


def test_quantities_and_pod_requests() -> None:
    assert v2_kube.quantity("3860m") == pytest.approx(3.86) and v2_kube.quantity("13Gi") == 13 * 2 ** 30
    assert v2_kube.quantity("9G") == 9e9 and v2_kube.quantity(None) == 0 and v2_kube.quantity("bogus!") == 0
    pod = view({"spec": {"containers": [{"resources": {"requests": {"cpu": "1", "memory": "3G"}}},
                                        {"resources": {"requests": {"cpu": "1800m", "memory": "6G"}}}, {}],
                         "initContainers": [{"resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}]}})
    cpu, mem = v2_kube.pod_requests(pod)
    assert cpu == pytest.approx(2.8) and mem == pytest.approx(9e9)


def test_azure_error_is_the_last_line_with_an_azure_code() -> None:
    log = 'starting\nCode="AuthorizationFailed" Message="no"\nretrying\n'
    assert azure_error(log) == 'Code="AuthorizationFailed" Message="no"'
    assert azure_error("just this\n") == "just this" and azure_error("") is None


@pytest.mark.parametrize("value", ["0", "-1", "31", "1000", "x", "1.5"])
def test_replicas_out_of_range_is_a_usage_error(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="from 1 to 30"):
        replicas_type(value)
    assert replicas_type("1") == 1 and replicas_type("30") == 30
