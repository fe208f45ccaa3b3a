"""Label and field selectors with the syntax and semantics of k8s.io/apimachinery.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a``, ``!a``, comma-joined.
Field selectors: ``path=value``, ``path==value``, ``path!=value``, comma-joined; ``path`` is any dotted path
into the object (a missing field compares as the empty string, as on a real server). Backslash escapes
(``\\,`` ``\\=`` ``\\\\``) in field values are honoured.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS, NOT_EXISTS = "=", "!=", "in", "notin", "exists", "!"

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                  r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class SelectorError(ValueError):
    """A selector that does not parse; the API answers 400 BadRequest with this message."""


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == EXISTS:
            return present
        if self.op == NOT_EXISTS:
            return not present
        if self.op in (EQUALS, IN):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values   # != and notin

    @property
    def indexable(self) -> bool:
        """Whether matching objects are exactly those under (key, value) for some of ``values``."""
        return self.op in (EQUALS, IN)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    op: str
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        equal = field_value(obj, self.path) == self.value
        return equal if self.op == EQUALS else not equal


LabelSelector = tuple[LabelRequirement, ...]
FieldSelector = tuple[FieldRequirement, ...]


def parse_label_selector(text: str | None) -> LabelSelector:
    text = (text or "").strip()
    if not text:
        return ()
    return tuple(_parse_label_requirement(part) for part in _split_label_terms(text))


def _split_label_terms(text: str) -> list[str]:
    """Split on commas that are not inside a parenthesised value set."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unable to parse requirement: unexpected ')' in {text!r}")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if depth:
        raise SelectorError(f"unable to parse requirement: missing ')' in {text!r}")
    parts.append(current)
    return [p.strip() for p in parts]


_SET_TERM = re.compile(r"^(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ_TERM = re.compile(r"^(?P<key>[^\s!=()]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)$")
_EXISTS_TERM = re.compile(r"^(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)$")


def _parse_label_requirement(term: str) -> LabelRequirement:
    if not term:
        raise SelectorError("unable to parse requirement: found '', expected: identifier")
    if m := _SET_TERM.match(term):
        values = tuple(sorted({v.strip() for v in m["values"].split(",") if v.strip()}))
        if not values:
            raise SelectorError("unable to parse requirement: for 'in', 'notin' operators, values set can't be empty")
        for value in values:
            _check_label_value(value)
        return LabelRequirement(_check_key(m["key"]), m["op"], values)
    if m := _EQ_TERM.match(term):
        op = NOT_EQUALS if m["op"] == "!=" else EQUALS
        return LabelRequirement(_check_key(m["key"]), op, (_check_label_value(m["value"]),))
    if m := _EXISTS_TERM.match(term):
        return LabelRequirement(_check_key(m["key"]), NOT_EXISTS if m["neg"] else EXISTS)
    raise SelectorError(f"unable to parse requirement: {term!r}")


def _check_key(key: str) -> str:
    if not _KEY.match(key):
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r}: name part must consist of "
                            "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                            "alphanumeric character")
    return key


def _check_label_value(value: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(f"unable to parse requirement: invalid label value: {value!r}: a valid label must be an "
                            "empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
                            "and end with an alphanumeric character")
    return value


def invalid_labels(labels: Mapping[str, str]) -> str | None:
    """Why a label map is invalid (bad key or value), or None."""
    for key, value in labels.items():
        if not isinstance(key, str) or not _KEY.match(key):
            return f"invalid label key {key!r}"
        if not isinstance(value, str) or len(value) > 63 or not _VALUE.match(value):
            return f"invalid label value {value!r} for key {key!r}"
    return None


def matches_labels(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(req.matches(labels) for req in selector)


def parse_field_selector(text: str | None) -> FieldSelector:
    text = (text or "").strip()
    if not text:
        return ()
    return tuple(_parse_field_term(term) for term in _split_unescaped(text, ","))


def _parse_field_term(term: str) -> FieldRequirement:
    for op_text, op in (("!=", NOT_EQUALS), ("==", EQUALS), ("=", EQUALS)):
        idx = _find_unescaped(term, op_text)
        if idx >= 0:
            path = term[:idx].strip()
            if not path:
                break
            return FieldRequirement(path, op, _unescape(term[idx + len(op_text):]))
    raise SelectorError(f"invalid selector: '{term}'; can't understand '{term}'")


def _find_unescaped(text: str, needle: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(needle, i):
            return i
        i += 1
    return -1


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts = []
    while (idx := _find_unescaped(text, sep)) >= 0:
        parts.append(text[:idx])
        text = text[idx + 1:]
    parts.append(text)
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a dotted field, "" when absent (how a real server compares missing fields)."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return ""
        current = current[part]
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return current if isinstance(current, str) else str(current)


def matches_fields(selector: FieldSelector, obj: Mapping[str, Any]) -> bool:
    return all(req.matches(obj) for req in selector)


def label_selector_string(selector: Mapping[str, Any] | None) -> str:
    """Render a metav1.LabelSelector (``matchLabels`` / ``matchExpressions``) in selector syntax."""
    if not selector:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(sorted(values))})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(sorted(values))})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)
