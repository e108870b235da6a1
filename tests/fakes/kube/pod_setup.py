"""Turning a Pod's container into a local process: volumes, environment, argv.

This is the part of the fake kubelet that decides *what* to run; see
``fake_kubelet.py`` for when and how. The rules (also listed there):

* Every volume mount is materialised at ``<podroot>/<mountPath>`` (a symlink to
  the volume's directory, or to ``<dir>/<subPath>``). configMap, secret and
  projected (configMap / secret / serviceAccountToken) volumes are written as
  files honouring ``items`` / ``key`` / ``path`` / ``mode`` / ``defaultMode``;
  ``emptyDir`` is a fresh directory; ``persistentVolumeClaim`` and ``hostPath``
  map to directories the test provides (by claim name or host path), else to a
  directory the kubelet keeps for its lifetime. Other volume types are refused.
* Path translation: every env value, command element, arg and ``workingDir``
  that equals or starts with a mountPath (at a ``/`` boundary) is rewritten to
  the materialised location; longer mountPaths win. Other absolute paths are left
  alone — code inside the job must not rely on paths outside its mounts.
  ``workingDir`` outside every mount becomes the pod root.
* ``$(VAR)`` references in env values, command and args are expanded as
  Kubernetes does (``$$(VAR)`` escapes), before translation.
* ``python`` / ``python3`` / ``python3.X`` (bare or any absolute path) as argv[0]
  is replaced by the test interpreter, ``sys.executable``.
* A container without ``command`` cannot run: the double cannot know the
  image's entrypoint.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .resources import CONFIGMAP, SECRET
from .store import JsonObj, Store

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_PYTHON_RE = re.compile(r"python(3(\.\d+)*)?")


class NotReady(Exception):
    """The container cannot start yet; the pod waits with this reason and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


@dataclass
class Launch:
    """Everything needed to start the container's process."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path


@dataclass
class PodContext:
    """What the kubelet provides to set a pod up."""

    store: Store
    pod: JsonObj
    pod_dir: Path  # private to the pod; holds the root, the volumes, the log
    token: str  # the pod's bearer token for the fake API server
    kubeconfig: Path
    volume_dir: Callable[[str, str], Path]  # ("pvc" | "hostPath", key) -> directory
    extra_env: Mapping[str, str]

    @property
    def root(self) -> Path:
        return self.pod_dir / "root"

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])


class PathMap:
    """Rewrites container paths under a mount to where the mount was materialised."""

    def __init__(self, root: Path, mount_paths: list[str]) -> None:
        self.root = root
        self.mount_paths = sorted({p.rstrip("/") or "/" for p in mount_paths}, key=len, reverse=True)

    def mount_of(self, value: str) -> str | None:
        for mount in self.mount_paths:
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return mount
        return None

    def translate(self, value: str) -> str:
        if self.mount_of(value) is None:
            return value
        return str(self.root) + value


def prepare(ctx: PodContext) -> Launch:
    """Materialise volumes and resolve env/argv for the pod's (single) container;
    init containers are not run (the kubelet reports them completed)."""
    spec = ctx.pod["spec"]
    containers = spec.get("containers") or []
    if len(containers) != 1:
        raise NotReady("CreateContainerError", "the fake kubelet runs pods with exactly one container")
    container = containers[0]
    if not container.get("command"):
        raise NotReady(
            "CreateContainerError", "the fake kubelet needs an explicit command (it cannot know the image's entrypoint)"
        )
    mounts = mount_volumes(ctx, container)
    paths = PathMap(ctx.root, mounts)
    env = _environment(ctx, container)
    argv = [_expand(str(a), env) for a in [*container["command"], *(container.get("args") or [])]]
    argv = [paths.translate(a) for a in argv]
    if _PYTHON_RE.fullmatch(os.path.basename(argv[0])):
        argv[0] = sys.executable
    env = {k: paths.translate(v) for k, v in env.items()}
    return Launch(argv, env, _working_dir(ctx, container, paths))


def _working_dir(ctx: PodContext, container: JsonObj, paths: PathMap) -> Path:
    working_dir = container.get("workingDir")
    if working_dir and paths.mount_of(working_dir) is not None:
        return Path(paths.translate(working_dir))
    ctx.root.mkdir(parents=True, exist_ok=True)
    return ctx.root


# -- environment ----------------------------------------------------------------


def _environment(ctx: PodContext, container: JsonObj) -> dict[str, str]:
    """The container's environment, and only that (plus what a kubelet adds)."""
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    env["HOSTNAME"] = ctx.pod["metadata"]["name"]
    for source in container.get("envFrom") or []:
        env.update(_env_from(ctx, source))
    for entry in container.get("env") or []:
        if "valueFrom" in entry:
            value = _value_from(ctx, container, entry["valueFrom"])
            if value is None:
                continue  # an optional reference that is missing
        else:
            value = _expand(str(entry.get("value", "")), env)
        env[entry["name"]] = value
    env.update(ctx.extra_env)
    env["KUBECONFIG"] = str(ctx.kubeconfig)
    for key in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        env.pop(key, None)  # so load_incluster_config() fails and the kubeconfig is used
    return env


