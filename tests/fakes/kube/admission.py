"""Defaulting and validation: what the API server does to an object before storing it.

Only what the project's code can get wrong is checked, with Kubernetes' own
messages so a failing test reads like a real rejection:

* names: DNS-1123 subdomains (≤ 253), container and volume names DNS-1123 labels;
* labels and annotation keys (qualified names), label values (≤ 63, valid chars),
  annotations ≤ 256 KiB in total;
* ConfigMap / Secret payloads ≤ 1 MiB in total, valid keys, Secret data base64;
* Pods and Job templates: containers present with name and image, restartPolicy
  allowed (a Job template must say ``Never`` or ``OnFailure`` — the default
  ``Always`` is refused, as in Kubernetes), volume mounts naming real volumes,
  resource quantities that parse and requests ≤ limits, env entries with a name;
* ownerReferences carrying apiVersion, kind, name and uid;
* Jobs: ``spec.template`` immutable after create, non-negative counters; a
  ``podFailurePolicy`` only with restartPolicy ``Never`` and
  ``podReplacementPolicy: Failed``, its rules' actions and operators known;
* init containers like containers (names unique across both lists).

Defaults applied (as the real server does, so tests see realistic objects): Secret
``stringData`` folded into base64 ``data``; Pod spec defaults (restartPolicy
``Always``, ``terminationGracePeriodSeconds: 30``, ``serviceAccountName: default``,
...); Job defaults (``backoffLimit: 6`` — Kubernetes' default, not 0 —,
completions/parallelism 1, ``podReplacementPolicy`` ``TerminatingOrFailed``, or
``Failed`` with a ``podFailurePolicy``, selector and the ``controller-uid`` /
``job-name`` labels on the pod template).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JsonObj = dict[str, Any]

MAX_PAYLOAD_BYTES = 1024 * 1024  # ConfigMap and Secret total size
MAX_ANNOTATION_BYTES = 256 * 1024

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = rf"({_QUALIFIED_NAME})?"
_CONFIG_KEY = r"[-._a-zA-Z0-9]+"

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    f"validation is '{_DNS_SUBDOMAIN}')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    f"start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    f"validation is '{_DNS_LABEL}')"
)
_QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{_QUALIFIED_NAME}')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    f"'12345', regex used for validation is '{_LABEL_VALUE}')"
)


@dataclass(frozen=True)
class FieldError:
    """One validation failure, rendered as Kubernetes renders it in a Status."""

    field: str
    reason: str  # FieldValueRequired, FieldValueInvalid, ... (the Status cause reason)
    detail: str  # "Required value", "Invalid value: \"x\": ...", ...

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}"


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def invalid(field: str, value: Any, detail: str) -> FieldError:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return FieldError(field, "FieldValueInvalid", f"Invalid value: {shown}: {detail}")


def too_long(field: str, limit: int) -> FieldError:
    return FieldError(field, "FieldValueTooLong", f"Too long: must have at most {limit} bytes")


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    options = ", ".join(f'"{s}"' for s in supported)
    return FieldError(field, "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: {options}')


def not_found(field: str, value: str) -> FieldError:
    return FieldError(field, "FieldValueNotFound", f'Not found: "{value}"')


def duplicate(field: str, value: str) -> FieldError:
    return FieldError(field, "FieldValueDuplicate", f'Duplicate value: "{value}"')


# -- name and label rules (also used by the selector parser) ------------------


def dns1123_subdomain_errors(value: str) -> list[str]:
    problems = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not re.fullmatch(_DNS_SUBDOMAIN, value):
        problems.append(_SUBDOMAIN_MSG)
    return problems


def dns1123_label_errors(value: str) -> list[str]:
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not re.fullmatch(_DNS_LABEL, value):
        problems.append(_LABEL_MSG)
    return problems


def label_key_errors(key: str) -> list[str]:
    """Qualified-name rules for label and annotation keys: ``[prefix/]name``."""
    prefix, _, name = key.rpartition("/")
    problems = []
    if "/" in key and not prefix:
        problems.append("prefix part must be non-empty")
    elif prefix:
        problems += [f"prefix part {p}" for p in dns1123_subdomain_errors(prefix)]
    if not name:
        problems.append("name part must be non-empty")
    else:
        if len(name) > 63:
            problems.append("name part must be no more than 63 characters")
        if not re.fullmatch(_QUALIFIED_NAME, name):
            problems.append(_QUALIFIED_MSG)
    return problems


def label_value_errors(value: str) -> list[str]:
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not re.fullmatch(_LABEL_VALUE, value):
        problems.append(_LABEL_VALUE_MSG)
    return problems


# -- defaulting ---------------------------------------------------------------


def apply_defaults(resource: str, obj: JsonObj) -> None:
    """Fill in what the real server defaults, in place. Needs ``metadata.uid`` set."""
    if resource == "secrets":
        _default_secret(obj)
    elif resource == "pods":
        _default_pod_spec(obj.setdefault("spec", {}), restart_policy="Always")
    elif resource == "jobs":
        _default_job(obj)


def _default_secret(obj: JsonObj) -> None:
    string_data = obj.pop("stringData", None) or {}
    data = obj.setdefault("data", {}) if (string_data or "data" in obj) else None
    if data is not None:
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    obj.setdefault("type", "Opaque")


def _default_pod_spec(spec: JsonObj, *, restart_policy: str) -> None:
    spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("enableServiceLinks", True)
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image", ""))
        untagged_or_latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if untagged_or_latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def _default_job(obj: JsonObj) -> None:
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    for key, value in (
        ("parallelism", 1),
        ("completions", 1),
        ("backoffLimit", 6),
        ("completionMode", "NonIndexed"),
        ("suspend", False),
        ("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"),
    ):
        spec.setdefault(key, value)
    controller_labels = {
        "batch.kubernetes.io/controller-uid": meta["uid"],
        "batch.kubernetes.io/job-name": meta.get("name", ""),
        "controller-uid": meta["uid"],
        "job-name": meta.get("name", ""),
    }
    spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": meta["uid"]}})
    template = spec.get("template")
    if isinstance(template, dict):
        template_meta = template.setdefault("metadata", {})
        template_meta.setdefault("labels", {}).update(controller_labels)
        if isinstance(template.get("spec"), dict):
            _default_pod_spec(template["spec"], restart_policy="Always")


# -- validation ---------------------------------------------------------------


def validate(resource: str, obj: JsonObj, old: JsonObj | None) -> list[FieldError]:
    """Everything wrong with ``obj`` (``old`` is the stored version on update)."""
    errors = _validate_metadata(obj.get("metadata") or {})
    checker = _VALIDATORS.get(resource)
    if checker is not None:
        errors += checker(obj, old)
    return errors


def _validate_metadata(meta: JsonObj) -> list[FieldError]:
    errors = []
    name = meta.get("name", "")
    if not name:
        errors.append(required("metadata.name", "name or generateName is required"))
    else:
        errors += [invalid("metadata.name", name, p) for p in dns1123_subdomain_errors(name)]
    errors += _label_errors("metadata.labels", meta.get("labels"))
    errors += _annotation_errors(meta.get("annotations"))
    for ref in meta.get("ownerReferences") or []:
        for key in ("apiVersion", "kind", "name", "uid"):
            if not (ref or {}).get(key):
                errors.append(invalid(f"metadata.ownerReferences.{key}", "", f"{key} must not be empty"))
    return errors


def _label_errors(field: str, labels: Any) -> list[FieldError]:
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [invalid(field, str(labels), "must be a map of strings")]
    errors = []
    for key, value in labels.items():
        errors += [invalid(field, key, p) for p in label_key_errors(str(key))]
        if not isinstance(value, str):
            errors.append(invalid(field, str(value), "label values must be strings"))
        else:
            errors += [invalid(field, value, p) for p in label_value_errors(value)]
    return errors


def _annotation_errors(annotations: Any) -> list[FieldError]:
    if not annotations:
        return []
    errors, total = [], 0
    for key, value in annotations.items():
        errors += [invalid("metadata.annotations", key, p) for p in label_key_errors(str(key))]
        total += len(str(key)) + len(str(value))
    if total > MAX_ANNOTATION_BYTES:
        errors.append(too_long("metadata.annotations", MAX_ANNOTATION_BYTES))
    return errors


def _key_errors(field: str, keys: list[str]) -> list[FieldError]:
    errors = []
    for key in keys:
        if len(key) > 253 or not re.fullmatch(_CONFIG_KEY, key):
            errors.append(
                invalid(
                    f"{field}[{key}]",
                    key,
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                    f"(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '{_CONFIG_KEY}')",
                )
            )
    return errors


def _validate_configmap(obj: JsonObj, old: JsonObj | None) -> list[FieldError]:
    data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
    errors = _key_errors("data", list(data)) + _key_errors("binaryData", list(binary))
    errors += [duplicate("data", key) for key in set(data) & set(binary)]
    total = sum(len(k) + len(str(v).encode()) for k, v in data.items())
    total += sum(len(k) + len(_b64decode(v) or b"") for k, v in binary.items())
    if total > MAX_PAYLOAD_BYTES:
        errors.append(too_long("[]", MAX_PAYLOAD_BYTES))
    return errors


def _validate_secret(obj: JsonObj, old: JsonObj | None) -> list[FieldError]:
    data = obj.get("data") or {}
    errors = _key_errors("data", list(data))
    total = 0
    for key, value in data.items():
        decoded = _b64decode(value)
        if decoded is None:
            errors.append(invalid(f"data[{key}]", "<secret contents redacted>", "illegal base64 data"))
        else:
            total += len(decoded)
    if total > MAX_PAYLOAD_BYTES:
        errors.append(too_long("data", MAX_PAYLOAD_BYTES))
    return errors


def _b64decode(value: Any) -> bytes | None:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return None


def _validate_pod(obj: JsonObj, old: JsonObj | None) -> list[FieldError]:
    return validate_pod_spec(obj.get("spec") or {}, "spec", ["Always", "OnFailure", "Never"])


def _validate_job(obj: JsonObj, old: JsonObj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    template = spec.get("template")
    if not isinstance(template, dict):
        return [required("spec.template")]
    errors = _label_errors("spec.template.metadata.labels", (template.get("metadata") or {}).get("labels"))
    errors += validate_pod_spec(template.get("spec") or {}, "spec.template.spec", ["OnFailure", "Never"])
    for key in ("backoffLimit", "parallelism", "completions", "ttlSecondsAfterFinished"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or value < 0):
            errors.append(invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not isinstance(deadline, int) or deadline <= 0):
        errors.append(invalid("spec.activeDeadlineSeconds", deadline, "must be greater than 0"))
    if old is not None and spec.get("template") != (old.get("spec") or {}).get("template"):
        errors.append(invalid("spec.template", "<template>", "field is immutable"))
    return errors + _pod_failure_policy_errors(spec, template.get("spec") or {})


POD_FAILURE_ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]


def _pod_failure_policy_errors(spec: JsonObj, pod_spec: JsonObj) -> list[FieldError]:
    policy = spec.get("podFailurePolicy")
    if policy is None:
        return []
    errors = []
    if pod_spec.get("restartPolicy") != "Never":
        errors.append(
            invalid(
                "spec.template.spec.restartPolicy",
                pod_spec.get("restartPolicy"),
                'only "Never" is supported when podFailurePolicy is specified',
            )
        )
    replacement = spec.get("podReplacementPolicy")
    if replacement != "Failed":
        errors.append(not_supported("spec.podReplacementPolicy", replacement, ["Failed"]))
    for i, rule in enumerate(policy.get("rules") or []):
        path = f"spec.podFailurePolicy.rules[{i}]"
        if rule.get("action") not in POD_FAILURE_ACTIONS:
            errors.append(not_supported(f"{path}.action", rule.get("action"), POD_FAILURE_ACTIONS))
        if ("onExitCodes" in rule) == ("onPodConditions" in rule):
            errors.append(invalid(path, "", "specifying one of onExitCodes and onPodConditions is required"))
        for j, cond in enumerate(rule.get("onPodConditions") or []):
            if not cond.get("type"):
                errors.append(required(f"{path}.onPodConditions[{j}].type"))
        codes = rule.get("onExitCodes") or {}
        if "onExitCodes" in rule and codes.get("operator") not in ("In", "NotIn"):
            errors.append(not_supported(f"{path}.onExitCodes.operator", codes.get("operator"), ["In", "NotIn"]))
    return errors


def validate_pod_spec(spec: JsonObj, path: str, restart_policies: list[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    policy = spec.get("restartPolicy")
    if policy not in restart_policies:
        errors.append(not_supported(f"{path}.restartPolicy", policy, restart_policies))
    volumes = spec.get("volumes") or []
    volume_names = {str(v.get("name")) for v in volumes if isinstance(v, dict)}
    errors += _volume_errors(volumes, f"{path}.volumes")
    containers = spec.get("containers")
    if not containers:
        return [*errors, required(f"{path}.containers")]
    seen: set[str] = set()  # a container's name is unique among the init containers too
    for field_name in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(field_name) or []):
            cpath = f"{path}.{field_name}[{i}]"
            errors += _container_errors(container or {}, cpath, volume_names)
            name = (container or {}).get("name", "")
            if name in seen:
                errors.append(duplicate(f"{cpath}.name", name))
            seen.add(name)
    return errors


def _volume_errors(volumes: list[Any], path: str) -> list[FieldError]:
    errors, seen = [], set()
    for i, volume in enumerate(volumes):
        name = (volume or {}).get("name", "")
        if not name:
            errors.append(required(f"{path}[{i}].name"))
            continue
        errors += [invalid(f"{path}[{i}].name", name, p) for p in dns1123_label_errors(name)]
        if name in seen:
            errors.append(duplicate(f"{path}[{i}].name", name))
        seen.add(name)
    return errors


def _container_errors(container: JsonObj, path: str, volume_names: set[str]) -> list[FieldError]:
    errors = []
    name = container.get("name", "")
    if not name:
        errors.append(required(f"{path}.name"))
    else:
        errors += [invalid(f"{path}.name", name, p) for p in dns1123_label_errors(name)]
    if not container.get("image"):
        errors.append(required(f"{path}.image"))
    for i, env in enumerate(container.get("env") or []):
        if not (env or {}).get("name"):
            errors.append(required(f"{path}.env[{i}].name"))
        elif "=" in env["name"]:
            errors.append(invalid(f"{path}.env[{i}].name", env["name"], "must not contain '='"))
        if "value" in (env or {}) and "valueFrom" in (env or {}):
            errors.append(invalid(f"{path}.env[{i}].valueFrom", "", "may not be specified when `value` is not empty"))
    for i, mount in enumerate(container.get("volumeMounts") or []):
        if (mount or {}).get("name") not in volume_names:
            errors.append(not_found(f"{path}.volumeMounts[{i}].name", str((mount or {}).get("name"))))
        if not (mount or {}).get("mountPath"):
            errors.append(required(f"{path}.volumeMounts[{i}].mountPath"))
    errors += _resource_errors(container.get("resources") or {}, f"{path}.resources")
    return errors


def _resource_errors(resources: JsonObj, path: str) -> list[FieldError]:
    from kubernetes.utils import parse_quantity  # the real parser: what the project must satisfy

    parsed: dict[str, dict[str, Any]] = {}
    errors = []
    for section in ("limits", "requests"):
        for key, value in (resources.get(section) or {}).items():
            try:
                parsed.setdefault(section, {})[key] = parse_quantity(value)  # type: ignore[no-untyped-call]
            except (ValueError, TypeError):
                errors.append(
                    invalid(
                        f"{path}.{section}[{key}]",
                        str(value),
                        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                    )
                )
    limits, requests = parsed.get("limits", {}), parsed.get("requests", {})
    for key, request in requests.items():
        if key in limits and request > limits[key]:
            errors.append(
                invalid(
                    f"{path}.requests",
                    str(resources["requests"][key]),
                    f"must be less than or equal to {key} limit of {resources['limits'][key]}",
                )
            )
    return errors


_VALIDATORS = {
    "configmaps": _validate_configmap,
    "secrets": _validate_secret,
    "pods": _validate_pod,
    "jobs": _validate_job,
}
