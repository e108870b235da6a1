"""The embedded Dask-Gateway: a real ``dask-gateway-server`` on 127.0.0.1.

Used by the local backend when no ``gateway.address`` is configured, so that a
fresh ``pip install`` runs jobs with real Dask clusters (local processes). It
runs as a detached daemon with its own log, authenticates with a random secret
kept in a 0600 file, is started on first need, reused while healthy and
restarted when dead. Its state lives in ``<home>/gateway/``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from kbatch_dask.errors import GatewayError
from kbatch_dask.files import locked, write_atomic
from kbatch_dask.gateway.client import health
from kbatch_dask.gateway.settings import GatewaySettings
from kbatch_dask.procs import pid_alive
from kbatch_dask.settings import EmbeddedGatewayLimits

STATE_FILE = "gateway.json"
START_TIMEOUT = 30.0

_CONFIG_TEMPLATE = """\
# Written by kbatch-dask for its embedded gateway; regenerated on every start.
from dask_gateway_server.options import Float, Integer, Options
__import__("kbatch_dask.backends.local.process_stop", fromlist=["install"]).install()  # no backoff in a stop

here = {gwdir!r}
with open(here + "/secret") as f:
    password = f.read().strip()
with open(here + "/encrypt-key") as f:
    encrypt_key = f.read().strip()

c.DaskGateway.address = "127.0.0.1:0"
c.Proxy.address = "127.0.0.1:{http_port}"
c.Proxy.tcp_address = "127.0.0.1:{tcp_port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = password
c.DBBackendBase.db_url = "sqlite:///" + here + "/gateway.sqlite"
c.DBBackendBase.db_encrypt_keys = [encrypt_key]
c.DBBackendBase.cluster_start_timeout = {start_timeout}
c.DBBackendBase.worker_start_timeout = {start_timeout}
c.LocalBackend.clusters_directory = here + "/clusters"
# distributed >= 2026.6 has no dask-scheduler/dask-worker commands.
c.ClusterConfig.scheduler_cmd = [{python!r}, "-m", "dask", "scheduler", "--preload", "kbatch_dask.driver.deadman"]
# The gateway passes the scheduler --host 127.0.0.1, the workers none: their ports would listen everywhere.
c.ClusterConfig.worker_cmd = [{python!r}, "-m", "dask", "worker", "--host", "127.0.0.1"]
c.ClusterConfig.cluster_max_workers = {max_workers}
c.ClusterConfig.idle_timeout = 0
c.ClusterConfig.environment = {{"KBATCH_DASK_ATTACH_TIMEOUT": "{attach_timeout}"}}  # read by the deadman preload


def _options_handler(options):
    return {{
        "worker_cores": options.worker_cores,
        "worker_memory": int(options.worker_memory * 2**30),
    }}


c.Backend.cluster_options = Options(
    Integer("worker_cores", default={worker_cores}, min=1, max={worker_cores_max}, label="Cores per worker"),
    Float("worker_memory", default={worker_memory}, min=0.25, max={worker_memory_max}, label="Memory per worker (GiB)"),
    handler=_options_handler,
)
"""

# The only variables the gateway is started with (it passes some of them on to its
# schedulers and workers): what finds the interpreter and its libraries, the user's
# identity and the locale. The gateway outlives the job that started it, so nothing
# else of that job's environment (cloud keys, tokens) may live on in it.
GATEWAY_ENVIRONMENT = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "TZ",
    "LANG",
    "LC_*",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "CONDA_ROOT",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",
    "LD_LIBRARY_PATH",
)


def gateway_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` the embedded gateway is started with.

    >>> gateway_environment({"PATH": "/bin", "LC_TIME": "C", "AWS_SECRET_ACCESS_KEY": "k"})
    {'PATH': '/bin', 'LC_TIME': 'C'}
    """
    return {k: v for k, v in environ.items() if any(fnmatch.fnmatchcase(k, p) for p in GATEWAY_ENVIRONMENT)}


