"""enable / disable / wait / status, put together from the domain modules.

Every command validates everything it can before its first write to Azure, so bad input changes nothing;
each write is skipped when the state is already right, so a re-run converges and an interrupted run can
simply be repeated.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from azure.cli.core.azclierror import InvalidArgumentValueError, ValidationError
from knack.log import get_logger
from knack.util import CLIError

from azext_virtualnode import _client_factory as cf
from azext_virtualnode._consts import (ACI_PROVIDER, ADDON_NODE_NAME, DEFAULT_SUBNET_NAME, NETWORK_CONTRIBUTOR)
from azext_virtualnode.addon import ClusterView, get_cluster, require_azure_cni, set_addon, wait_until_idle
from azext_virtualnode.health import Facts, Sources, build_status, evaluate, gather
from azext_virtualnode.kube import ClusterUnreachable, Kube, fetch_kubeconfig, session
from azext_virtualnode.network import (SubnetClient, SubnetFacts, check_cidr_fits, check_existing_subnet,
                                       first_free_block, parse_cidr, subnet_body)
from azext_virtualnode.roles import (CLUSTER_WRITE, ROLE_ASSIGNMENT_WRITE, SUBNET_WRITE, MissingRight, RoleClient,
                                     action_allowed, caller_object_id, missing_rights_error, role_guid,
                                     SUBNET_WRITERS)

logger = get_logger(__name__)


class Timeout(CLIError):
    """A wait ran out of time; the message says what was still missing."""


@dataclass
class Ctx:
    cmd: Any
    resource_group: str
    name: str

    @property
    def cli_ctx(self) -> Any:
        return self.cmd.cli_ctx

    @property
    def clusters(self) -> Any:
        return cf.cf_managed_clusters(self.cli_ctx)

    @property
    def subnets(self) -> SubnetClient:
        return SubnetClient(cf.cf_resources(self.cli_ctx))

    @property
    def roles(self) -> RoleClient:
        return RoleClient(cf.cf_authorization(self.cli_ctx))

    @property
    def ids(self) -> str:
        return f"-g {self.resource_group} -n {self.name}"

    def cluster(self) -> ClusterView:
        return get_cluster(self.clusters, self.resource_group, self.name)

    @contextlib.contextmanager
    def kube(self) -> Iterator[Kube]:
        try:
            kubeconfig = fetch_kubeconfig(self.clusters, self.resource_group, self.name)
        except Exception as exc:  # pylint: disable=broad-except
            raise ClusterUnreachable(f"could not get cluster credentials: {exc}") from exc
        with session(kubeconfig) as kube:
            yield kube


def progress(message: str) -> None:
    logger.warning(message)


# -- identity ----------------------------------------------------------------------------------------------
def connector_identity(ctx: Ctx, cluster: ClusterView) -> dict[str, str] | None:
    """The principal the connector runs as: the add-on's managed identity, or the cluster's service principal."""
    if cluster.is_msi:
        ident = cluster.addon_identity
        if ident is None or not ident.object_id:
            return None
        return {"kind": "addonManagedIdentity", "clientId": ident.client_id, "objectId": ident.object_id,
                "resourceId": ident.resource_id}
    app_id = cluster.service_principal_client_id
    sps = list(cf.cf_graph(ctx.cli_ctx).service_principal_list(
        filter=f"servicePrincipalNames/any(c:c eq '{app_id}')"))
    if not sps:
        raise ValidationError(
            f"The cluster's service principal {app_id} was not found in Microsoft Entra ID. Reset the cluster's "
            f"credentials with 'az aks update-credentials {ctx.ids} --reset-service-principal ...'.")
    return {"kind": "servicePrincipal", "clientId": app_id, "objectId": sps[0]["id"], "resourceId": None}


def role_state(ctx: Ctx, identity: dict[str, str], subnet_id: str) -> dict[str, Any]:
    """Whether some role assignment lets the connector identity write the subnet (at it or above)."""
    roles = ctx.roles
    grant = None
    for ra in roles.assignments_for(identity["objectId"], subnet_id):
        if not _covers(ra.scope, subnet_id):
            continue
        if role_guid(ra.role_definition_id) in SUBNET_WRITERS or _custom_role_allows(roles, ra.role_definition_id):
            grant = ra
            break
    if grant is None:
        return {"present": False, "role": NETWORK_CONTRIBUTOR, "scope": subnet_id, "id": None,
                "createdByExtension": False}
    from azext_virtualnode._consts import ROLE_MARKER
    return {"present": True, "role": SUBNET_WRITERS.get(role_guid(grant.role_definition_id), "custom"),
            "scope": grant.scope, "id": grant.id,
            "createdByExtension": (grant.description or "").startswith(ROLE_MARKER)}


def _covers(scope: str, target: str) -> bool:
    from azext_virtualnode.roles import scope_covers
    return scope_covers(scope, target)


def _custom_role_allows(roles: RoleClient, role_definition_id: str) -> bool:
    definition = roles._client.role_definitions.get_by_id(role_definition_id)  # pylint: disable=protected-access
    perms = [{"actions": p.actions or [], "notActions": p.not_actions or []} for p in definition.permissions or []]
    return action_allowed(SUBNET_WRITE, perms) or action_allowed(
        "Microsoft.Network/virtualNetworks/subnets/join/action", perms)


# -- status --------------------------------------------------------------------------------------------------
def mode_of(cluster: ClusterView) -> str:
    return "addon" if cluster.addon_enabled else "none"


def collect(ctx: Ctx, cluster: ClusterView) -> Facts:
    def subnet(subnet_id: str) -> dict[str, Any] | None:
        return ctx.subnets.get(subnet_id)

    def provider_state() -> str | None:
        return cf.cf_providers(ctx.cli_ctx).get(ACI_PROVIDER).registration_state

    def container_groups(cl: ClusterView, node: str) -> int | None:
        groups = cf.cf_container_groups(ctx.cli_ctx).list_by_resource_group(cl.node_resource_group)
        return sum(1 for g in groups if (g.tags or {}).get("NodeName") in (None, node))

    src = Sources(subnet=subnet, provider_state=provider_state,
                  identity=lambda cl: connector_identity(ctx, cl),
                  role=lambda ident, scope: role_state(ctx, ident, scope),
                  container_groups=container_groups, kube=ctx.kube)
    return gather(cluster, src, mode_of(cluster), cluster.addon_subnet, ADDON_NODE_NAME)


def status(ctx: Ctx, cluster: ClusterView | None = None) -> dict[str, Any]:
    cluster = cluster or ctx.cluster()
    facts = collect(ctx, cluster)
    return build_status(facts, evaluate(facts))


# -- enable -------------------------------------------------------------------------------------------------
@dataclass
class SubnetPlan:
    id: str
    name: str
    body: dict[str, Any] | None      # None: nothing to write


def plan_subnet(ctx: Ctx, cluster: ClusterView, name: str, cidr_text: str | None) -> SubnetPlan:
    cidr = parse_cidr(cidr_text) if cidr_text else None
    vnet = ctx.subnets.get(cluster.vnet_id)
    if vnet is None:
        raise ValidationError(f"The virtual network '{cluster.vnet_id}' of the cluster's node pool was not "
                              "found. Check the cluster's network configuration with 'az aks show "
                              f"{ctx.ids} --query agentPoolProfiles[0].vnetSubnetId'.")
    subnet_id = f"{cluster.vnet_id}/subnets/{name}"
    existing = next((s for s in (vnet.get("properties") or {}).get("subnets") or []
                     if s["name"].lower() == name.lower()), None)
    if existing is not None:
        facts = SubnetFacts.of(existing)
        check_existing_subnet(facts, cidr, vnet["name"])
        return SubnetPlan(existing["id"], existing["name"], None if facts.delegated_to_aci else
                          subnet_body(existing, None))
    if cidr is not None:
        check_cidr_fits(cidr, vnet, cluster.reserved_ranges)
    else:
        cidr = first_free_block(vnet, reserved=cluster.reserved_ranges)
        if cidr is None:
            raise ValidationError(
                f"Virtual network '{vnet['name']}' has no free /24 or larger block for the virtual-node subnet. "
                "Add address space ('az network vnet update --address-prefixes ...') or pass --subnet-cidr.")
    return SubnetPlan(subnet_id, name, subnet_body(None, cidr))


def check_region_and_provider(ctx: Ctx, cluster: ClusterView) -> bool:
    """Raise when ACI (with VNet) is not offered in the cluster's region; True when the provider needs registering."""
    provider = cf.cf_providers(ctx.cli_ctx).get(ACI_PROVIDER)
    location = cluster.location.replace(" ", "").lower()
    for rtype in provider.resource_types or []:
        if rtype.resource_type.lower() == "containergroups":
            regions = [loc.replace(" ", "").lower() for loc in rtype.locations or []]
            if regions and location not in regions:
                raise ValidationError(
                    f"Azure Container Instances is not available in region '{cluster.location}' of cluster "
                    f"'{cluster.name}', so virtual nodes cannot run there. See 'az provider show -n {ACI_PROVIDER} "
                    "--query \"resourceTypes[?resourceType=='containerGroups'].locations\"'.")
    return (provider.registration_state or "") != "Registered"


