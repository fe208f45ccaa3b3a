"""The three PATCH flavours of kube-apiserver: JSON merge (RFC 7386), JSON patch (RFC 6902) and strategic merge.

Strategic merge knows the merge keys of the built-in types by field name (and, where the same name means
different things, by path): ``containers``/``env``/``volumes`` by name, ``volumeMounts`` by mountPath,
container ``ports`` by containerPort, service ``ports`` by port, ``conditions`` by type, ``ownerReferences``
by uid, ``finalizers`` as a merged set. Other lists are replaced, as for fields without a patch strategy.
Directives: ``$patch: replace|delete|merge``, ``$retainKeys``, ``$setElementOrder/<field>``,
``$deleteFromPrimitiveList/<field>``.
"""
from __future__ import annotations

import copy
import json
from typing import Any

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)
_NOT_AN_OBJECT = "json: cannot unmarshal into Go value of type map[string]interface {}"


class PatchError(ValueError):
    """``status`` 400 when the patch does not decode, 422 when it does not apply."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def apply_patch(content_type: str, target: dict[str, Any], body: bytes) -> dict[str, Any]:
    try:
        patch = json.loads(body or b"null")
    except ValueError as exc:
        raise PatchError(f"error decoding patch: {exc}", 400) from exc
    if content_type == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise PatchError(_NOT_AN_OBJECT, 400)
    if content_type == MERGE_PATCH:
        return merge_patch(target, patch)
    return strategic_merge_patch(target, patch)


# ------------------------------------------------------------------------------------------- merge patch

def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ------------------------------------------------------------------------------------------- json patch

def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch", 400)
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}", 400)
        doc = _json_patch_op(doc, op)
    return doc


def _json_patch_op(doc: Any, op: dict[str, Any]) -> Any:
    name = op["op"]
    path = _pointer(op.get("path"))
    if name == "add":
        return _add(doc, path, copy.deepcopy(_value(op)))
    if name == "remove":
        return _remove(doc, path)[0]
    if name == "replace":
        doc, _old = _remove(doc, path)
        return _add(doc, path, copy.deepcopy(_value(op)))
    if name in ("move", "copy"):
        source = _pointer(op.get("from"))
        value = copy.deepcopy(_get(doc, source))
        if name == "move":
            doc = _remove(doc, source)[0]
        return _add(doc, path, value)
    if name == "test":
        if _get(doc, path) != _value(op):
            raise PatchError(f"testing value {op.get('path')} failed: test failed")
        return doc
    raise PatchError(f"Unexpected kind: {name}", 400)


def _value(op: dict[str, Any]) -> Any:
    if "value" not in op:
        raise PatchError(f"missing value for {op['op']} operation at {op.get('path')}", 400)
    return op["value"]


def _pointer(text: Any) -> list[str]:
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise PatchError(f"invalid JSON pointer: {text!r}", 400)
    return [part.replace("~1", "/").replace("~0", "~") for part in text.split("/")[1:]]


def _parent(doc: Any, path: list[str]) -> Any:
    if not path:
        raise PatchError("operation on the document root is not supported")
    return _get(doc, path[:-1])


def _get(doc: Any, path: list[str]) -> Any:
    current = doc
    for part in path:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(path)}: missing value")
    return current


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent, last = _parent(doc, path), path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        index = len(parent) if last == "-" else _index(last, len(parent) + 1)
        parent.insert(index, value)
    else:
        raise PatchError(f"doc is missing path: /{'/'.join(path)}: missing value")
    return doc


def _remove(doc: Any, path: list[str]) -> tuple[Any, Any]:
    parent, last = _parent(doc, path), path[-1]
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(last, len(parent)))
    raise PatchError(f"doc is missing path: /{'/'.join(path)}: missing value")


def _index(part: str, bound: int) -> int:
    if not part.isdigit() or int(part) >= bound:
        raise PatchError(f"Unable to access invalid index: {part}")
    return int(part)


# ------------------------------------------------------------------------------------------- strategic merge

_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name",
    "hostAliases": "ip", "conditions": "type", "ownerReferences": "uid", "resourceClaims": "name",
    "schedulingGates": "name", "topologySpreadConstraints": "topologyKey",
}
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_MERGED_SETS = ("finalizers",)
_SET_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def merge_key(path: tuple[str, ...]) -> str | None:
    """The patchMergeKey of the list at ``path`` (map keys from the root, list positions left out)."""
    name = path[-1] if path else ""
    if name == "ports":
        if any(part in _CONTAINER_LISTS for part in path):
            return "containerPort"
        return "port" if path == ("spec", "ports") else None
    if name == "addresses":
        return "type" if path == ("status", "addresses") else None
    return _MERGE_KEYS.get(name)


def strategic_merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    result = _merge_map(copy.deepcopy(target), copy.deepcopy(patch), ())
    return result if isinstance(result, dict) else {}


def _merge_map(original: Any, patch: dict[str, Any], path: tuple[str, ...]) -> Any:
    directive = patch.pop("$patch", None)
    if directive == "replace":
        return _strip_directives(patch)
    if directive == "delete":
        return None
    result = original if isinstance(original, dict) else {}
    retain = patch.pop("$retainKeys", None)
    orders = {k[len(_SET_ORDER):]: patch.pop(k) for k in list(patch) if k.startswith(_SET_ORDER)}
    removals = {k[len(_DELETE_PRIMITIVE):]: patch.pop(k) for k in list(patch) if k.startswith(_DELETE_PRIMITIVE)}
    for key, values in removals.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in values]
    for key, value in patch.items():
        result_value = _merge_value(result.get(key), value, path + (key,))
        if result_value is None:
            result.pop(key, None)
        else:
            result[key] = result_value
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _ordered(result[key], order, merge_key(path + (key,)))
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_value(original: Any, patch: Any, path: tuple[str, ...]) -> Any:
    if patch is None:
        return None
    if isinstance(patch, dict):
        return _merge_map(original, patch, path)
    if isinstance(patch, list):
        return _merge_list(original if isinstance(original, list) else [], patch, path)
    return patch


def _merge_list(original: list[Any], patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip_directives(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    if path[-1] in _MERGED_SETS:
        return original + [item for item in patch if item not in original]
    key = merge_key(path)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return [_strip_directives(item) for item in patch]
    result = list(original)
    for item in patch:
        index = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item.get(key)),
                     None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_strip_directives(item))
        else:
            result[index] = _merge_map(result[index], item, path)
    return result


def _ordered(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else json.dumps(item, sort_keys=True)

    rank = {ident(item): pos for pos, item in enumerate(order)}
    return sorted(items, key=lambda item: rank.get(ident(item), len(rank)))


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if not (k.startswith("$setElementOrder/") or k in ("$patch", "$retainKeys")
                        or k.startswith(_DELETE_PRIMITIVE))}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value
