"""Clusters the job's own code makes: the job owns them.

A script written the Pangeo way makes a cluster of its own,
``Gateway().new_cluster(shutdown_on_close=False)``, and leaves it running on
purpose. Inside a job that cluster is the job's, like every process a Slurm
job starts: stopped at the job's end, guarded by the dead-man's switch, shown
by ``kbatch show`` and found by ``kbatch gc``.

The runner's Python, and every Python process under it, loads the hook first
(``driver/site/sitecustomize.py``, first on the job's ``PYTHONPATH``): it
wraps dask-gateway's one way to create a cluster, ``Gateway._submit``
(``submit`` and ``new_cluster`` go through it), so that each new cluster's
gateway address and name are appended to the file ``$KBATCH_DASK_OWNED_CLUSTERS``. The supervisor reads
the file as the job runs (:class:`OwnedClusters`). It also makes ``Gateway.close``
final, so that a closed Gateway prints no traceback when it is collected. A cluster made on another
gateway than the job's is not the job's: kbatch could not stop it.

The hook waits for dask-gateway to be imported: a Python child that never
uses it pays for nothing but this module, which therefore imports only the
standard library (the ``sitecustomize`` loads it by its path).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # at run time this module needs only the standard library (see above)
    from kbatch_dask.gateway import GatewayClient

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
        if self in sys.meta_path:  # once: the real finders locate the module
            sys.meta_path.remove(self)
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
    close = gateway.close

    def close_for_good(self: Any) -> Any:
        # Gateway.__del__ closes a closed Gateway again, which raises once its loop has
        # stopped: an "Exception ignored in ... Gateway.__del__" traceback in the output of
        # every job whose code closed one (a GatewayCluster closes its own at exit). A
        # Gateway without its loop runner is one __del__ leaves alone.
        if self.asynchronous:
            return close(self)
        if "_loop_runner" in vars(self):
            close(self)
            del self._loop_runner
        return None

    gateway.close = close_for_good


def record(path: str, address: str, name: str) -> None:
    """Append one cluster, a whole line in one write (the supervisor reads only whole lines)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{address} {name}\n".encode())
    finally:
        os.close(fd)


class ClusterFile:
    """The file the hook appends to, read as it grows: :meth:`new` gives what was recorded since the last call."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = 0
        self._seen: set[tuple[str, str]] = set()

    def new(self) -> list[tuple[str, str]]:
        """The (gateway address, cluster name) recorded since the last call, in order."""
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
            if name and (address, name) not in self._seen:
                found.append((address, name))
                self._seen.add((address, name))
        return found


class OwnedClusters:
    """The supervisor's end: the clusters the job's code made on the job's gateway,
    each recorded (``record``, the reporter's ``owned``), guarded by a dead-man's
    switch of its own (``switch``, None without the switch) and stopped at the end.

    Nothing exists until :meth:`prepare` (as the runner starts): then a private
    directory holds the file, and the runner's TLS files (see
    :func:`kbatch_dask.driver.session.make_client_default_to`).
    """

    def __init__(
        self,
        job_id: str,
        record: Callable[[tuple[str, ...]], None],
        connect: Callable[[], GatewayClient],
        switch: SwitchFactory | None,
        log: Callable[[str], None],
    ) -> None:
        self.job_id = job_id
        self.record = record
        self.connect = connect  # the job's gateway, for a job without a cluster of its own
        self.switch = switch
        self.log = log
        self.gateway: GatewayClient | None = None
        self.connected = False  # the gateway is this object's to close
        self.private_dir: str | None = None
        self.file: ClusterFile | None = None
        self.names: list[str] = []
        self.switches: dict[str, Switch] = {}

    def prepare(self, gateway: GatewayClient | None, pythonpath: str | None) -> dict[str, str]:
        """Make the private directory; what the runner's environment needs: its Python,
        and every Python under it, loads the hook first."""
        self.gateway = gateway
        self.private_dir = tempfile.mkdtemp(prefix=f"kbatch-{self.job_id}-")  # this user's only (0700)
        self.file = ClusterFile(os.path.join(self.private_dir, "owned-clusters"))
        return {
            "KBATCH_DASK_PRIVATE_DIR": self.private_dir,
            ENV: self.file.path,
            "PYTHONPATH": os.pathsep.join(filter(None, (SITE_DIR, pythonpath))),
        }

    def adopt(self) -> None:
        """Make the clusters recorded since the last look the job's."""
        for address, name in self.file.new() if self.file is not None else ():
            gateway = self._gateway()
            if gateway is None or address.rstrip("/") != gateway.settings.address.rstrip("/"):
                self.log(
                    f"the job's code made cluster {name} on another gateway ({address}); it is not stopped with the job"
                )
                continue
            self.names.append(name)
            self.record(tuple(self.names))
            self.log(f"the job's code made cluster {name}; it is stopped with the job")
            if self.switch is not None:
                self.switches[name] = self.switch(gateway=gateway, cluster=name, log=self.log)

    def _gateway(self) -> GatewayClient | None:
        if self.gateway is None:
            try:
                self.gateway = self.connect()
                self.connected = True
            except Exception as exc:  # a cluster kbatch cannot stop is said, not fatal to the job
                self.log(f"cannot reach the gateway to own the job's clusters ({exc})")
        return self.gateway

    def release(self) -> None:
        """Stop them all, whatever the ending (after a last look for one made as the runner
        ended), then remove the private directory. A cluster that would not stop keeps its
        switch armed: the scheduler stops itself once this driver has exited."""
        self.adopt()
        for switch in self.switches.values():
            switch.wait_armed()
        for name in self.names:
            assert self.gateway is not None  # no cluster is owned without one
            if name in self.switches:
                self.switches[name].closing()
            try:
                self.gateway.stop_cluster(name)
                self.log(f"cluster {name} stopped")
            except Exception as exc:
                self.log(f"could not stop cluster {name} ({exc}); its dead-man's switch will")
                self.switches.pop(name, None)
        for switch in self.switches.values():
            switch.disarm()
        if self.connected and self.gateway is not None:
            self.gateway.close()
        if self.private_dir is not None:
            shutil.rmtree(self.private_dir, ignore_errors=True)


class Switch(Protocol):
    """A dead-man's switch on one cluster (:class:`kbatch_dask.driver.switch.DeadMansSwitch`)."""

    def wait_armed(self, timeout: float = 60.0) -> None: ...

    def closing(self) -> None: ...

    def disarm(self) -> None: ...


class SwitchFactory(Protocol):
    """Arms a switch on one cluster (its grace given by the supervisor)."""

    def __call__(self, *, gateway: GatewayClient, cluster: str, log: Callable[[str], None]) -> Switch: ...
