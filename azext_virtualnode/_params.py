from azext_virtualnode._consts import DEFAULT_SUBNET_NAME, DEFAULT_TIMEOUT
from azext_virtualnode._validators import validate_enable, validate_positive, validate_subnet_name, validate_wait


def load_arguments(self, _):
    from azure.cli.core.commands.parameters import get_three_state_flag

    with self.argument_context("aks virtual-node") as c:
        c.argument("name", options_list=["--name", "-n"], help="Name of the managed cluster.")
        c.argument("timeout", type=int, help="Seconds to wait for the operation and the virtual node.")

    with self.argument_context("aks virtual-node enable", validator=validate_enable) as c:
        c.argument("subnet_name", help=f"Name of the virtual-node subnet in the cluster's virtual network. Created "
                   f"and delegated to Azure Container Instances if it does not exist. Default: "
                   f"the add-on's current subnet, else '{DEFAULT_SUBNET_NAME}'.")
        c.argument("subnet_cidr", help="Address prefix for a new virtual-node subnet, e.g. 10.241.0.0/16. Default: "
                   "the first free /20 (or smaller) block of the virtual network.")
        c.argument("skip_role_assignment", arg_type=get_three_state_flag(),
                   help="Do not grant the connector identity Network Contributor on the subnet (for organisations "
                   "where an administrator grants roles).")
        c.argument("timeout", type=int, default=DEFAULT_TIMEOUT,
                   help="Seconds to wait for the add-on and for the node to register.")

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
                   help="Wait until the add-on is off and the virtual node is gone.")
        c.argument("timeout", type=int, default=DEFAULT_TIMEOUT, help="Maximum seconds to wait.")
        c.argument("interval", type=int, default=10, help="Seconds between checks of the cluster's Azure state.")
