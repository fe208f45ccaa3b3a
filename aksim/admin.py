"""Admin API on the side endpoint: request logs, fault rules, scenario reload, API-server outages, timings."""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aksim.httpcore import FaultRule, HttpError, Request, Response

if TYPE_CHECKING:
    from aksim.context import AdminContext
    from aksim.world import Cluster


def register(sim: "AdminContext") -> None:
    r = sim.admin_router

    def info(_req: Request) -> Response:
        with sim.lock:
            clusters = [{"id": c.resource_id, "name": c.name, "resourceGroup": c.resource_group,
                         "apiServer": c.kube_endpoint.url if c.kube_endpoint else None,
                         "apiServerUp": bool(c.kube_endpoint and c.kube_endpoint.running)}
                        for c in sim.world.clusters.values()]
            return Response(200, {"scenario": sim.scenario.name, "arm": sim.arm_url,
                                  "subscription": sim.scenario.subscription_id,
                                  "tenant": sim.scenario.tenant_id, "clusters": clusters,
                                  "timings": asdict(sim.timings)})

    def requests(req: Request) -> Response:
        return Response(200, sim.request_log(req.q("endpoint", "arm") or "arm"))

    def reset_requests(_req: Request) -> Response:
        sim.reset_logs()
        return Response(204)

    def list_faults(_req: Request) -> Response:
        return Response(200, {"value": [rule.as_dict() for rule in sim.faults.rules]})

    def add_fault(req: Request) -> Response:
        body = req.json() or {}
        try:
            rule = FaultRule(**{k: v for k, v in body.items() if k != "hits"})
        except TypeError as exc:
            raise HttpError(400, "InvalidFault", str(exc)) from exc
        sim.faults.add(rule)
        return Response(201, rule.as_dict())

    def clear_faults(_req: Request) -> Response:
        sim.faults.clear()
        return Response(204)

    def load(req: Request) -> Response:
        body = req.json() or {}
        source: Any = body.get("scenario")
        if not source:
            raise HttpError(400, "InvalidScenario", "body must be {\"scenario\": <file name or inline mapping>}")
        try:
            sim.load(source)
        except (OSError, ValueError) as exc:
            raise HttpError(400, "InvalidScenario", str(exc)) from exc
        return info(req)

    def apiserver(req: Request) -> Response:
        body = req.json() or {}
        cluster = _cluster(sim, req.params["rg"], req.params["name"])
        assert cluster.kube_endpoint is not None
        if body.get("up", True):
            if not cluster.kube_endpoint.running:
                cluster.kube_endpoint.start()
        else:
            cluster.kube_endpoint.stop()
        return Response(200, {"apiServerUp": cluster.kube_endpoint.running})

    def timings(req: Request) -> Response:
        body = req.json() or {}
        with sim.lock:
            try:
                sim.timings.update(body)
            except ValueError as exc:
                raise HttpError(400, "InvalidTiming", str(exc)) from None
            return Response(200, asdict(sim.timings))

    r.add("GET", "/_admin", info)
    r.add("GET", "/_admin/requests", requests)
    r.add("POST|DELETE", "/_admin/requests/reset", reset_requests)
    r.add("GET", "/_admin/faults", list_faults)
    r.add("POST", "/_admin/faults", add_fault)
    r.add("DELETE", "/_admin/faults", clear_faults)
    r.add("POST", "/_admin/scenario", load)
    r.add("POST", "/_admin/clusters/{rg}/{name}/apiserver", apiserver)
    r.add("POST|PATCH", "/_admin/timings", timings)


def _cluster(sim: "AdminContext", rg: str, name: str) -> "Cluster":
    with sim.lock:
        for cluster in sim.world.clusters.values():
            if cluster.name.lower() == name.lower() and cluster.resource_group.lower() == rg.lower():
                return cluster
    raise HttpError(404, "ClusterNotFound", f"no simulated cluster {rg}/{name}")
