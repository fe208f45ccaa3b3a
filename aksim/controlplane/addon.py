"""The AKS add-on manager for ``aciConnectorLinux``.

Enabled: after ``timings.connector_start`` the ``aci-connector-linux`` ServiceAccount, Secret and Deployment
appear in ``kube-system`` (the Deployment controller then makes the ReplicaSet and the connector pod).
Disabled, or moved to another subnet: the Deployment goes (its ReplicaSet and pod with it), and so do the
virtual node, its Lease, every container group placed for it and the subnet's service association link.
"""
from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from aksim.arm.containerservice import SUBNET_TYPE, addon_profile, agent_pool_vnet_id, is_msi
from aksim.controlplane.connector import DEFAULT_NODE_NAME, VERSION
from aksim.kube.store import AlreadyExists

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime

NAME = "aci-connector-linux"
NAMESPACE = "kube-system"
IMAGE = f"mcr.microsoft.com/oss/virtual-kubelet/virtual-kubelet:{VERSION}"
LABELS = {"app": NAME, "kubernetes.azure.com/managedby": "aks"}
_FAKE_PEM = "-----BEGIN {0}-----\naksim\n-----END {0}-----\n"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class AddonManager:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp
        self.subnet: str | None = None        # the subnet the installed (or installing) connector uses
        self._subnet_id = ""
        self._generation = 0                  # bumped on every change; stale install timers do nothing
        self._installing = False

    def reconcile(self) -> None:
        mc = self.cp.managed_cluster
        profile = addon_profile(mc) if mc else None
        subnet = ((profile or {}).get("config") or {}).get("SubnetName") if profile and profile.get("enabled") \
            else None
        if subnet is None:
            if self.subnet is not None:
                self.teardown()
            return
        if self.subnet is not None and self.subnet != subnet:
            self.teardown()
        if self.subnet == subnet and (self._installing or self._deployed()):
            return
        self.subnet = subnet
        self._generation += 1
        self._installing = True
        generation = self._generation
        self.cp.later(self.cp.timings.connector_start, lambda: self._install(generation))

    def _deployed(self) -> bool:
        return self.cp.store.get_ref("deployments.apps", NAMESPACE, NAME) is not None

    def _install(self, generation: int) -> None:
        mc = self.cp.managed_cluster
        if generation != self._generation or mc is None or self.subnet is None:
            return
        self._installing = False
        vnet_id = agent_pool_vnet_id(mc, self.cp.world) or ""
        self._subnet_id = f"{vnet_id}/subnets/{self.subnet}" if vnet_id else ""
        store = self.cp.store
        for resource, obj in (("serviceaccounts", self._service_account()), ("secrets", self._secret()),
                              ("deployments.apps", self._deployment(mc, vnet_id))):
            try:
                store.create(resource, obj)
            except AlreadyExists:
                store.mutate(resource, NAMESPACE, NAME, lambda o, new=obj: o.update(
                    {k: v for k, v in new.items() if k != "metadata"}))

    def teardown(self) -> None:
        node = DEFAULT_NODE_NAME
        self._generation += 1
        self._installing = False
        self.subnet = None
        self.cp.connectors.forget_node(node)
        store = self.cp.store
        for resource in ("deployments.apps", "secrets", "serviceaccounts"):
            store.delete(resource, NAMESPACE, NAME)
        self.cp.aci.teardown(node, self._subnet_id)
        store.delete("leases.coordination.k8s.io", "kube-node-lease", node)
        store.delete("nodes", None, node)

    # -- objects --------------------------------------------------------------------------------------
    def _service_account(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)}}

    def _secret(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
                "data": {"cert.pem": _b64(_FAKE_PEM.format("CERTIFICATE")),
                         "key.pem": _b64(_FAKE_PEM.format("RSA PRIVATE KEY"))}}

    def _cluster_cidr(self, mc: dict[str, Any], vnet_id: str) -> str:
        """The node subnet's range (Azure CNI: pods take their addresses from it)."""
        pools = mc["properties"].get("agentPoolProfiles") or []
        subnet_id = pools[0].get("vnetSubnetID") if pools else None
        subnets = [self.cp.world.arm.get(subnet_id)] if subnet_id else \
            self.cp.world.arm.children(vnet_id, SUBNET_TYPE) if vnet_id else []
        return next((s["properties"].get("addressPrefix", "") for s in subnets if s), "")

    def _identity_env(self, mc: dict[str, Any]) -> list[dict[str, Any]]:
        if not is_msi(mc):
            return [{"name": "AZURE_CLIENT_ID", "value": mc["properties"]["servicePrincipalProfile"]["clientId"]}]
        identity = (addon_profile(mc) or {}).get("identity") or {}
        return [{"name": "VIRTUALNODE_USER_IDENTITY_CLIENTID", "value": identity["clientId"]}] if identity else []

    def _deployment(self, mc: dict[str, Any], vnet_id: str) -> dict[str, Any]:
        props = mc["properties"]
        vnet_parts = vnet_id.split("/")
        env = [{"name": "KUBELET_PORT", "value": "10250"},
               {"name": "APISERVER_CERT_LOCATION", "value": "/etc/virtual-kubelet/cert.pem"},
               {"name": "APISERVER_KEY_LOCATION", "value": "/etc/virtual-kubelet/key.pem"},
               {"name": "VKUBELET_POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                      "fieldPath": "status.podIP"}}},
               {"name": "ACI_EXTRA_USER_AGENT", "value": "add-on/aks"},
               {"name": "ACI_SUBNET_NAME", "value": self.subnet},
               {"name": "ACI_RESOURCE_GROUP", "value": self.cp.cluster.node_resource_group},
               {"name": "ACI_REGION", "value": mc["location"]},
               {"name": "ACI_VNET_NAME", "value": vnet_parts[-1] if vnet_id else ""},
               {"name": "ACI_VNET_RESOURCE_GROUP", "value": vnet_parts[4] if vnet_id else ""},
               {"name": "MASTER_URI", "value": f"https://{props.get('fqdn', '')}:443"},
               {"name": "CLUSTER_CIDR", "value": self._cluster_cidr(mc, vnet_id)},
               {"name": "KUBE_DNS_IP", "value": (props.get("networkProfile") or {}).get("dnsServiceIP", "10.0.0.10")},
               *self._identity_env(mc)]
        container = {"name": NAME, "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["virtual-kubelet"],
                     "args": ["--provider", "azure", "--nodename", DEFAULT_NODE_NAME, "--os", "Linux",
                              "--authentication-token-webhook=true", "--client-verify-ca",
                              "/etc/kubernetes/certs/ca.crt", "--no-verify-clients=false"],
                     "env": env,
                     "resources": {"requests": {"cpu": "100m", "memory": "100Mi"},
                                   "limits": {"cpu": "500m", "memory": "600Mi"}},
                     "volumeMounts": [{"name": "credentials", "mountPath": "/etc/virtual-kubelet"},
                                      {"name": "certificates", "mountPath": "/etc/kubernetes/certs",
                                       "readOnly": True}]}
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": NAME}},
                         "template": {"metadata": {"labels": dict(LABELS)},
                                      "spec": {"serviceAccountName": NAME, "priorityClassName": "system-node-critical",
                                               "containers": [container],
                                               "nodeSelector": {"kubernetes.io/os": "linux"},
                                               "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                                               "volumes": [{"name": "credentials", "secret": {"secretName": NAME}},
                                                           {"name": "certificates", "hostPath": {
                                                               "path": "/etc/kubernetes/certs"}}]}}}}
