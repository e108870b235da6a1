"""Clusters the job's own code makes: the job owns them.

A script written the Pangeo way makes a cluster of its own,
``Gateway().new_cluster(shutdown_on_close=False)``, and leaves it running on
purpose. Inside a job that cluster is the job's, like every process a Slurm
job starts: stopped at the job's end, guarded by the dead-man's switch, shown
by ``kbatch show`` and found by ``kbatch gc``.

The runner's Python (and, through :mod:`kbatch_dask.driver.site`'s
``sitecustomize``, every Python process under it) wraps dask-gateway's one
way to create a cluster, ``Gateway._submit`` (``submit`` and ``new_cluster``
go through it), so that each new cluster's gateway address and name are
appended to the file ``$KBATCH_DASK_OWNED_CLUSTERS``. The supervisor reads
the file as the job runs (:class:`OwnedClusters`).

The hook waits for dask-gateway to be imported: a Python child that never
uses it pays for nothing but this module.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Sequence
from typing import Any

ENV = "KBATCH_DASK_OWNED_CLUSTERS"
SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
_CLIENT_MODULE = "dask_gateway.client"


def install() -> None:
    """Record every cluster dask-gateway creates in this process (with ``$KBATCH_DASK_OWNED_CLUSTERS`` set)."""
    path = os.environ.get(ENV)
    if not path:
        return
    module = sys.modules.get(_CLIENT_MODULE)
    if module is not None:
        _wrap(module, path)
    elif not any(isinstance(finder, _ImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ImportHook(path))


class _ImportHook(importlib.abc.MetaPathFinder):
    """Wraps dask-gateway's client module the moment it is first imported."""

    def __init__(self, path: str) -> None:
        self.path = path

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _CLIENT_MODULE:
            return None
        sys.meta_path.remove(self)  # once: the real finders locate the module
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module
        record_to = self.path

        def exec_and_wrap(module: types.ModuleType) -> None:
            exec_module(module)
            _wrap(module, record_to)

        loader.exec_module = exec_and_wrap  # type: ignore[method-assign]
        return spec


def _wrap(module: types.ModuleType, path: str) -> None:
    gateway = module.Gateway
    submit = gateway._submit
    if getattr(submit, "_kbatch_records_to", None):
        return

    async def recorded_submit(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = await submit(self, *args, **kwargs)
        record(path, str(self.address), str(name))
        return name

    recorded_submit._kbatch_records_to = path  # type: ignore[attr-defined]
    gateway._submit = recorded_submit


def record(path: str, address: str, name: str) -> None:
    """Append one cluster, a whole line in one write (the supervisor reads only whole lines)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{address} {name}\n".encode())
    finally:
        os.close(fd)


class OwnedClusters:
    """The supervisor's end: the clusters recorded in the file so far, new ones first seen by :meth:`new`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = 0
        self.seen: list[tuple[str, str]] = []  # (gateway address, cluster name), in order

    def new(self) -> list[tuple[str, str]]:
        """The clusters recorded since the last call."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        whole = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next call
        self._offset += len(whole)
        found = []
        for line in whole.decode(errors="replace").splitlines():
            address, _, name = line.strip().rpartition(" ")
            if name and (address, name) not in self.seen:
                found.append((address, name))
                self.seen.append((address, name))
        return found