def check_caller_rights(ctx: Ctx, needs: dict[str, str]) -> None:
    """``needs`` maps action -> scope. Read the caller's permissions once per scope; raise listing what lacks."""
    by_scope: dict[str, list[dict[str, Any]]] = {}
    missing: list[MissingRight] = []
    roles = ctx.roles
    for action, scope in needs.items():
        if scope not in by_scope:
            by_scope[scope] = roles.permissions(scope)
        if not action_allowed(action, by_scope[scope]):
            role = {ROLE_ASSIGNMENT_WRITE: "User Access Administrator", SUBNET_WRITE: NETWORK_CONTRIBUTOR,
                    CLUSTER_WRITE: "Azure Kubernetes Service Contributor Role"}.get(action, "Contributor")
            missing.append(MissingRight(action, scope, role))
    if missing:
        raise missing_rights_error(missing, caller_object_id(ctx.cli_ctx))


# pylint: disable-next=too-many-positional-arguments
def enable(ctx: Ctx, subnet_name: str | None, subnet_cidr: str | None, skip_role_assignment: bool, timeout: int,
           no_wait: bool) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    cluster = wait_until_idle(ctx.clusters, ctx.resource_group, ctx.name, ctx.cluster(), deadline,
                              on_wait=progress)
    require_azure_cni(cluster)
    name = subnet_name or cluster.addon_subnet or DEFAULT_SUBNET_NAME
    if cluster.addon_enabled and (cluster.addon_subnet or "").lower() != name.lower():
        raise ValidationError(
            f"Virtual nodes are already enabled on cluster '{ctx.name}' with subnet '{cluster.addon_subnet}'. To move "
            f"to subnet '{name}', first run 'az aks virtual-node disable {ctx.ids}' (add --delete-subnet to remove "
            f"the old subnet), then 'az aks virtual-node enable {ctx.ids} --subnet-name {name}'.")
    plan = plan_subnet(ctx, cluster, name, subnet_cidr)
    needs_register = check_region_and_provider(ctx, cluster)
    identity = None if cluster.is_msi else connector_identity(ctx, cluster)
    needs: dict[str, str] = {}
    if plan.body is not None:
        needs[SUBNET_WRITE] = cluster.vnet_id
    if not skip_role_assignment:
        needs[ROLE_ASSIGNMENT_WRITE] = cluster.vnet_id
    if not cluster.addon_enabled:
        needs[CLUSTER_WRITE] = cluster.id
    if needs:
        check_caller_rights(ctx, needs)

    # ---- first write below this line ----
    if needs_register:
        register_provider(ctx, deadline)
    if plan.body is not None:
        progress(f"Creating/delegating subnet '{plan.name}' for Azure Container Instances...")
        ctx.subnets.put(plan.id, plan.body).result()
    if not cluster.addon_enabled:
        cluster = turn_on_addon(ctx, cluster, plan.name, no_wait)
    if not skip_role_assignment:
        identity = identity or wait_for_identity(ctx, cluster, deadline)
        ensure_role(ctx, identity, plan.id, cluster, deadline)
    if no_wait:
        progress(f"Started. Run 'az aks virtual-node wait {ctx.ids} --ready' to wait for the virtual node.")
        return None
    verify_ready(ctx, deadline, timeout)
    return status(ctx)


