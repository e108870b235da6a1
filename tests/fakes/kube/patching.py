"""The three PATCH formats the fake API server accepts.

* ``application/merge-patch+json`` — RFC 7386: maps merge recursively, ``null``
  deletes a key, anything else (lists included) replaces.
* ``application/strategic-merge-patch+json`` — treated exactly like a merge patch.
  The real server merges some lists by key (``containers`` by ``name``, ...) and
  honours ``$patch`` directives; the double does not, so a strategic patch that
  touches a list replaces the whole list. Patching maps (labels, annotations,
  status) behaves as in Kubernetes, which is what the project needs.
* ``application/json-patch+json`` — RFC 6902 operations (add, remove, replace,
  move, copy, test) with RFC 6901 pointers.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied to the object (the server answers 422)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch and return the result (inputs untouched)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(document: Any, operations: list[Any]) -> Any:
    """Apply RFC 6902 operations in order and return the result (input untouched)."""
    doc = copy.deepcopy(document)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation: {op!r}")
        doc = _apply_operation(doc, op)
    return doc


def _apply_operation(doc: Any, op: dict[str, Any]) -> Any:
    kind, path = op["op"], _parse_pointer(op["path"])
    if kind == "add":
        return _add(doc, path, copy.deepcopy(_required(op, "value")))
    if kind == "remove":
        _remove(doc, path)
        return doc
    if kind == "replace":
        _resolve(doc, path)  # the target must exist
        if not path:
            return copy.deepcopy(_required(op, "value"))
        _remove(doc, path)
        return _add(doc, path, copy.deepcopy(_required(op, "value")))
    if kind in ("move", "copy"):
        source = _parse_pointer(_required(op, "from"))
        value = copy.deepcopy(_resolve(doc, source))
        if kind == "move":
            _remove(doc, source)
        return _add(doc, path, value)
    if kind == "test":
        if _resolve(doc, path) != _required(op, "value"):
            raise PatchError(f"testing value {op['path']} failed")
        return doc
    raise PatchError(f"unknown JSON patch operation {kind!r}")


def _required(op: dict[str, Any], key: str) -> Any:
    if key not in op:
        raise PatchError(f"JSON patch operation {op['op']!r} needs {key!r}")
    return op[key]


def _parse_pointer(pointer: Any) -> list[str]:
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    if pointer == "":
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _resolve(doc: Any, path: list[str]) -> Any:
    for part in path:
        doc = _child(doc, part)
    return doc


def _child(container: Any, part: str) -> Any:
    if isinstance(container, dict):
        if part not in container:
            raise PatchError(f"missing key {part!r}")
        return container[part]
    if isinstance(container, list):
        return container[_index(container, part, allow_end=False)]
    raise PatchError(f"cannot descend into {type(container).__name__} at {part!r}")


def _index(items: list[Any], part: str, *, allow_end: bool) -> int:
    if allow_end and part == "-":
        return len(items)
    if not part.isdigit():
        raise PatchError(f"invalid list index {part!r}")
    index = int(part)
    if index > len(items) or (index == len(items) and not allow_end):
        raise PatchError(f"list index {index} out of range")
    return index


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _resolve(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise PatchError(f"cannot add to {type(parent).__name__}")
    return doc


def _remove(doc: Any, path: list[str]) -> None:
    if not path:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"missing key {last!r}")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, allow_end=False)]
    else:
        raise PatchError(f"cannot remove from {type(parent).__name__}")
