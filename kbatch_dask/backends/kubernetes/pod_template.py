"""The admin's pod template (``kbatch.kubernetes.pod-template``) merged into a job's pod spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_pod_template(pod_spec: Mapping[str, Any], template: Mapping[str, Any], driver: str) -> dict[str, Any]:
    """Merge an admin's pod-spec fragment into ``pod_spec``.

    Mappings merge key by key; lists of named items (volumes, containers,
    volumeMounts, env) merge by ``name``; other values from the template
    replace ours. The template's first container applies to the ``driver`` container.

    >>> merge_pod_template({"nodeSelector": {"a": "1"}, "volumes": [{"name": "v", "emptyDir": {}}]},
    ...                    {"nodeSelector": {"b": "2"}, "volumes": [{"name": "w", "emptyDir": {}}]}, "driver")
    {'nodeSelector': {'a': '1', 'b': '2'}, 'volumes': [{'name': 'v', 'emptyDir': {}}, {'name': 'w', 'emptyDir': {}}]}
    """
    template = dict(template)
    containers = template.pop("containers", None)
    if containers:
        template["containers"] = [{**containers[0], "name": driver}, *containers[1:]]
    merged: dict[str, Any] = _merge(dict(pod_spec), template)
    return merged


def combine_templates(first: Mapping[str, Any], then: Mapping[str, Any], driver: str) -> dict[str, Any]:
    """One template that merges as ``first`` merged, then ``then`` over the result
    (the service's jobs: ``kbatch.kubernetes.pod-template``, then ``kbatch.service.pod-template``).

    >>> combined = combine_templates({"nodeSelector": {"a": "1"}, "containers": [{"env": [{"name": "X"}]}]},
    ...                              {"nodeSelector": {"a": "2"}, "containers": [{"env": [{"name": "Y"}]}]}, "d")
    >>> combined == {"nodeSelector": {"a": "2"}, "containers": [{"env": [{"name": "X"}, {"name": "Y"}], "name": "d"}]}
    True
    """
    first = dict(first)
    containers = first.pop("containers", None)
    if containers:
        first["containers"] = [{**containers[0], "name": driver}, *containers[1:]]
    return merge_pod_template(first, then, driver)


def _merge(ours: Any, theirs: Any) -> Any:
    if isinstance(ours, Mapping) and isinstance(theirs, Mapping):
        merged = dict(ours)
        for key, value in theirs.items():
            merged[key] = _merge(ours[key], value) if key in ours else value
        return merged
    if isinstance(ours, list) and isinstance(theirs, list) and _named(ours) and _named(theirs):
        by_name = {item["name"]: item for item in ours}
        for item in theirs:
            by_name[item["name"]] = _merge(by_name[item["name"]], item) if item["name"] in by_name else item
        return list(by_name.values())
    return theirs


def _named(items: list[Any]) -> bool:
    return all(isinstance(i, Mapping) and "name" in i for i in items)