def _expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion; unknown references stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0).startswith("$$"):
            return match.group(0)[1:]
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$\([A-Za-z_][A-Za-z0-9_.-]*\)|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", replace, value)


def _env_from(ctx: PodContext, source: JsonObj) -> dict[str, str]:
    prefix = source.get("prefix", "")
    for kind, ref_key in (("secret", "secretRef"), ("configmap", "configMapRef")):
        ref = source.get(ref_key)
        if ref is None:
            continue
        data = _referenced_data(ctx, kind, ref["name"], optional=bool(ref.get("optional")))
        return {prefix + k: v for k, v in (data or {}).items()}
    raise NotReady("CreateContainerConfigError", f"unsupported envFrom source {source!r}")


def _value_from(ctx: PodContext, container: JsonObj, source: JsonObj) -> str | None:
    for kind, ref_key in (("secret", "secretKeyRef"), ("configmap", "configMapKeyRef")):
        ref = source.get(ref_key)
        if ref is None:
            continue
        optional = bool(ref.get("optional"))
        data = _referenced_data(ctx, kind, ref["name"], optional=optional)
        if data is None or ref["key"] not in data:
            if optional:
                return None
            what = "Secret" if kind == "secret" else "ConfigMap"
            raise NotReady(
                "CreateContainerConfigError", f"couldn't find key {ref['key']} in {what} {ctx.namespace}/{ref['name']}"
            )
        return data[ref["key"]]
    if "fieldRef" in source:
        return _field_ref(ctx.pod, source["fieldRef"]["fieldPath"])
    raise NotReady("CreateContainerConfigError", f"the fake kubelet does not support env valueFrom {source!r}")


def _referenced_data(ctx: PodContext, kind: str, name: str, *, optional: bool) -> dict[str, str] | None:
    """A Secret's (decoded) or ConfigMap's data as text, None when optional and absent."""
    obj = ctx.store.find(SECRET if kind == "secret" else CONFIGMAP, ctx.namespace, name)
    if obj is None:
        if optional:
            return None
        raise NotReady("CreateContainerConfigError", f'{kind} "{name}" not found')
    return {k: v.decode(errors="replace") for k, v in _payload(obj, kind).items()}


def _payload(obj: JsonObj, kind: str) -> dict[str, bytes]:
    if kind == "secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _field_ref(pod: JsonObj, path: str) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path] or "")
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise NotReady("CreateContainerConfigError", f"the fake kubelet does not support fieldRef {path!r}")


# -- volumes --------------------------------------------------------------------


