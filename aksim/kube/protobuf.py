"""Decoding of the few protobuf request bodies real clients send (responses are always JSON).

client-go's typed clients send protobuf (``application/vnd.kubernetes.protobuf``) and do not retry as JSON on
415: Helm 3 for its release records (Secrets, or ConfigMaps with the configmap driver) and DeleteOptions, kubectl
for ``kubectl create namespace|secret|configmap|serviceaccount|role|rolebinding|clusterrole|clusterrolebinding|
priorityclass``.
The body is ``k8s\\x00`` + a ``runtime.Unknown`` envelope whose ``raw`` field holds the object; this module knows
the k8s.io/api generated.proto field numbers of exactly those kinds. Other kinds stay unsupported (415), e.g.
``kubectl create deployment`` (``kubectl apply``/``run`` send JSON).
"""
from __future__ import annotations

import base64
import time
from typing import Any, Iterator, Union

MAGIC = b"k8s\x00"

# A schema maps field numbers to (json name, type); a type is a scalar name, a nested schema, ("map", value type)
# or ("list", item type). Scalars: str, bytes (base64 in JSON), int, bool, time (metav1.Time -> RFC 3339).
FieldType = Union[str, dict[int, Any], tuple[str, Any]]
Schema = dict[int, tuple[str, FieldType]]