def register_provider(ctx: Ctx, deadline: float) -> None:
    providers = cf.cf_providers(ctx.cli_ctx)
    progress(f"Registering the {ACI_PROVIDER} resource provider...")
    providers.register(ACI_PROVIDER)
    while (providers.get(ACI_PROVIDER).registration_state or "") != "Registered":
        if time.monotonic() > deadline:
            raise Timeout(f"The {ACI_PROVIDER} provider did not finish registering in time; check with 'az provider "
                          f"show -n {ACI_PROVIDER} --query registrationState' and re-run.")
        time.sleep(2)


def turn_on_addon(ctx: Ctx, cluster: ClusterView, subnet: str, no_wait: bool) -> ClusterView:
    from azure.cli.core.commands import LongRunningOperation
    poller = set_addon(ctx.clusters, ctx.resource_group, cluster, subnet, no_wait=no_wait)
    if no_wait:
        return ClusterView(poller.result())
    result = LongRunningOperation(ctx.cli_ctx, start_msg="Turning on the ACI connector add-on",
                                  finish_msg="ACI connector add-on enabled")(poller)
    return ClusterView(result)


def wait_for_identity(ctx: Ctx, cluster: ClusterView, deadline: float) -> dict[str, str]:
    identity = connector_identity(ctx, cluster)
    while identity is None:
        if time.monotonic() > deadline:
            raise Timeout(f"Cluster '{ctx.name}' did not report the ACI connector identity in time. Re-run "
                          f"'az aks virtual-node enable {ctx.ids}' to finish.")
        time.sleep(2)
        identity = connector_identity(ctx, ctx.cluster())
    return identity


