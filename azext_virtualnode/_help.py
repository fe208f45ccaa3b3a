from knack.help_files import helps

helps["aks virtual-node"] = """
type: group
short-summary: Burst pods onto Azure Container Instances through an AKS virtual node (ACI connector).
long-summary: >-
    'enable' prepares the delegated subnet, turns on the managed ACI connector add-on, grants the connector
    identity Network Contributor on that subnet only, and verifies on the cluster that node
    virtual-node-aci-linux registered, is Ready, tainted and heart-beating. With '--mode chart' it installs
    the self-managed virtual-kubelet-azure-aci Helm chart instead (Helm 3 needed). 'status' reports whether it
    really works and why not; 'disable' removes it all again. 'migrate --to v2' moves a cluster from the add-on
    or the legacy chart to Virtual Nodes v2 without downtime.
examples:
  - name: Enable a virtual node on a cluster (Azure CNI) and verify that it works
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster
  - name: Check whether the virtual node works, and why not
    text: az aks virtual-node status -g MyResourceGroup -n MyCluster -o table
  - name: Remove the virtual node and its subnet
    text: az aks virtual-node disable -g MyResourceGroup -n MyCluster --delete-subnet --yes
  - name: Move from the add-on to Virtual Nodes v2, after looking at the plan
    text: az aks virtual-node migrate -g MyResourceGroup -n MyCluster --to v2 --dry-run
"""

helps["aks virtual-node enable"] = """
type: command
short-summary: Enable a virtual node on an Azure CNI cluster and verify that it works.
long-summary: >-
    Everything is checked before the first change: the cluster uses Azure CNI with its own virtual network,
    the subnet can be used (created and delegated if missing), ACI is offered in the region, and you hold the
    rights needed. Re-running converges; an interrupted run can be re-run to finish. The output is the same
    object 'az aks virtual-node status' returns. With '--mode chart' the connector is the
    virtual-kubelet-azure-aci chart, installed with 'helm upgrade --install' (Helm 3 from HELM_CLIENT_PATH, else
    PATH) and values computed from the cluster; it runs as the kubelet identity (or --identity), which is granted
    Network Contributor on the subnet and Azure Container Instances Contributor Role on the node resource group.
    The add-on and the chart exclude each other.
examples:
  - name: Enable with a new subnet picked from the cluster's virtual network
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster
  - name: Enable with a given subnet name and address prefix
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster --subnet-name virtual-node-aci --subnet-cidr 10.241.0.0/16
  - name: Start without waiting (for CI), then wait for the node
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster --no-wait
  - name: Enable where an administrator grants the connector's role
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster --skip-role-assignment
  - name: Install the self-managed connector chart (virtual-kubelet-azure-aci) with Helm 3 instead of the add-on
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster --mode chart
  - name: Install a local copy of the chart with your own release name, namespace and node name
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster --mode chart --chart ./virtual-kubelet-azure-aci-1.6.4.tgz --release vk --namespace vk-azure-aci --node-name virtual-node-aci-linux-helm
  - name: Run the chart's connector as a user-assigned identity assigned to the node pool
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster --mode chart --identity /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/MyResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/MyIdentity
  - name: Install Virtual Nodes v2 with the VN2 docs' defaults (subnet cg, release virtualnode, namespace vn2) and 2 nodes
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster --mode v2 --replicas 2
  - name: Virtual Nodes v2 on two ACI subnets with an existing NAT gateway for outbound traffic
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster --mode v2 --subnet-name cg,cg2 --nat-gateway MyNatGateway
  - name: Virtual Nodes v2 on a new subnet with a given prefix, a pinned chart version, release and namespace
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster --mode v2 --subnet-name cg --subnet-cidr 10.2.0.0/16 --chart-version 1.3409.26080501 --release virtualnode --namespace vn2
  - name: Virtual Nodes v2 from a local clone of the chart, granting the roles to a given identity
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster --mode v2 --chart ./virtualnodesOnAzureContainerInstances/Helm/virtualnode --identity /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/MyResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/MyIdentity
  - name: Virtual Nodes v2 where an administrator grants the roles, without waiting
    text: az aks virtual-node enable -g MyResourceGroup -n MyCluster --mode v2 --skip-role-assignment --no-wait --timeout 900
"""

