"""apiextensions-apiserver, the part a chart's CRD needs: a created CustomResourceDefinition is accepted and
Established, and its served versions are served from then on (discovery, CRUD, watch, tables with the default
columns). Deleting the CRD deletes its objects but the kind stays served until the world is reloaded (the store
cannot drop a type); schemas are not validated.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from aksim.controlplane.podutil import Obj
from aksim.controlplane.base import now_rfc3339
from aksim.kube.store import DELETED, ResourceType

if TYPE_CHECKING:
    from aksim.controlplane.base import Runtime

RESOURCE = "customresourcedefinitions.apiextensions.k8s.io"


def resource_types(crd: Obj) -> list[ResourceType]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    return [ResourceType(names.get("plural", ""), names.get("kind", ""), spec.get("group", ""), v["name"],
                         namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                         short_names=tuple(names.get("shortNames") or ()),
                         subresources=tuple(s for s in ("status", "scale") if s in (v.get("subresources") or {})),
                         categories=tuple(names.get("categories") or ()))
            for v in spec.get("versions") or [] if v.get("served", True) and v.get("name")]


class CustomResources:
    def __init__(self, cp: "Runtime") -> None:
        self.cp = cp

    def on_crd(self, event_type: str, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        if event_type == DELETED:
            self.cp.later(self.cp.timings.controller, lambda: self._delete_objects(crd))
            return
        for rtype in resource_types(crd):
            self.cp.store.register(rtype)
        if any(c.get("type") == "Established" for c in (crd.get("status") or {}).get("conditions") or []):
            return
        self.cp.later(self.cp.timings.controller, lambda: self._establish(name))

    def _establish(self, name: str) -> None:
        crd = self.cp.store.get_ref(RESOURCE, None, name)
        if crd is None:
            return
        now = now_rfc3339()
        names = (crd.get("spec") or {}).get("names") or {}
        status = {"acceptedNames": dict(names), "storedVersions": [
            v["name"] for v in (crd.get("spec") or {}).get("versions") or [] if v.get("storage")],
            "conditions": [{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                            "message": "no conflicts found", "lastTransitionTime": now},
                           {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                            "message": "the initial names have been accepted", "lastTransitionTime": now}]}
        self.cp.store.mutate(RESOURCE, None, name, lambda o: o.update(status=status))

    def _delete_objects(self, crd: Obj) -> None:
        if self.cp.store.get_ref(RESOURCE, None, crd["metadata"]["name"]) is not None:
            return                      # created again meanwhile
        for rtype in resource_types(crd):
            for obj in self.cp.store.list(rtype.key):
                self.cp.store.delete(rtype.key, obj["metadata"].get("namespace"), obj["metadata"]["name"])
