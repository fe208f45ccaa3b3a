"""Names and identifiers shared by the extension's modules (real values from AKS / virtual-kubelet)."""

ADDON_KEY = "aciConnectorLinux"
ADDON_SUBNET_KEY = "SubnetName"
DEFAULT_SUBNET_NAME = "virtual-node-aci"
ACI_DELEGATION = "Microsoft.ContainerInstance/containerGroups"
ACI_PROVIDER = "Microsoft.ContainerInstance"

ADDON_NODE_NAME = "virtual-node-aci-linux"
CONNECTOR_NAMESPACE = "kube-system"
CONNECTOR_LABEL_SELECTOR = "app=aci-connector-linux"
NODE_TYPE_LABEL = ("type", "virtual-kubelet")
TAINT_KEY = "virtual-kubelet.io/provider"
TAINT_VALUE = "azure"
TAINT_EFFECT = "NoSchedule"
LEASE_NAMESPACE = "kube-node-lease"

NETWORK_CONTRIBUTOR = "Network Contributor"
NETWORK_CONTRIBUTOR_ID = "4d97b98b-1d4f-4787-a291-c67834d212e7"
ACI_CONTRIBUTOR = "Azure Container Instances Contributor Role"
ACI_CONTRIBUTOR_ID = "5d977122-f97e-4b4d-a52f-6b43003ddb4d"
ROLE_MARKER = "Created by az aks virtual-node"

# ARM api-versions for the resources reached through the generic resources client.
NETWORK_API_VERSION = "2024-05-01"

DEFAULT_TIMEOUT = 600

# Self-managed chart virtual-kubelet/azure-aci (reference: section 11).
CHART_NAME = "virtual-kubelet-azure-aci"
CHART_VERSION = "1.6.4"
CHART_URL = "https://github.com/virtual-kubelet/azure-aci/raw/gh-pages/charts/virtual-kubelet-azure-aci-{version}.tgz"
CHART_NAMESPACE = "vk-azure-aci"
CHART_NODE_NAME = "virtual-node-aci-linux-helm"
CHART_RELEASE = "virtual-node"
# Where Helm keeps the release record: the chart creates its own namespace, so the record cannot live there.
HELM_RELEASE_NAMESPACE = "default"

# Long-running operations: poll interval when the service sends no Retry-After (AKS and Network never do).
LRO_POLL_INTERVAL = 2.0
POLL_INTERVAL_ENV = "AZEXT_VIRTUALNODE_POLL_INTERVAL"