TIME: Schema = {1: ("seconds", "int"), 2: ("nanos", "int")}
OWNER_REFERENCE: Schema = {1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"), 5: ("apiVersion", "str"),
                           6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")}
OBJECT_META: Schema = {
    1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 5: ("uid", "str"),
    6: ("resourceVersion", "str"), 7: ("generation", "int"), 8: ("creationTimestamp", "time"),
    9: ("deletionTimestamp", "time"), 10: ("deletionGracePeriodSeconds", "int"), 11: ("labels", ("map", "str")),
    12: ("annotations", ("map", "str")), 13: ("ownerReferences", ("list", OWNER_REFERENCE)),
    14: ("finalizers", ("list", "str")),
}
LOCAL_REFERENCE: Schema = {1: ("name", "str")}
OBJECT_REFERENCE: Schema = {1: ("kind", "str"), 2: ("namespace", "str"), 3: ("name", "str"), 4: ("uid", "str"),
                            5: ("apiVersion", "str"), 6: ("resourceVersion", "str"), 7: ("fieldPath", "str")}
POLICY_RULE: Schema = {1: ("verbs", ("list", "str")), 2: ("apiGroups", ("list", "str")),
                       3: ("resources", ("list", "str")), 4: ("resourceNames", ("list", "str")),
                       5: ("nonResourceURLs", ("list", "str"))}
SUBJECT: Schema = {1: ("kind", "str"), 2: ("apiGroup", "str"), 3: ("name", "str"), 4: ("namespace", "str")}
ROLE_REF: Schema = {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str")}
BINDING: Schema = {1: ("metadata", OBJECT_META), 2: ("subjects", ("list", SUBJECT)), 3: ("roleRef", ROLE_REF)}
ROLE: Schema = {1: ("metadata", OBJECT_META), 2: ("rules", ("list", POLICY_RULE))}
KINDS: dict[str, Schema] = {
    "Secret": {1: ("metadata", OBJECT_META), 2: ("data", ("map", "bytes")), 3: ("type", "str"),
               4: ("stringData", ("map", "str")), 5: ("immutable", "bool")},
    "ConfigMap": {1: ("metadata", OBJECT_META), 2: ("data", ("map", "str")), 3: ("binaryData", ("map", "bytes")),
                  4: ("immutable", "bool")},
    "Namespace": {1: ("metadata", OBJECT_META), 2: ("spec", {1: ("finalizers", ("list", "str"))}),
                  3: ("status", {1: ("phase", "str")})},
    "ServiceAccount": {1: ("metadata", OBJECT_META), 2: ("secrets", ("list", OBJECT_REFERENCE)),
                       3: ("imagePullSecrets", ("list", LOCAL_REFERENCE)),
                       4: ("automountServiceAccountToken", "bool")},
    "Role": ROLE,
    "ClusterRole": ROLE,
    "RoleBinding": BINDING,
    "ClusterRoleBinding": BINDING,
    "PriorityClass": {1: ("metadata", OBJECT_META), 2: ("value", "int"), 3: ("globalDefault", "bool"),
                      4: ("description", "str"), 5: ("preemptionPolicy", "str")},
    "DeleteOptions": {1: ("gracePeriodSeconds", "int"),
                      2: ("preconditions", {1: ("uid", "str"), 2: ("resourceVersion", "str")}),
                      3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "str"), 5: ("dryRun", ("list", "str"))},
    # kubectl auth can-i
    "SelfSubjectAccessReview": {1: ("metadata", OBJECT_META), 2: ("spec", {
        1: ("resourceAttributes", {1: ("namespace", "str"), 2: ("verb", "str"), 3: ("group", "str"),
                                   4: ("version", "str"), 5: ("resource", "str"), 6: ("subresource", "str"),
                                   7: ("name", "str")}),
        2: ("nonResourceAttributes", {1: ("path", "str"), 2: ("verb", "str")})})},
}
_UNKNOWN: Schema = {1: ("typeMeta", {1: ("apiVersion", "str"), 2: ("kind", "str")}), 2: ("raw", "raw"),
                    3: ("contentEncoding", "str"), 4: ("contentType", "str")}


class ProtobufError(ValueError):
    pass


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object; ProtobufError for kinds this module does not know."""
    if not body.startswith(MAGIC):
        raise ProtobufError("protobuf body without the k8s envelope")
    envelope = _decode(body[len(MAGIC):], _UNKNOWN)
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    if kind not in KINDS or envelope.get("contentEncoding"):
        raise ProtobufError(f"protobuf bodies of kind {kind or '<none>'} are not supported")
    obj = _decode(envelope.get("raw", b""), KINDS[kind])
    return {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}


def _decode(data: bytes | memoryview, schema: Schema) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for number, wire_type, value in _fields(data):
        if number not in schema:
            continue
        name, field_type = schema[number]
        if isinstance(field_type, tuple):
            container, inner = field_type
            if container == "map":
                entry = _decode(value, {1: ("key", "str"), 2: ("value", inner)})
                result.setdefault(name, {})[entry.get("key", "")] = entry.get("value", _zero(inner))
            else:
                result.setdefault(name, []).append(_scalar(value, wire_type, inner))
        elif field_type != "time" or len(value):       # a zero metav1.Time is sent as an empty message
            scalar = _scalar(value, wire_type, field_type)
            if scalar not in ("", 0, False) or isinstance(field_type, dict):   # as JSON's omitempty
                result[name] = scalar
    return result


def _scalar(value: Any, wire_type: int, field_type: FieldType) -> Any:
    if isinstance(field_type, dict):
        return _decode(value, field_type)
    if field_type == "str":
        return bytes(value).decode()
    if field_type == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if field_type == "raw":
        return bytes(value)
    if field_type == "time":
        seconds = _decode(value, TIME).get("seconds", 0)
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    if wire_type != 0:
        raise ProtobufError(f"unexpected wire type {wire_type} for a {field_type} field")
    if field_type == "bool":
        return bool(value)
    return value - (1 << 64) if value >= 1 << 63 else value       # int64 two's complement


def _zero(field_type: FieldType) -> Any:
    return {"str": "", "bytes": "", "int": 0, "bool": False}.get(field_type, None)  # type: ignore[arg-type]


def _fields(data: bytes | memoryview) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) with length-delimited values as memoryviews."""
    view, pos = memoryview(data), 0
    while pos < len(view):
        key, pos = _varint(view, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(view, pos)
        elif wire_type == 2:
            length, pos = _varint(view, pos)
            value, pos = view[pos:pos + length], pos + length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, pos = int.from_bytes(view[pos:pos + size], "little"), pos + size
        else:
            raise ProtobufError(f"unsupported protobuf wire type {wire_type}")
        if pos > len(view):
            raise ProtobufError("truncated protobuf message")
        yield number, wire_type, value


def _varint(view: memoryview, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(view):
            raise ProtobufError("truncated protobuf varint")
        byte = view[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
