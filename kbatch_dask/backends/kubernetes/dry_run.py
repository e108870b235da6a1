"""``kbatch --dry-run`` on Kubernetes: the objects a submission creates, as kubectl shows YAML."""

from __future__ import annotations

from typing import Any

REDACTED = "<redacted>"


def dry_run_yaml(objects: list[dict[str, Any]], resumed: str) -> str:
    """Exactly the objects sent (Job, ConfigMap, Secret), except that Secret values are
    redacted, and the ownerReferences (which need the created Job's uid) are not shown."""
    import yaml

    objects = list(objects)
    secret = objects[2]
    objects[2] = {**secret, "data": dict.fromkeys(secret["data"], REDACTED)}
    header = (
        "# kbatch --dry-run: the objects a submission creates. The Job is created suspended and resumed\n"
        f"# {resumed} (those are owned by the Job); Secret values are redacted here.\n"
    )
    return header + str(yaml.dump_all(objects, Dumper=_manifest_dumper(), sort_keys=False)).rstrip("\n")


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