def ensure_role(ctx: Ctx, identity: dict[str, str], subnet_id: str, cluster: ClusterView, deadline: float) -> None:
    if role_state(ctx, identity, subnet_id)["present"]:
        return
    progress(f"Granting {NETWORK_CONTRIBUTOR} on subnet {subnet_id.rsplit('/', 1)[-1]} to the connector identity "
             f"{identity['objectId']}...")
    ctx.roles.grant_network_contributor(identity["objectId"], subnet_id, cluster.id, "ServicePrincipal", deadline,
                                        on_wait=progress)


def verify_ready(ctx: Ctx, deadline: float, timeout: int) -> None:
    """Watch until the node is registered, Ready, labelled, tainted and its Lease fresh; diagnose on timeout."""
    progress(f"Waiting for node '{ADDON_NODE_NAME}' to register (up to {timeout}s)...")
    try:
        with ctx.kube() as kube:
            from azext_virtualnode.kube import node_facts_from
            kube.wait_node(ADDON_NODE_NAME, deadline,
                           lambda n: node_facts_from(n, None, ADDON_NODE_NAME).registered and
                           _node_ok(node_facts_from(n, None, ADDON_NODE_NAME)))
            kube.wait_lease_fresh(ADDON_NODE_NAME, 40.0, deadline)
    except TimeoutError:
        raise diagnose(ctx, f"The virtual node did not become ready within {timeout}s.") from None
    except ClusterUnreachable as exc:
        raise diagnose(ctx, f"Could not verify the virtual node on the cluster: {exc}.") from None


def _node_ok(n: Any) -> bool:
    return n.ready and n.taint_ok and n.label_ok


def diagnose(ctx: Ctx, headline: str) -> CLIError:
    st = status(ctx)
    lines = [headline]
    for pod in (st.get("connector") or {}).get("pods", []):
        lines.append(f"  connector pod {pod['name']}: {pod['phase']}, ready={pod['ready']}, "
                     f"restarts={pod['restarts']}{', ' + pod['reason'] if pod['reason'] else ''}")
    for event in (st.get("connector") or {}).get("events", [])[-3:]:
        lines.append(f"  event: {event}")
    for p in st["problems"]:
        lines.append(f"  [{p['code']}] {p['message']}\n      -> {p['hint']}")
    lines.append(f"Re-run 'az aks virtual-node status {ctx.ids}' to check again.")
    return Timeout("\n".join(lines))


