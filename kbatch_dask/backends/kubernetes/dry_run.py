"""``kbatch --dry-run`` on Kubernetes: the objects a submission creates, as kubectl shows YAML.

The direct backend builds them here; the service (``--backend hub``) builds
them on its side and sends them, redacted by :func:`redacted`, and the client
prints them with :func:`manifests_yaml`: the same YAML either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

REDACTED = "<redacted>"


def redacted(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``objects`` with every Secret's values replaced by :data:`REDACTED`, its keys kept.

    >>> redacted([{"kind": "Secret", "data": {"TOKEN": "c2VjcmV0"}}])
    [{'kind': 'Secret', 'data': {'TOKEN': '<redacted>'}}]
    """
    return [
        {**obj, "data": dict.fromkeys(obj.get("data") or {}, REDACTED)} if obj.get("kind") == "Secret" else obj
        for obj in objects
    ]


def dry_run_yaml(objects: list[dict[str, Any]], resumed: str) -> str:
    """Exactly the objects sent (Job, ConfigMap, Secret), except that Secret values are
    redacted, and the ownerReferences (which need the created Job's uid) are not shown."""
    notes = [
        "kbatch --dry-run: the objects a submission creates. The Job is created suspended and resumed",
        f"{resumed} (those are owned by the Job); Secret values are redacted here.",
    ]
    return manifests_yaml(redacted(objects), notes)


def manifests_yaml(objects: Sequence[dict[str, Any]], notes: Sequence[str]) -> str:
    """``objects`` as YAML documents under ``notes`` (comment lines); nothing is redacted here."""
    import yaml

    header = "".join(f"# {line}\n" for line in notes)
    return header + str(yaml.dump_all(list(objects), Dumper=_manifest_dumper(), sort_keys=False)).rstrip("\n")


def _manifest_dumper() -> type:
    import yaml

    class Dumper(yaml.SafeDumper):
        """Plain YAML as kubectl shows it: no anchors, multi-line strings as blocks."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return Dumper