def mount_volumes(ctx: PodContext, container: JsonObj) -> list[str]:
    """Materialise the container's mounts under the pod root; returns the mountPaths."""
    volumes = {v["name"]: v for v in ctx.pod["spec"].get("volumes") or []}
    mounts = list(container.get("volumeMounts") or [])
    if ctx.pod["spec"].get("automountServiceAccountToken", True) and not any(
        m.get("mountPath") == SERVICE_ACCOUNT_DIR for m in mounts
    ):
        mounts.append({"name": "\0service-account", "mountPath": SERVICE_ACCOUNT_DIR})
    sources: dict[str, Path] = {}
    # Parents first, so a nested mount lands inside its parent's volume, as in a container.
    for mount in sorted(mounts, key=lambda m: len(m["mountPath"].rstrip("/"))):
        name = mount["name"]
        if name not in sources:
            sources[name] = (
                _service_account_dir(ctx) if name == "\0service-account" else _volume_dir(ctx, volumes[name])
            )
        source = sources[name] / mount["subPath"] if mount.get("subPath") else sources[name]
        source.mkdir(parents=True, exist_ok=True)
        target = ctx.root / mount["mountPath"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_symlink():
            target.symlink_to(source, target_is_directory=True)
    return [m["mountPath"] for m in mounts]


def _volume_dir(ctx: PodContext, volume: JsonObj) -> Path:
    name = volume["name"]
    if "persistentVolumeClaim" in volume:
        return ctx.volume_dir("pvc", volume["persistentVolumeClaim"]["claimName"])
    if "hostPath" in volume:
        return ctx.volume_dir("hostPath", volume["hostPath"]["path"])
    directory: Path = ctx.pod_dir / "volumes" / str(name)
    if directory.exists():
        return directory
    files: dict[str, tuple[bytes, int]] = {}
    if "emptyDir" in volume:
        pass
    elif "configMap" in volume or "secret" in volume:
        files = _projected_files(ctx, volume, name)
    elif "projected" in volume:
        default_mode = volume["projected"].get("defaultMode", 0o644)
        for source in volume["projected"].get("sources") or []:
            files.update(_projected_files(ctx, {**source, "defaultMode": default_mode}, name))
    else:
        kinds = sorted(set(volume) - {"name"})
        raise NotReady("ContainerCreating", f"the fake kubelet does not support volume {name!r} of type {kinds}")
    directory.mkdir(parents=True)
    for relative, (content, mode) in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    return directory


def _projected_files(ctx: PodContext, source: JsonObj, volume: str) -> dict[str, tuple[bytes, int]]:
    """Files of a configMap / secret / serviceAccountToken source: path -> (bytes, mode)."""
    if "serviceAccountToken" in source:
        path = source["serviceAccountToken"].get("path", "token")
        return {path: (ctx.token.encode(), source.get("defaultMode", 0o644))}
    kind, ref = ("secret", source["secret"]) if "secret" in source else ("configmap", source.get("configMap"))
    if ref is None:
        raise NotReady("ContainerCreating", f"the fake kubelet does not support projected source {sorted(source)}")
    name = ref.get("secretName") or ref.get("name", "")
    obj = ctx.store.find(SECRET if kind == "secret" else CONFIGMAP, ctx.namespace, name)
    if obj is None:
        if ref.get("optional"):
            return {}
        raise NotReady(
            "ContainerCreating", f'MountVolume.SetUp failed for volume "{volume}" : {kind} "{name}" not found'
        )
    payload = _payload(obj, kind)
    default_mode = int(ref.get("defaultMode", source.get("defaultMode", 0o644)))
    items = ref.get("items")
    if not items:
        return {key: (value, default_mode) for key, value in payload.items()}
    files = {}
    for item in items:
        if item["key"] not in payload:
            raise NotReady(
                "ContainerCreating",
                f'MountVolume.SetUp failed for volume "{volume}" : {kind} references non-existent key: {item["key"]}',
            )
        files[item["path"]] = (payload[item["key"]], int(item.get("mode", default_mode)))
    return files


def _service_account_dir(ctx: PodContext) -> Path:
    directory = ctx.pod_dir / "volumes" / "kube-api-access"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(ctx.token)
    (directory / "namespace").write_text(ctx.namespace)
    (directory / "ca.crt").write_text("")  # the fake server is plain http
    return directory


def describe(launch: Launch) -> dict[str, Any]:
    """A printable summary, for debugging a test."""
    return {"argv": launch.argv, "cwd": str(launch.cwd), "env": dict(sorted(launch.env.items()))}