helps["aks virtual-node disable"] = """
type: command
short-summary: Turn the virtual node off and remove what 'enable' created.
long-summary: >-
    Refuses while pods other than DaemonSet pods run on the virtual node (use --force to delete them with it).
    Turns off the add-on, or uninstalls the chart's Helm release and deletes the node it leaves behind, waits
    for the node to go, removes the role assignments this extension created and, with --delete-subnet, deletes
    the subnet once Azure Container Instances releases it. Disabling a cluster without a virtual node succeeds
    and says so.
examples:
  - name: Disable after a confirmation prompt
    text: az aks virtual-node disable -g MyResourceGroup -n MyCluster
  - name: Disable without a prompt and delete the subnet
    text: az aks virtual-node disable -g MyResourceGroup -n MyCluster --delete-subnet --yes
  - name: Disable even though pods still run on the virtual node
    text: az aks virtual-node disable -g MyResourceGroup -n MyCluster --force --yes
"""

helps["aks virtual-node status"] = """
type: command
short-summary: Show whether the virtual node really works, and if not why and what to do.
long-summary: >-
    Prints one stable JSON object (schema in the extension's README): mode ('addon', 'chart' or 'none'), the
    chart release when mode is 'chart', subnet, identity, role assignment, connector pods, node, workload,
    container groups, 'healthy' and 'problems' with stable codes. Exits 0 whenever the status could be read;
    scripts use --query healthy.
examples:
  - name: Show the status as a table
    text: az aks virtual-node status -g MyResourceGroup -n MyCluster -o table
  - name: Fail a CI step unless the virtual node is healthy
    text: az aks virtual-node status -g MyResourceGroup -n MyCluster --query healthy -o tsv
  - name: List the problem codes
    text: az aks virtual-node status -g MyResourceGroup -n MyCluster --query "problems[].code"
"""

helps["aks virtual-node wait"] = """
type: command
short-summary: Wait until the virtual node is ready, or gone (for CI after --no-wait).
examples:
  - name: Wait up to 10 minutes for the virtual node to be ready
    text: az aks virtual-node wait -g MyResourceGroup -n MyCluster --ready --timeout 600
  - name: Wait for the virtual node to be removed
    text: az aks virtual-node wait -g MyResourceGroup -n MyCluster --deleted
"""

helps["aks virtual-node place"] = """
type: command
short-summary: Put a workload on the virtual node (only there, or bursting there), or take it off again.
long-summary: >-
    Writes the pod-template fields the installed connector needs, merged into the workload without touching
    the rest. '--policy only' adds the virtual node's nodeSelector (type=virtual-kubelet, kubernetes.io/os=linux)
    and tolerations (virtual-kubelet.io/provider, and the legacy azure.com/aci), so every pod runs in ACI.
    '--policy burst' adds the tolerations and a preferred node affinity (weight 100) for the regular nodes
    (type NotIn virtual-kubelet): pods fill the regular nodes first and go to ACI only when those are full.
    On scale-down the ReplicaSet deletes pods on the node holding the most replicas of the workload first, so
    the virtual-node pods go first while the virtual node holds more of them than any regular node; once
    counts are even, the most recently ready pods go first, wherever they run (per-pod
    controller.kubernetes.io/pod-deletion-cost cannot be set through a Deployment's template).
    '--policy off' removes exactly what 'place' added (recorded in the annotation
    virtual-node.aks.azure.com/placement), keeping your own tolerations, selectors and affinity. A re-run
    changes nothing. Changing a Deployment's or StatefulSet's pod template rolls its pods. Before changing
    anything it warns about what the connector cannot run (init containers, host network, privileged
    containers, unsupported volumes...). A started Job cannot be changed; --dry-run prints the fields to
    re-create it with.
examples:
  - name: Run every pod of a Deployment on the virtual node (ACI)
    text: az aks virtual-node place -g MyResourceGroup -n MyCluster --workload deployment/web --policy only
  - name: Fill the regular nodes first and burst the rest to ACI
    text: az aks virtual-node place -g MyResourceGroup -n MyCluster --workload deployment/web --namespace shop --policy burst
  - name: Print the manifest fragment for GitOps (nothing is changed)
    text: az aks virtual-node place -g MyResourceGroup -n MyCluster --workload deployment/web --policy only --dry-run -o yaml
  - name: Take the workload off the virtual node again
    text: az aks virtual-node place -g MyResourceGroup -n MyCluster --workload deployment/web --policy off
"""

