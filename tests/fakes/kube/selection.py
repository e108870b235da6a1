"""Label and field selectors, parsed and matched the way the API server does.

Label selectors: comma-separated requirements ``a=b``, ``a==b``, ``a!=b``,
``a`` (exists), ``!a`` (does not exist), ``a in (x,y)``, ``a notin (x,y)``.
As in Kubernetes, ``!=`` and ``notin`` also match objects without the label.

Field selectors: ``field=value``, ``field==value``, ``field!=value`` over a small
per-resource set of fields (``metadata.name`` and ``metadata.namespace`` always);
any other field is refused with 400, as the real server does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .admission import label_key_errors, label_value_errors


class SelectorError(ValueError):
    """A selector the server cannot parse (the server answers 400 BadRequest)."""


@dataclass(frozen=True)
class Requirement:
    """One label requirement: ``key`` ``op`` ``values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


_SET_RE = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)\s*$")


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse a label selector; an empty string selects everything."""
    return [_parse_requirement(term) for term in _split_terms(text)]


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    return all(req.matches(labels or {}) for req in requirements)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside ``( ... )``."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    if depth != 0:
        raise SelectorError(f"unable to parse requirement: unbalanced parentheses in {text!r}")
    return [term for term in terms if term.strip()]


def _parse_requirement(term: str) -> Requirement:
    if match := _SET_RE.match(term):
        values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
        return _checked(Requirement(match["key"], match["op"], values))
    if match := _EQ_RE.match(term):
        op = "=" if match["op"] == "==" else match["op"]
        return _checked(Requirement(match["key"], op, frozenset({match["value"]})))
    if match := _EXISTS_RE.match(term):
        return _checked(Requirement(match["key"], "!exists" if match["neg"] else "exists"))
    raise SelectorError(f"unable to parse requirement: {term!r}")


def _checked(req: Requirement) -> Requirement:
    problems = label_key_errors(req.key)
    for value in req.values:
        problems += label_value_errors(value)
    if problems:
        raise SelectorError(f"unable to parse requirement: {req.key!r}: {'; '.join(problems)}")
    return req


# The fields each resource supports in field selectors (a subset of Kubernetes').
_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
FIELD_SELECTABLE: dict[str, tuple[str, ...]] = {
    "pods": ("spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName", "status.phase", "status.podIP"),
    "jobs": ("status.successful",),
    "secrets": ("type",),
    "events": (
        "involvedObject.kind",
        "involvedObject.name",
        "involvedObject.namespace",
        "involvedObject.uid",
        "reason",
        "type",
    ),
}


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    negate: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (_field_value(obj, self.path) == self.value) != self.negate


def parse_field_selector(text: str, resource: str) -> list[FieldRequirement]:
    allowed = _COMMON_FIELDS + FIELD_SELECTABLE.get(resource, ())
    requirements = []
    for term in _split_terms(text):
        match = re.match(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not match:
            raise SelectorError(f"invalid selector: {term!r}; can't understand {term!r}")
        path, op, value = match.groups()
        if path not in allowed:
            raise SelectorError(f'field label not supported: "{path}"')
        requirements.append(FieldRequirement(path, op == "!=", value))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(req.matches(obj) for req in requirements)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)
