"""One module per connector kind: what differs between the add-on, the legacy chart and Virtual Nodes v2."""