helps["aks virtual-node prune"] = """
type: command
short-summary: Delete the container groups of the virtual node whose pod no longer exists.
long-summary: >-
    A pod deleted while the connector was down leaves its container group running in ACI, and billed
    ('az aks virtual-node status' reports them as OrphanContainerGroups). prune lists them, asks, and deletes
    exactly those (a group whose pod has come back meanwhile is skipped). 'status' itself never deletes
    anything.
examples:
  - name: List what would be deleted
    text: az aks virtual-node prune -g MyResourceGroup -n MyCluster --dry-run
  - name: Delete the orphaned container groups without a prompt
    text: az aks virtual-node prune -g MyResourceGroup -n MyCluster --yes
"""

helps["aks virtual-node scale"] = """
type: command
short-summary: Change the number of Virtual Nodes v2 nodes (mode v2 only).
long-summary: >-
    Up: checks that the new infra pods fit (2.8 CPU / 9G each on regular Linux nodes), runs 'helm upgrade' with
    the new replicaCount (the installed chart and values otherwise unchanged) and waits for the new nodes.
    Down: cordons the nodes that go (the highest ordinals), refuses while pods other than DaemonSet pods run
    on them unless --force (then evicts them through the Eviction API, respecting PodDisruptionBudgets, and
    reports which), upgrades, waits for their infra pods to go and deletes the node objects the chart leaves
    behind (ghost nodes, which stay Ready). Scaling to the current count changes nothing.
examples:
  - name: Scale Virtual Nodes v2 to 3 nodes
    text: az aks virtual-node scale -g MyResourceGroup -n MyCluster --replicas 3
  - name: Scale down to 1 node, evicting the pods on the nodes that go, without a prompt
    text: az aks virtual-node scale -g MyResourceGroup -n MyCluster --replicas 1 --force --yes
  - name: Scale without waiting for the new nodes, or with a longer wait
    text: az aks virtual-node scale -g MyResourceGroup -n MyCluster --replicas 4 --no-wait --timeout 900
"""

helps["aks virtual-node migrate"] = """
type: command
short-summary: Move a cluster from the legacy virtual node (add-on or legacy chart) to Virtual Nodes v2 without downtime.
long-summary: >-
    First a plan, checked before any change: the Virtual Nodes v2 preflight (room for the infra pods, Azure CNI
    node subnet, no authorized IP ranges, chart version, your rights), the subnet (the legacy connector's is reused
    when v2 can use it) and what becomes of every workload aimed at the legacy node: re-placed (Deployments,
    StatefulSets, ReplicaSets, suspended Jobs, CronJobs), not movable (bare pods, running Jobs: listed with the
    reason) or unaffected. '--dry-run' prints it and changes nothing. Then v2 is installed beside the legacy
    connector and verified; the legacy node is cordoned; each workload is re-placed for v2 with the policy it had
    (pinned stays pinned, burst stays burst) and its pods leave the legacy node one workload at a time (a
    Deployment's own rollout paced by maxSurge/maxUnavailable; other kinds by evictions that respect
    PodDisruptionBudgets). A workload that would lose availability is refused unless --force. When no pod is left
    on the legacy node, the role assignments this extension created for the legacy connector (and v2 does not
    use) are removed and the legacy connector is turned off; the subnet is kept. Every step checks before it
    acts: re-run an interrupted migration to continue; on a migrated cluster it has nothing to do. The output is
    the final 'status' plus a 'migration' summary.
examples:
  - name: See what the migration would do, changing nothing
    text: az aks virtual-node migrate -g MyResourceGroup -n MyCluster --to v2 --dry-run
  - name: Migrate (for scripts, without the prompt)
    text: az aks virtual-node migrate -g MyResourceGroup -n MyCluster --to v2 --yes
  - name: Migrate to two v2 nodes on a new subnet
    text: az aks virtual-node migrate -g MyResourceGroup -n MyCluster --to v2 --replicas 2 --subnet-name cg --yes
  - name: Remove the legacy connector even though bare pods still run on it
    text: az aks virtual-node migrate -g MyResourceGroup -n MyCluster --to v2 --yes --force
"""
