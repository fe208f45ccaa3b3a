"""RBAC evaluation and role-assignment naming (pure functions)."""
from azext_virtualnode.roles import (MissingRight, action_allowed, assignment_name, missing_rights_error,
                                     scope_covers)

OWNER = [{"actions": ["*"], "notActions": []}]
CONTRIBUTOR = [{"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                                                 "Microsoft.Authorization/elevateAccess/Action"]}]
NETWORK = [{"actions": ["Microsoft.Network/*", "Microsoft.Resources/subscriptions/resourceGroups/read"],
            "notActions": []}]


def test_action_allowed_wildcards_and_not_actions():
    write = "Microsoft.Authorization/roleAssignments/write"
    assert action_allowed(write, OWNER)
    assert not action_allowed(write, CONTRIBUTOR)
    assert action_allowed("Microsoft.Network/virtualNetworks/subnets/write", CONTRIBUTOR)
    assert action_allowed("microsoft.network/virtualnetworks/subnets/write", NETWORK)
    assert not action_allowed("Microsoft.ContainerService/managedClusters/write", NETWORK)
    assert action_allowed(write, CONTRIBUTOR + OWNER)  # any permission block may grant it


def test_scope_covers_ancestors_only():
    subnet = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a"
    assert scope_covers("/subscriptions/s", subnet)
    assert scope_covers("/subscriptions/s/resourcegroups/RG", subnet)
    assert scope_covers(subnet, subnet)
    assert not scope_covers(subnet + "b", subnet)
    assert not scope_covers(subnet, "/subscriptions/s/resourceGroups/rg")


def test_assignment_name_is_deterministic_per_scope_principal_role():
    a = assignment_name("/x", "p", "r")
    assert a == assignment_name("/X", "p", "r")
    assert a != assignment_name("/x", "q", "r")


def test_missing_rights_error_names_action_scope_and_command():
    err = missing_rights_error([MissingRight("Microsoft.Authorization/roleAssignments/write", "/vnet",
                                             "User Access Administrator")], "oid-1")
    text = str(err)
    assert "roleAssignments/write' on /vnet" in text
    assert 'az role assignment create --assignee-object-id oid-1 --assignee-principal-type ServicePrincipal ' \
           '--role "User Access Administrator" --scope /vnet' in text
    assert "--skip-role-assignment" in text
