from azext_virtualnode._format import migrate_table_format, status_table_format


def load_command_table(self, _):
    with self.command_group("aks virtual-node", is_preview=True) as g:
        g.custom_command("enable", "enable_virtual_node", supports_no_wait=True, table_transformer=status_table_format)
        g.custom_command("disable", "disable_virtual_node")
        g.custom_show_command("status", "virtual_node_status", table_transformer=status_table_format)
        g.custom_command("wait", "wait_virtual_node")
        g.custom_command("place", "place_workload")
        g.custom_command("prune", "prune_virtual_node")
        g.custom_command("scale", "scale_virtual_node", supports_no_wait=True)
        g.custom_command("migrate", "migrate_virtual_node", table_transformer=migrate_table_format)
