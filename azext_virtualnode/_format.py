"""Table output (-o table) for the status object."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any


def status_table_format(result: dict[str, Any] | None) -> list[OrderedDict[str, Any]]:
    if not result:
        return []
    node = result.get("node") or {}
    subnet = result.get("subnet") or {}
    role = result.get("roleAssignment") or {}
    pods = (result.get("connector") or {}).get("pods") or []
    connector = ", ".join(f"{p['phase']}{'' if p['ready'] else ' (not ready)'} restarts={p['restarts']}"
                          for p in pods) or ("-" if result.get("connector") is None else "none")
    row = OrderedDict([
        ("Cluster", (result.get("cluster") or {}).get("name")),
        ("Mode", result.get("mode")),
        ("Healthy", result.get("healthy")),
        ("Subnet", f"{subnet.get('name')} {subnet.get('prefix') or '(missing)'}" if subnet else "-"),
        ("Role", role.get("role") if role.get("present") else ("missing" if role else "-")),
        ("Connector", connector),
        ("Node", _node_state(node)),
        ("PodsOnNode", (result.get("workload") or {}).get("pods", "-")),
        ("Problems", ", ".join(p["code"] for p in result.get("problems") or []) or "none"),
    ])
    return [row]


def _node_state(node: dict[str, Any]) -> str:
    if not node:
        return "-"
    if not node.get("registered"):
        return "not registered"
    state = "Ready" if node.get("ready") else "NotReady"
    age = node.get("leaseAgeSeconds")
    return f"{node['name']} {state}" + (f" lease {age:.0f}s" if age is not None else " no lease")


def migrate_table_format(result: dict[str, Any] | None) -> list[OrderedDict[str, Any]]:
    """``migrate -o table``: the plan one row per workload (--dry-run); after a run, the status row with the
    migration's outcome."""
    if not result:
        return []
    if result.get("dryRun"):
        workloads = result.get("workloads") or {}
        rows = [OrderedDict([("Workload", w["workload"]), ("Namespace", w["namespace"]), ("Plan", "re-place"),
                             ("Policy", w["policy"]), ("PodsOnLegacyNode", w["podsOnLegacyNode"]),
                             ("Detail", w.get("availabilityRisk") or w["how"])])
                for w in workloads.get("replace") or []]
        rows += [OrderedDict([("Workload", s["workload"]), ("Namespace", s["namespace"]), ("Plan", "cannot move"),
                              ("Policy", "-"), ("PodsOnLegacyNode", len(s.get("pods") or [])),
                              ("Detail", s["reason"])])
                 for s in workloads.get("notMovable") or []]
        return rows
    migration = result.get("migration") or {}
    rows = status_table_format(result)
    for row in rows:
        row["Migrated"] = "nothing to do" if migration.get("nothingToDo") else \
            f"{len(migration.get('moved') or [])} moved, {len(migration.get('skipped') or [])} skipped"
        row["LegacyRemoved"] = migration.get("connectorRemoved")
    return rows
