"""Facts -> problems -> status object (pure functions; no Azure, no cluster)."""
from types import SimpleNamespace

from azext_virtualnode.addon import ClusterView
from azext_virtualnode.health import Facts, PodFacts, build_status, evaluate
from azext_virtualnode.kube import NodeFacts
from azext_virtualnode.network import SubnetFacts

VNET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"
TAINT = [{"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}]


def cluster(state="Succeeded"):
    model = SimpleNamespace(
        id="/subscriptions/s/resourcegroups/rg/providers/Microsoft.ContainerService/managedClusters/c", name="c",
        location="westeurope", provisioning_state=state,
        network_profile=SimpleNamespace(network_plugin="azure", network_plugin_mode=None),
        agent_pool_profiles=[SimpleNamespace(vnet_subnet_id=f"{VNET}/subnets/aks")], node_resource_group="MC",
        service_principal_profile=SimpleNamespace(client_id="msi"), identity_profile={},
        addon_profiles={"aciConnectorLinux": SimpleNamespace(enabled=True, config={"SubnetName": "vn"},
                                                             identity=None)})
    return ClusterView(model)


def healthy_facts(**over):
    f = Facts(cluster=cluster(), mode="addon", subnet_name="vn", subnet_id=f"{VNET}/subnets/vn",
              subnet=SubnetFacts.of({"id": f"{VNET}/subnets/vn", "name": "vn", "properties": {
                  "addressPrefix": "10.241.0.0/24",
                  "delegations": [{"properties": {"serviceName": "Microsoft.ContainerInstance/containerGroups"}}]}}),
              provider_state="Registered", identity={"objectId": "o", "clientId": "c"},
              role={"present": True}, container_groups=0,
              node=NodeFacts("virtual-node-aci-linux", True, True, "True", "v1.25.0-vk",
                             {"type": "virtual-kubelet"}, TAINT, 3.0),
              connector_pods=[PodFacts("aci-connector-linux-x", "kube-system", "Running", True, 0, None, None, "n1")])
    for k, v in over.items():
        setattr(f, k, v)
    return f


def codes(f):
    return [p.code for p in evaluate(f)]


def test_healthy_has_no_problems_and_status_says_healthy():
    f = healthy_facts()
    assert codes(f) == []
    st = build_status(f, evaluate(f))
    assert st["healthy"] is True and st["mode"] == "addon"
    assert st["subnet"]["ipUsage"] == {"usable": 251, "used": 0, "available": 251}
    assert st["node"]["taintsOk"] is True


def test_each_failure_maps_to_its_code():
    assert codes(healthy_facts(role={"present": False})) == ["RoleMissing"]
    assert codes(healthy_facts(subnet=None)) == ["SubnetMissing"]
    crash = PodFacts("p", "kube-system", "Running", False, 4, "CrashLoopBackOff", "back-off", "n1")
    f = healthy_facts(connector_pods=[crash], node=NodeFacts("virtual-node-aci-linux", False),
                      connector_log="x\nAuthorizationFailed: no subnets/write")
    assert codes(f) == ["ConnectorCrashLoop", "NodeNotRegistered"]
    assert "AuthorizationFailed" in evaluate(f)[0].message and "enable" in evaluate(f)[0].hint
    stale = healthy_facts()
    stale.node.lease_age = 300.0
    assert codes(stale) == ["LeaseStale"]
    untainted = healthy_facts()
    untainted.node.taints = []
    assert codes(untainted) == ["TaintMissing"]
    assert codes(healthy_facts(provider_state="NotRegistered")) == ["ProviderNotRegistered"]


def test_unreachable_cluster_keeps_arm_part():
    f = healthy_facts(kube_error="connection refused", node=None, connector_pods=[], role={"present": False})
    assert codes(f) == ["RoleMissing", "ClusterUnreachable"]
    st = build_status(f, evaluate(f))
    assert st["connector"] is None and st["subnet"]["name"] == "vn" and st["healthy"] is False


def test_warnings_do_not_make_it_unhealthy():
    failed = PodFacts("w", "default", "Pending", False, 0, "ProviderFailed", "InaccessibleImage", "vn")
    f = healthy_facts(workload=[failed])
    assert codes(f) == ["PodsProviderFailed"]
    assert build_status(f, evaluate(f))["healthy"] is True


def test_not_enabled():
    f = Facts(cluster=cluster(), mode="none")
    assert codes(f) == ["NotEnabled"]
    assert build_status(f, evaluate(f))["healthy"] is False


def test_crash_hint_names_the_denied_action_and_scope():
    crash = PodFacts("p", "kube-system", "Running", False, 3, "CrashLoopBackOff", None, "n1")
    log = ('level=fatal msg="Code=AuthorizationFailed ... does not have authorization to perform action '
           "'Microsoft.ContainerInstance/containerGroups/write' over scope '/subscriptions/s/resourceGroups/MC' or\"")
    hint = evaluate(healthy_facts(connector_pods=[crash], connector_log=log))[0].hint
    assert '--role "Azure Container Instances Contributor Role" --scope /subscriptions/s/resourceGroups/MC' in hint
    subnet_log = "AuthorizationFailed: perform action 'Microsoft.Network/virtualNetworks/subnets/write' over scope 'x'"
    hint = evaluate(healthy_facts(connector_pods=[crash], connector_log=subnet_log))[0].hint
    assert "re-run 'az aks virtual-node enable -g rg -n c'" in hint