@dataclass(frozen=True)
class EmbeddedGateway:
    """Where the embedded gateway listens and how to authenticate to it."""

    address: str
    proxy_address: str
    pid: int
    username: str
    password: str
    log: str

    def dask_config_env(self) -> dict[str, str]:
        """``DASK_GATEWAY__*`` variables that point dask-gateway clients here."""
        return {
            "DASK_GATEWAY__ADDRESS": self.address,
            "DASK_GATEWAY__PROXY_ADDRESS": self.proxy_address,
            "DASK_GATEWAY__PUBLIC_ADDRESS": self.address,
            "DASK_GATEWAY__AUTH__TYPE": "basic",
            "DASK_GATEWAY__AUTH__KWARGS__USERNAME": self.username,
            "DASK_GATEWAY__AUTH__KWARGS__PASSWORD": self.password,
        }

    def settings(self) -> GatewaySettings:
        """How kbatch reaches this gateway."""
        return GatewaySettings(
            address=self.address,
            proxy_address=self.proxy_address,
            public_address=self.address,
            auth_type="basic",
            auth_kwargs={"username": self.username, "password": self.password},
            env=self.dask_config_env(),
            embedded=True,
        )


def gateway_dir(home: str) -> str:
    return os.path.join(home, "gateway")


def recorded(home: str, username: str) -> EmbeddedGateway | None:
    """The embedded gateway recorded for ``home`` whose process still runs: healthy,
    or still starting (it is recorded before it answers), or None."""
    gwdir = gateway_dir(home)
    try:
        with open(os.path.join(gwdir, STATE_FILE)) as f:
            state = json.load(f)
        with open(os.path.join(gwdir, "secret")) as f:
            password = f.read().strip()
    except (OSError, ValueError):
        return None
    gateway = EmbeddedGateway(
        address=state["address"],
        proxy_address=state["proxy_address"],
        pid=int(state["pid"]),
        username=username,
        password=password,
        log=os.path.join(gwdir, "gateway.log"),
    )
    return gateway if _runs_gateway(gateway.pid, gwdir) else None


def status(home: str, username: str) -> EmbeddedGateway | None:
    """The running, healthy embedded gateway of ``home``, or None."""
    gateway = recorded(home, username)
    return gateway if gateway and _healthy(gateway.address) else None


def starting(gateway: EmbeddedGateway) -> bool:
    """True while a recorded gateway runs but does not answer yet."""
    return not _healthy(gateway.address)


def ensure_running(home: str, username: str, limits: EmbeddedGatewayLimits) -> EmbeddedGateway:
    """Return the healthy embedded gateway, starting it if needed: one per state
    directory, so a gateway another process started (and may still be starting) is
    waited for, never doubled."""
    gateway = status(home, username)
    if gateway:
        return gateway
    with _locked(home):
        gateway = recorded(home, username)
        if gateway is None:
            return _start(home, username, limits)
        pid, gwdir = gateway.pid, gateway_dir(home)
        if _wait_healthy(gateway, lambda: not _runs_gateway(pid, gwdir)):
            return gateway
        if not _runs_gateway(pid, gwdir):
            return _start(home, username, limits)  # it died while starting: start it anew
        raise GatewayError(
            f"the embedded Dask-Gateway (pid {pid}) runs but does not answer at {gateway.address}; "
            f"see {gateway.log}, or restart it with `kbatch gateway stop` (jobs start it again)"
        )


def stop(home: str, timeout: float = 20.0) -> bool:
    """Stop the embedded gateway (it stops its clusters first), running or still starting; False if none ran."""
    import signal  # here: the queue reads this module's state, and stops nothing

    gwdir = gateway_dir(home)
    with _locked(home):
        try:
            with open(os.path.join(gwdir, STATE_FILE)) as f:
                pid = int(json.load(f)["pid"])
        except (OSError, ValueError, KeyError):
            return False
        os.unlink(os.path.join(gwdir, STATE_FILE))
        if not _runs_gateway(pid, gwdir):
            return False
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not pid_alive(pid):
                    return True
                time.sleep(0.1)
        return True


def start(
    home: str, username: str, limits: EmbeddedGatewayLimits, ports: tuple[int, int] | None = None
) -> EmbeddedGateway:
    """Start the embedded gateway of ``home`` (which must not be running).

    It listens on ``ports`` (HTTP, scheduler TCP) if given, else on the ports
    it had last time when they are free — so that clients of a restarted
    gateway find it again — else on free ports.
    """
    with _locked(home):
        return _start(home, username, limits, ports)