# -- disable ------------------------------------------------------------------------------------------------
# pylint: disable-next=too-many-positional-arguments
def disable(ctx: Ctx, delete_subnet: bool, force: bool, yes: bool, timeout: int,
            subnet_name: str | None = None, confirm: Callable[[str, bool], None] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    cluster = wait_until_idle(ctx.clusters, ctx.resource_group, ctx.name, ctx.cluster(), deadline,
                              on_wait=progress)
    enabled = cluster.addon_enabled
    name = cluster.addon_subnet or subnet_name or DEFAULT_SUBNET_NAME
    subnet_id = f"{cluster.vnet_id}/subnets/{name}" if cluster.vnet_id else None
    if enabled:
        refuse_if_busy_node(ctx, force)
    marked = [ra for ra in ctx.roles.assignments_at(subnet_id) if _is_marked(ra, subnet_id)] if subnet_id else []
    subnet = ctx.subnets.get(subnet_id) if (subnet_id and delete_subnet) else None
    if subnet is not None:
        facts = SubnetFacts.of(subnet)
        if facts.ip_configurations or not facts.delegated_to_aci:
            raise ValidationError(
                f"Refusing to delete subnet '{name}': it is not a virtual-node subnet (delegated to "
                f"{', '.join(facts.delegations) or 'nothing'}, {facts.ip_configurations} other resource(s) use it). "
                "Nothing was changed; run again without --delete-subnet.")
    result = {"cluster": cluster.id, "addonDisabled": False, "nodeRemoved": None,
              "roleAssignmentsRemoved": [], "subnetDeleted": False}
    if not enabled and not marked and subnet is None:
        progress(f"Virtual nodes are not enabled on cluster '{ctx.name}'; nothing to do.")
        return result
    actions = (["turn off the ACI connector add-on and remove node " + ADDON_NODE_NAME] if enabled else []) + \
        [f"remove {len(marked)} role assignment(s) this extension created"] * bool(marked) + \
        [f"delete subnet '{name}'"] * (subnet is not None)
    (confirm or _confirm)(f"This will {', '.join(actions)} on cluster '{ctx.name}'. Continue?", yes)
    if enabled:
        from azure.cli.core.commands import LongRunningOperation
        LongRunningOperation(ctx.cli_ctx, start_msg="Turning off the ACI connector add-on",
                             finish_msg="ACI connector add-on disabled")(
            set_addon(ctx.clusters, ctx.resource_group, cluster, None))
        result["addonDisabled"] = True
        result["nodeRemoved"] = wait_node_gone(ctx, deadline)
    for ra in marked:
        ctx.roles._client.role_assignments.delete_by_id(ra.id)  # pylint: disable=protected-access
        result["roleAssignmentsRemoved"].append(ra.id)
    if subnet is not None:
        progress(f"Deleting subnet '{name}' (waits until Azure Container Instances releases it)...")
        ctx.subnets.delete_with_retry(subnet_id, deadline, on_wait=progress)
        result["subnetDeleted"] = True
    return result


def _is_marked(ra: Any, scope: str) -> bool:
    from azext_virtualnode._consts import ROLE_MARKER
    return ra.scope.lower() == scope.lower() and (ra.description or "").startswith(ROLE_MARKER)


def _confirm(message: str, yes: bool) -> None:
    from azure.cli.core.util import user_confirmation
    user_confirmation(message, yes)


def refuse_if_busy_node(ctx: Ctx, force: bool) -> None:
    try:
        with ctx.kube() as kube:
            pods = [p for p in kube.pods_on_node(ADDON_NODE_NAME)
                    if not any(r.kind == "DaemonSet" for r in p.metadata.owner_references or [])]
    except ClusterUnreachable as exc:
        if force:
            progress(f"Warning: could not check for pods on the virtual node ({exc}); continuing (--force).")
            return
        raise ValidationError(f"Cannot check whether pods still run on the virtual node: {exc}. Nothing was "
                              "changed. Use --force to disable anyway.") from None
    if pods and not force:
        listing = "\n".join(f"  {p.metadata.namespace}/{p.metadata.name}" for p in pods[:50])
        raise ValidationError(
            f"{len(pods)} pod(s) still run on the virtual node; disabling would delete their container groups:\n"
            f"{listing}\nMove or delete them first, or re-run with --force. Nothing was changed.")


def wait_node_gone(ctx: Ctx, deadline: float) -> bool | None:
    try:
        with ctx.kube() as kube:
            kube.wait_node(ADDON_NODE_NAME, deadline, lambda n: n is None)
        return True
    except TimeoutError:
        raise Timeout(f"The add-on is off but node '{ADDON_NODE_NAME}' is still registered. Re-run 'az aks "
                      f"virtual-node disable {ctx.ids}' to finish, or delete it with 'kubectl delete node "
                      f"{ADDON_NODE_NAME}'.") from None
    except ClusterUnreachable as exc:
        progress(f"Warning: could not confirm the node was removed: {exc}")
        return None


# -- wait ---------------------------------------------------------------------------------------------------
def wait(ctx: Ctx, ready: bool, deleted: bool, timeout: int, interval: int) -> None:
    if ready == deleted:
        raise InvalidArgumentValueError("Specify exactly one of --ready or --deleted.")
    deadline = time.monotonic() + timeout
    cluster = wait_until_idle(ctx.clusters, ctx.resource_group, ctx.name, ctx.cluster(), deadline,
                              interval=interval, on_wait=None)
    if ready and not cluster.addon_enabled:
        raise ValidationError(f"Virtual nodes are not enabled on cluster '{ctx.name}'; nothing to wait for. "
                              f"Run 'az aks virtual-node enable {ctx.ids}'.")
    if deleted and cluster.addon_enabled:
        raise ValidationError(f"Virtual nodes are still enabled on cluster '{ctx.name}'. Run 'az aks virtual-node "
                              f"disable {ctx.ids}' first.")
    if ready:
        verify_ready(ctx, deadline, timeout)
        return
    try:
        with ctx.kube() as kube:
            kube.wait_node(ADDON_NODE_NAME, deadline, lambda n: n is None)
    except TimeoutError:
        raise Timeout(f"Timed out after {timeout}s: node '{ADDON_NODE_NAME}' is still registered.") from None
    except ClusterUnreachable as exc:
        raise Timeout(f"Could not confirm the node was removed: {exc}") from None
