"""Every deployment snippet we publish is one the real charts and API servers accept.

``helm upgrade`` refuses values its chart's schema does not know (z2jh's
``singleuser`` and ``hub.config`` have ``additionalProperties: false``), so each
values fragment in docs/ and README (and any values file under deploy/) is
validated, as helm would, merged over the chart's defaults, against the z2jh
schema in ``../shared/anchors/z2jh/`` (next to the checkout) — a daskhub
fragment's ``jupyterhub:`` part over daskhub's own defaults for it. Dotted chart keys named in prose
(``singleuser.serviceAccountName``) must exist in the schema too. Kubernetes
objects in the same places validate strictly for every version we support.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

jsonschema = pytest.importorskip("jsonschema")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from backends.kubernetes.versions import K8S_VERSIONS  # noqa: E402

ANCHORS = ROOT.parent / "shared" / "anchors"  # next to the checkout, as ../shared/anchors
if not ANCHORS.is_dir():
    pytest.skip(f"the chart anchors are not on this machine ({ANCHORS})", allow_module_level=True)

Z2JH_SCHEMA = yaml.safe_load((ANCHORS / "z2jh" / "values.schema.yaml").read_text())
Z2JH_DEFAULTS = yaml.safe_load((ANCHORS / "z2jh" / "values.yaml").read_text())
DASKHUB_DEFAULTS = yaml.safe_load((ANCHORS / "daskhub" / "values.yaml").read_text())
#: daskhub's own top-level keys: its z2jh and dask-gateway subcharts and its rbac switch.
DASKHUB_KEYS = {*DASKHUB_DEFAULTS, "jupyterhub", "dask-gateway"}
#: Fields of a Job's spec: an excerpt of the Jobs kbatch builds, validated inside a minimal Job.
JOB_SPEC_KEYS = {"podFailurePolicy", "podReplacementPolicy", "backoffLimit", "activeDeadlineSeconds", "suspend"}
#: Top-level keys of our own dask config (``kbatch.yaml`` snippets), not chart values.
DASK_CONFIG_KEYS = {"kbatch"}
#: Where chart keys are written in prose: `singleuser.serviceAccountName` or `…: true`.
PROSE_KEY = re.compile(
    r"`(?:jupyterhub\.)?((?:singleuser|hub|proxy|scheduling|prePuller|cull|ingress|rbac|debug|global)"
    r"(?:\.[A-Za-z0-9_]+)+)(?::[^`]*)?`"
)


@dataclass(frozen=True)
class Snippet:
    """One YAML document from a published file."""

    where: str  # "docs/admin.md:262"
    body: Any


def published_files() -> list[Path]:
    deploy = sorted((ROOT / "deploy").rglob("*.y*ml")) if (ROOT / "deploy").is_dir() else []
    return [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md", *deploy]


def snippets(path: Path) -> Iterator[Snippet]:
    text = path.read_text()
    name = str(path.relative_to(ROOT))
    if path.suffix != ".md":
        for body in yaml.safe_load_all(text):
            yield Snippet(name, body)
        return
    for match in re.finditer(r"^```ya?ml\n(.*?)^```", text, re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        for body in yaml.safe_load_all(match.group(1)):
            yield Snippet(f"{name}:{line}", body)


def kind_of(body: Any) -> str:
    """``manifest``, ``job-spec``, ``dask-config``, ``daskhub`` or ``z2jh`` (values of that chart)."""
    if not isinstance(body, Mapping):
        return "other"
    if str(body.get("apiVersion", "")).startswith("kustomize.config.k8s.io/"):
        return "kustomize"  # rendered and its objects validated by tests/test_deploy.py
    if "apiVersion" in body and "kind" in body:
        return "manifest"
    if set(body) <= JOB_SPEC_KEYS:
        return "job-spec"
    if set(body) <= DASK_CONFIG_KEYS:
        return "dask-config"
    if {"jupyterhub", "dask-gateway"} & set(body):
        return "daskhub"
    return "z2jh"


def helm_merge(defaults: Any, values: Any) -> Any:
    """Values over defaults as helm merges them: mappings by key, anything else replaced."""
    if not (isinstance(defaults, Mapping) and isinstance(values, Mapping)):
        return copy.deepcopy(values)
    merged = dict(copy.deepcopy(defaults))
    for key, value in values.items():
        merged[key] = helm_merge(merged[key], value) if key in merged else copy.deepcopy(value)
    return merged


def values_errors(fragment: Any, kind: str) -> list[str]:
    """Why helm would refuse ``fragment`` (a z2jh or daskhub values fragment); [] when it would not."""
    if kind == "daskhub":
        unknown = sorted(set(fragment) - DASKHUB_KEYS)
        if unknown:
            return [f"daskhub has no top-level key {', '.join(unknown)}"]
        defaults = helm_merge(Z2JH_DEFAULTS, DASKHUB_DEFAULTS["jupyterhub"])
        merged = helm_merge(defaults, fragment.get("jupyterhub") or {})
    else:
        merged = helm_merge(Z2JH_DEFAULTS, fragment)
    validator = jsonschema.Draft7Validator(Z2JH_SCHEMA)
    prefix = "jupyterhub." if kind == "daskhub" else ""
    return [
        f"{prefix}{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(merged)
    ]


def schema_has(path: str) -> bool:
    """Whether the dotted z2jh key ``path`` (``singleuser.serviceAccountName``) exists."""
    node: Mapping[str, Any] = Z2JH_SCHEMA
    for part in path.split("."):
        properties = node.get("properties") or {}
        if part in properties:
            node = properties[part]
        elif any(re.match(pattern, part) for pattern in node.get("patternProperties") or {}):
            node = next(v for p, v in node["patternProperties"].items() if re.match(p, part))
        else:
            # A free-form mapping (hub.config.JupyterHub) takes any key.
            return node.get("additionalProperties") not in (None, False)
    return True


def is_our_module(path: str) -> bool:
    """`hub.tokens` in prose may name kbatch_dask.hub.tokens rather than a chart key."""
    return (ROOT / "kbatch_dask" / Path(*path.split("."))).with_suffix(".py").exists()


def in_a_job(spec: dict[str, Any]) -> dict[str, Any]:
    """A Job spec excerpt in the smallest Job around it (podFailurePolicy needs restartPolicy Never)."""
    pod = {"restartPolicy": "Never", "containers": [{"name": "driver", "image": "python:3.11"}]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "excerpt"},
            "spec": {**spec, "template": {"spec": pod}}}  # fmt: skip


ALL = [s for path in published_files() for s in snippets(path)]
VALUES = [s for s in ALL if kind_of(s.body) in ("z2jh", "daskhub")]
MANIFESTS = [s for s in ALL if kind_of(s.body) == "manifest"] + [
    Snippet(s.where, in_a_job(s.body)) for s in ALL if kind_of(s.body) == "job-spec"
]


def test_the_docs_hold_values_fragments_and_manifests() -> None:
    # Guards the classification: if it went wrong, the tests below would check nothing.
    assert {kind_of(s.body) for s in VALUES} == {"z2jh", "daskhub"}, [s.where for s in ALL]
    assert {m.body["kind"] for m in MANIFESTS} >= {"ServiceAccount", "Role", "RoleBinding", "Job"}


@pytest.mark.parametrize("snippet", VALUES, ids=[s.where for s in VALUES])
def test_values_fragments_pass_the_chart_schema(snippet: Snippet) -> None:
    assert values_errors(snippet.body, kind_of(snippet.body)) == [], f"{snippet.where}: helm upgrade would refuse it"


@pytest.mark.parametrize(
    ("fragment", "error"),
    [
        ({"singleuser": {"automountServiceAccountToken": True}}, "'automountServiceAccountToken' was unexpected"),
        (
            {"jupyterhub": {"singleuser": {"automountServiceAccountToken": True}}},
            "jupyterhub.singleuser: Additional properties are not allowed",
        ),
        ({"jupyterhub": {"hub": {"config": {"spawner": {}}}}}, "jupyterhub.hub.config"),
        ({"jupyterhb": {"singleuser": {}}}, "'jupyterhb' was unexpected"),
        ({"jupyterhub": {}, "daskgateway": {}}, "daskhub has no top-level key daskgateway"),
    ],
)
def test_a_fragment_with_an_unknown_key_fails(fragment: dict[str, Any], error: str) -> None:
    errors = values_errors(fragment, kind_of(fragment))
    assert any(error in e for e in errors), errors


def test_a_job_spec_excerpt_with_a_wrong_field_fails() -> None:
    excerpt = {"podFailurePolicy": {"rules": [{"action": "Ignore", "onPodCondition": [{"type": "DisruptionTarget"}]}]}}
    assert kind_of(excerpt) == "job-spec"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(in_a_job(excerpt), K8S_VERSIONS[-1], strict=True)


def test_the_right_keys_pass() -> None:
    fragment = {
        "singleuser": {
            "serviceAccountName": "kbatch-dask-notebook",
            "extraPodConfig": {"automountServiceAccountToken": True},
        },
        "hub": {"config": {"KubeSpawner": {"automount_service_account_token": True}}},
    }
    assert values_errors(fragment, "z2jh") == []


@pytest.mark.parametrize("path", sorted(published_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_chart_keys_named_in_prose_exist(path: Path) -> None:
    named = {m.group(1) for m in PROSE_KEY.finditer(path.read_text()) if not is_our_module(m.group(1))}
    assert sorted(k for k in named if not schema_has(k)) == [], f"{path.name} names keys z2jh does not have"


def test_the_prose_check_knows_a_missing_key() -> None:
    assert schema_has("singleuser.serviceAccountName") and schema_has("hub.config.JupyterHub.public_url")
    assert not schema_has("singleuser.automountServiceAccountToken")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_published_kubernetes_objects_validate_strictly(version: str) -> None:
    for snippet in MANIFESTS:
        try:
            kubernetes_validate.validate(snippet.body, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{snippet.where}: {snippet.body['kind']} is invalid for Kubernetes {version}: {exc}")