def _start(
    home: str, username: str, limits: EmbeddedGatewayLimits, ports: tuple[int, int] | None = None
) -> EmbeddedGateway:
    import secrets  # here, as subprocess: the queue reads this module, only a start needs them
    import subprocess

    gwdir = gateway_dir(home)
    os.makedirs(os.path.join(gwdir, "clusters"), mode=0o700, exist_ok=True)
    os.chmod(gwdir, 0o700)
    password = _secret_file(os.path.join(gwdir, "secret"), lambda: secrets.token_urlsafe(32))
    _secret_file(os.path.join(gwdir, "encrypt-key"), _fernet_key)
    http_port, tcp_port = ports or _last_ports(gwdir) or free_ports(2)
    config_path = os.path.join(gwdir, "dask_gateway_config.py")
    config = _CONFIG_TEMPLATE.format(
        gwdir=gwdir,
        http_port=http_port,
        tcp_port=tcp_port,
        python=sys.executable,
        max_workers=limits.cluster_max_workers,
        worker_cores=limits.worker_cores,
        worker_cores_max=limits.worker_cores_max,
        worker_memory=limits.worker_memory,
        worker_memory_max=limits.worker_memory_max,
        start_timeout=limits.start_timeout,
        attach_timeout=limits.attach_timeout,
    )
    _write_private(config_path, config)
    log_path = os.path.join(gwdir, "gateway.log")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dask_gateway_server", "-f", config_path],
            cwd=gwdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=gateway_environment(os.environ),
        )
    gateway = EmbeddedGateway(
        address=f"http://127.0.0.1:{http_port}",
        proxy_address=f"gateway://127.0.0.1:{tcp_port}",
        pid=proc.pid,
        username=username,
        password=password,
        log=log_path,
    )
    try:
        # Recorded before it answers, so that it is never unseen: a job cancelled
        # while waiting below leaves it running and recorded (it belongs to the state
        # directory, not to the job), `kbatch gateway status` says it is starting and
        # the next job waits for it instead of starting a second one.
        state = {k: v for k, v in asdict(gateway).items() if k in ("address", "proxy_address", "pid")}
        _write_private(os.path.join(gwdir, STATE_FILE), json.dumps(state))
    except BaseException:
        proc.kill()  # not recorded: nothing else could ever find it
        proc.wait()
        raise
    _write_private(os.path.join(gwdir, "last-ports"), f"{http_port} {tcp_port}")
    if not _wait_healthy(gateway, lambda: proc.poll() is not None):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(gwdir, STATE_FILE))
        raise GatewayError(f"the embedded Dask-Gateway did not start; last lines of {log_path}:\n{_tail(log_path)}")
    return gateway


def _wait_healthy(gateway: EmbeddedGateway, died: Callable[[], bool]) -> bool:
    """Wait for ``gateway`` to answer; False if it ``died`` or did not answer in time."""
    deadline = time.monotonic() + START_TIMEOUT
    while not _healthy(gateway.address):
        if died() or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _runs_gateway(pid: int, gwdir: str) -> bool:
    """True if ``pid`` runs and is the gateway of ``gwdir`` (which works there), not a
    process that got its pid after it died; where there is no /proc, the pid is trusted."""
    if not pid_alive(pid):
        return False
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return not os.path.isdir("/proc/self")
    return cwd == os.path.realpath(gwdir)


def _last_ports(gwdir: str) -> tuple[int, int] | None:
    import socket

    try:
        with open(os.path.join(gwdir, "last-ports")) as f:
            http_port, tcp_port = (int(p) for p in f.read().split())
    except (OSError, ValueError):
        return None
    for port in (http_port, tcp_port):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return None
    return http_port, tcp_port


def _healthy(address: str) -> bool:
    return health(address, timeout=2) is None


def _locked(home: str) -> contextlib.AbstractContextManager[None]:
    gwdir = gateway_dir(home)
    os.makedirs(gwdir, mode=0o700, exist_ok=True)
    return locked(os.path.join(gwdir, "lock"))


def _secret_file(path: str, make: Any) -> str:
    with contextlib.suppress(FileNotFoundError), open(path) as f:
        if value := f.read().strip():
            return value
    value = make()
    _write_private(path, value)
    return str(value)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _write_private(path: str, text: str) -> None:
    write_atomic(path, text.encode(), 0o600)


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now."""
    import socket

    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"
