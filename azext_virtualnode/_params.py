from azext_virtualnode._consts import (CHART_NAME, CHART_NAMESPACE, CHART_NODE_NAME, CHART_RELEASE, CHART_VERSION,
                                       DEFAULT_SUBNET_NAME, DEFAULT_TIMEOUT)
from azext_virtualnode._validators import (MAX_REPLICAS, replicas_type, validate_enable, validate_place,
                                           validate_positive, validate_subnet_name, validate_wait)


def load_arguments(self, _):  # pylint: disable=too-many-statements
    from azure.cli.core.commands.parameters import get_enum_type, get_three_state_flag

    with self.argument_context("aks virtual-node") as c:
        c.argument("name", options_list=["--name", "-n"], help="Name of the managed cluster.")
        c.argument("timeout", type=int, help="Seconds to wait for the operation and the virtual node.")

    with self.argument_context("aks virtual-node enable", validator=validate_enable) as c:
        c.argument("subnet_name", help=f"Name of the virtual-node subnet in the cluster's virtual network. Created "
                   f"and delegated to Azure Container Instances if it does not exist. Default: "
                   f"the add-on's current subnet, else '{DEFAULT_SUBNET_NAME}'. With --mode v2: NAME[,NAME...] "
                   "(aciSubnetName; default 'cg', as in the VN2 docs).")
        c.argument("subnet_cidr", help="Address prefix for a new virtual-node subnet, e.g. 10.241.0.0/16. Default: "
                   "the first free /20 (or smaller) block of the virtual network.")
        c.argument("skip_role_assignment", arg_type=get_three_state_flag(),
                   help="Do not grant the connector identity Network Contributor on the subnet (for organisations "
                   "where an administrator grants roles).")
        c.argument("timeout", type=int, default=DEFAULT_TIMEOUT,
                   help="Seconds to wait for the add-on and for the node to register.")
        c.argument("mode", arg_type=get_enum_type(["addon", "chart", "v2"]), default="addon",
                   help="How the ACI connector runs: 'addon', the managed AKS add-on; 'chart', the self-managed "
                   f"{CHART_NAME} Helm chart installed with your Helm 3 (HELM_CLIENT_PATH, else helm on PATH); 'v2', "
                   "Virtual Nodes v2 (the 'virtualnode' Helm chart: one virtual node per replica, defaults as the "
                   "VN2 docs have them: subnet 'cg', release 'virtualnode', namespace 'vn2').")
        c.argument("replicas", type=replicas_type, arg_group="v2 mode",
                   help=f"Number of Virtual Nodes v2 nodes (StatefulSet replicas), 1 to {MAX_REPLICAS}; each needs 2.8 "
                   "CPU / 9G free on a regular Linux node. Default: 1, or what is installed.")
        c.argument("nat_gateway", arg_group="v2 mode",
                   help="Name (in the virtual network's resource group) or resource ID of an existing Standard NAT "
                   "gateway in the cluster's region to attach to the ACI subnet(s), so VN2 pods get outbound internet.")
        c.argument("chart", arg_group="Chart mode",
                   help=f"Chart to install: a local chart directory or .tgz package, or a URL. Default: the official "
                   f"{CHART_NAME} package of --chart-version from the virtual-kubelet/azure-aci repository.")
        c.argument("chart_version", arg_group="Chart mode",
                   help=f"Chart version: picks the official package (default {CHART_VERSION}), or must match a local "
                   "--chart. With --mode v2: default the newest chart of a line tested with the cluster's Kubernetes "
                   "version (it says which); refused if the compatibility table marks it incompatible.")
        c.argument("release", arg_group="Chart mode", help=f"Helm release name (default '{CHART_RELEASE}'; with --mode "
                   "v2 'virtualnode', whose nodes are virtualnode-0, -1, ...).")
        c.argument("connector_namespace", options_list=["--namespace"], arg_group="Chart mode",
                   help=f"Namespace the chart creates for the connector (default '{CHART_NAMESPACE}'); it must not "
                   "exist yet. With --mode v2: the chart's 'namespace' value (default 'vn2').")
        c.argument("node_name", arg_group="Chart mode",
                   help=f"Name of the virtual node the connector registers (default '{CHART_NODE_NAME}').")
        c.argument("identity", arg_group="Chart mode",
                   help="Resource ID of a user-assigned managed identity (assigned to the node pool) for the "
                   "connector. Default: the cluster's kubelet identity. It is granted Network Contributor on the "
                   "subnet and Azure Container Instances Contributor Role on the node resource group. With --mode "
                   "v2 the roles go to this identity (the infra pods use the node's kubelet identity).")

    with self.argument_context("aks virtual-node scale") as c:
        c.argument("replicas", type=replicas_type, required=True,
                   help=f"The number of Virtual Nodes v2 nodes wanted, 1 to {MAX_REPLICAS}.")
        c.argument("force", arg_type=get_three_state_flag(),
                   help="Scale down even when pods run on the nodes that go: evict them (PodDisruptionBudgets are "
                   "respected) so their controllers re-create them elsewhere.")
        c.argument("yes", options_list=["--yes", "-y"], arg_type=get_three_state_flag(),
                   help="Do not prompt for confirmation before removing nodes.")
        c.argument("timeout", type=int, default=DEFAULT_TIMEOUT, validator=validate_positive("--timeout", "timeout"),
                   help="Seconds to wait for the new nodes, or for the removed infra pods to go.")

    with self.argument_context("aks virtual-node disable") as c:
        c.argument("delete_subnet", arg_type=get_three_state_flag(),
                   help="Also delete the virtual-node subnet once Azure Container Instances releases it.")
        c.argument("force", arg_type=get_three_state_flag(),
                   help="Disable even when pods still run on the virtual node (their container groups are deleted).")
        c.argument("yes", options_list=["--yes", "-y"], arg_type=get_three_state_flag(),
                   help="Do not prompt for confirmation.")
        c.argument("subnet_name", validator=validate_subnet_name,
                   help="Subnet to clean up when the add-on is already off (default: the add-on's subnet, else "
                   f"'{DEFAULT_SUBNET_NAME}').")
        c.argument("timeout", type=int, default=DEFAULT_TIMEOUT, validator=validate_positive("--timeout", "timeout"),
                   help="Seconds to wait for the node to go and for the subnet to be released.")

    with self.argument_context("aks virtual-node wait", validator=validate_wait) as c:
        c.argument("ready", arg_type=get_three_state_flag(),
                   help="Wait until the virtual node is registered, Ready, tainted and heart-beating.")
        c.argument("deleted", arg_type=get_three_state_flag(),
                   help="Wait until no connector is installed and the virtual nodes are gone (the add-on's, the "
                   "chart's default and every Virtual Nodes v2 node).")
        c.argument("timeout", type=int, default=DEFAULT_TIMEOUT, help="Maximum seconds to wait.")
        c.argument("interval", type=int, default=10, help="Seconds between checks of the cluster's Azure state.")

    with self.argument_context("aks virtual-node place", validator=validate_place) as c:
        c.argument("workload", help="The workload to place, as KIND/NAME: deployment, statefulset, replicaset, job "
                   "or cronjob (DaemonSets never run on virtual nodes), e.g. deployment/web.")
        c.argument("namespace", options_list=["--namespace"], help="Namespace of the workload (default 'default').")
        c.argument("policy", arg_type=get_enum_type(["only", "burst", "off"]),
                   help="'only': pin every pod to the virtual node (its nodeSelector and tolerations); 'burst': "
                   "tolerate the virtual node and prefer the regular nodes, so pods go to ACI only when the regular "
                   "nodes are full; 'off': remove what 'place' added, nothing else.")
        c.argument("dry_run", arg_type=get_three_state_flag(),
                   help="Change nothing; print the workload fragment (pod-template fields and the ownership "
                   "annotation) that 'kubectl apply' or a GitOps manifest would take.")

    with self.argument_context("aks virtual-node prune") as c:
        c.argument("dry_run", arg_type=get_three_state_flag(), help="Only list what would be deleted.")
        c.argument("yes", options_list=["--yes", "-y"], arg_type=get_three_state_flag(),
                   help="Do not prompt for confirmation.")

    with self.argument_context("aks virtual-node migrate") as c:
        c.argument("to", arg_type=get_enum_type(["v2"]), required=True,
                   help="The connector to move to: 'v2', Virtual Nodes v2 (the 'virtualnode' Helm chart).")
        c.argument("replicas", type=replicas_type,
                   help=f"Number of Virtual Nodes v2 nodes, 1 to {MAX_REPLICAS} (default 1, or what is installed).")
        c.argument("subnet_name", help="ACI subnet(s) for Virtual Nodes v2, NAME[,NAME...] in the cluster's virtual "
                   "network. Default: the legacy connector's subnet when v2 can use it, else 'cg' (created and "
                   "delegated if missing).")
        c.argument("chart", help="The virtualnode chart: a local directory or .tgz package, or a URL. Default: the "
                   "published package of the newest line tested with the cluster's Kubernetes version.")
        c.argument("chart_version", help="The virtualnode chart version (checked against the cluster's Kubernetes "
                   "version).")
        c.argument("dry_run", arg_type=get_three_state_flag(),
                   help="Only print the plan (v2 preflight, subnet, what becomes of each workload); change nothing.")
        c.argument("yes", options_list=["--yes", "-y"], arg_type=get_three_state_flag(),
                   help="Do not prompt for confirmation.")
        c.argument("force", arg_type=get_three_state_flag(),
                   help="Move workloads even when that costs them availability (evictions a PodDisruptionBudget "
                   "refuses become deletions), and remove the legacy connector even when pods that cannot be moved "
                   "(bare pods, running Jobs) are still on it (their container groups are deleted).")
        c.argument("timeout", type=int, validator=validate_positive("--timeout", "timeout"),
                   help="Seconds for the whole migration (default 1800); an interrupted or timed-out migration is "
                   "continued by running the command again.")
