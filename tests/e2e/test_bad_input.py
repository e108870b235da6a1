"""Bad input: exit 2, one line naming the problem, no traceback, nothing created."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, job_dirs, kbatch

from kbatch_dask.cli import main

GOOD = "print('hi')\n"


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


CASES = [
    # (id, script body or None for "no script file", args, expected words in the error)
    ("missing-script", None, ["missing.py"], "no such file"),
    ("unknown-option", GOOD, ["--frobnicate", "job.py"], "No such option '--frobnicate' (see 'kbatch submit --help')"),
    ("bad-size", GOOD, ["--memory", "4GG", "job.py"], "--memory '4GG': expected a size like 512M, 4G or 4Gi"),
    ("zero-size", GOOD, ["--memory", "0", "job.py"], "--memory '0'"),
    ("bad-time", GOOD, ["--time", "1:61:00", "job.py"], "--time '1:61:00': minutes must be below 60"),
    ("time-negative", GOOD, ["--time", "-5", "job.py"], "--time '-5'"),
    ("time-letters", GOOD, ["-t", "soon", "job.py"], "--time 'soon'"),
    ("workers-reversed", GOOD, ["--dask-workers", "5:2", "job.py"], "--dask-workers '5:2'"),
    ("workers-negative", GOOD, ["--dask-workers", "-1", "job.py"], "--dask-workers '-1'"),
    ("workers-word", GOOD, ["--dask-workers", "abc", "job.py"], "--dask-workers 'abc'"),
    ("workers-zero-range", GOOD, ["--dask-workers", "0:0", "job.py"], "--dask-workers '0:0'"),
    ("env-no-equals", GOOD, ["--env", "NOEQUALS", "job.py"], "--env 'NOEQUALS': expected KEY=VALUE"),
    ("dask-option-no-equals", GOOD, ["--dask-option", "x", "job.py"], "--dask-option 'x'"),
    ("bad-directive", "#KBATCH --dask-wrokers 2\nprint(1)\n", ["job.py"], "line 1"),
    ("directive-bad-value", "#!/usr/bin/env python\n#KBATCH --time 99:99\n", ["job.py"], "line 2"),
    ("empty-script", "", ["job.py"], "is empty"),
    ("directory-script", "DIR", ["job.py"], "is a directory"),
    ("binary-script", b"\x7fELF\x00\x00\x01", ["job.py"], "binary file"),
    ("fifo-script", "FIFO", ["job.py"], "is a named pipe (FIFO), expected a regular file"),
    ("device-script", None, ["/dev/zero"], "script '/dev/zero': is a character device, expected a regular file"),
    ("huge-script", "HUGE", ["job.py"], "a script may be at most 64 MiB"),
    ("superscript-workers", GOOD, ["--dask-workers", "²", "job.py"], "--dask-workers '²': expected N"),
    ("superscript-workers-range", GOOD, ["--dask-workers", "1:²", "job.py"], "--dask-workers '1:²'"),
    ("superscript-retries", GOOD, ["--retries", "²", "job.py"], "--retries '²': expected a whole number"),
    ("superscript-gpus", GOOD, ["--gpus", "²", "job.py"], "--gpus '²': expected a whole number"),
    ("superscript-time", GOOD, ["--time", "²", "job.py"], "--time '²': expected minutes"),
    ("superscript-days", GOOD, ["--time", "²-1", "job.py"], "--time '²-1': expected minutes"),
    ("arabic-digit-memory", GOOD, ["--memory", "٣G", "job.py"], "--memory '٣G': expected a size"),
    ("arabic-digit-cpus", GOOD, ["--cpus", "٣", "job.py"], "--cpus '٣': expected a positive number"),
    ("arabic-digit-worker-cores", GOOD, ["--worker-cores", "٣", "job.py"], "--worker-cores '٣'"),
    ("arabic-digit-wait-for", GOOD, ["--wait-for-workers", "٣", "job.py"], "--wait-for-workers '٣'"),
    ("directive-after-bom", b"\xef\xbb\xbf#KBATCH --dask-wrokers 2\nprint(1)\n", ["job.py"], "job.py, line 1"),
    ("bad-pattern", GOOD, ["-o", "out-%q.txt", "job.py"], "unknown pattern %q"),
    ("mail-type-typo", GOOD, ["--mail-type", "BEGN", "job.py"], "--mail-type 'BEGN': expected BEGIN, END, FAIL, ALL"),
    ("mail-type-none-and", GOOD, ["--mail-type", "NONE,END", "job.py"], "--mail-type 'NONE,END': NONE goes alone"),
    ("mail-user-no-domain", GOOD, ["--mail-user", "alice", "job.py"], "--mail-user 'alice': expected one address"),
    ("mail-user-list", GOOD, ["--mail-user", "a@b.org,c@d.org", "job.py"], "--mail-user 'a@b.org,c@d.org'"),
    ("mail-directive", "#KBATCH --mail-type fial\nprint(1)\n", ["job.py"], "line 1"),
    ("bad-backend", GOOD, ["--backend", "slurm", "job.py"], "--backend 'slurm'"),
    ("bad-export", GOOD, ["--export", "A B", "job.py"], "--export 'A B'"),
    ("name-with-slash", GOOD, ["-J", "a/b", "job.py"], "must not contain '/'"),
    ("name-too-long", GOOD, ["-J", "x" * 200, "job.py"], "at most 128 characters"),
    ("bad-cpus", GOOD, ["--cpus", "many", "job.py"], "--cpus 'many': expected a positive number"),
    ("bad-retries", GOOD, ["--retries", "-2", "job.py"], "--retries '-2'"),
    ("missing-chdir", GOOD, ["-D", "/nonexistent/dir", "job.py"], "--chdir '/nonexistent/dir': no such directory"),
    ("bad-state-filter", None, ["queue", "--state", "DONE"], "--state 'DONE'"),
    ("queue-bad-format", None, ["queue", "-o", "csv"], "'csv' is not one of"),
    ("no-script", None, ["--dask-workers", "2"], "Missing argument 'SCRIPT'"),
]


@pytest.mark.parametrize(("body", "args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_creates_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], body: object, args: list[str], expected: str
) -> None:
    script = tmp_path / "job.py"
    if body == "DIR":
        script.mkdir()
    elif body == "FIFO":
        os.mkfifo(script)
    elif body == "HUGE":
        with script.open("wb") as f:  # sparse: 65 MiB on disk costs nothing
            f.truncate(65 * 2**20)
    elif isinstance(body, bytes):
        script.write_bytes(body)
    elif isinstance(body, str):
        script.write_text(body)
    code, out, err = run_main(args, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    assert expected in lines[0]
    assert "Traceback" not in err
    assert job_dirs(home) == []


def test_unreadable_script(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read any file")
    script = tmp_path / "job.py"
    script.write_text(GOOD)
    script.chmod(stat.S_IWUSR)
    code, _, err = run_main(["job.py"], capsys)
    assert code == 2 and "cannot be read" in err


@pytest.mark.parametrize("command", ["show", "logs", "cancel", "wait"])
def test_unknown_job_id_is_one_line_exit_1(home: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, _, err = run_main([command, "nosuch"], capsys)
    assert code == 1
    assert err.strip() == "Error: no job 'nosuch' (see `kbatch queue --all` for known jobs)"


def test_console_script_reports_bad_input_the_same_way(home: Path, tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(GOOD)
    proc = kbatch("--memory", "4GG", "job.py", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "Error: --memory '4GG': expected a size like 512M, 4G or 4Gi"
    assert job_dirs(home) == []


def test_dry_run_validates_and_creates_nothing(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "job.py").write_text("#KBATCH --dask-workers 1:4\nprint(1)\n")
    code, out, err = run_main(["--dry-run", "--memory", "4Gi", "job.py"], capsys)
    assert code == 0, err
    assert "workers: '1:4'" in out and "memory: 4294967296" in out
    assert job_dirs(home) == []


ENV_CASES = [
    ("KBATCH_TIME", "1:61:00", "KBATCH_TIME: --time '1:61:00': minutes must be below 60"),
    ("KBATCH_DASK_WORKERS", "5:2", "KBATCH_DASK_WORKERS: --dask-workers '5:2'"),
    ("KBATCH_MEMORY", "4GG", "KBATCH_MEMORY: --memory '4GG'"),
    ("KBATCH_ENV", "NOEQUALS", "KBATCH_ENV: --env 'NOEQUALS'"),
    ("KBATCH_PARAMETER", "alpha", "KBATCH_PARAMETER='alpha': expected KEY VALUE pairs"),
]


@pytest.mark.parametrize(("var", "value", "expected"), ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_bad_environment_variables_name_the_variable(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    var: str,
    value: str,
    expected: str,
) -> None:
    (tmp_path / "job.py").write_text(GOOD)
    monkeypatch.setenv(var, value)
    code, _, err = run_main(["job.py"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"Error: {expected}" + err.strip().split(expected, 1)[1]]
    assert job_dirs(home) == []


API_CASES = [
    ("dask-workers", {"dask_workers": -1}, "--dask-workers '-1'"),
    ("memory", {"memory": "4GG"}, "--memory '4GG'"),
    ("unknown-option", {"walltime": "1:00"}, "unknown option 'walltime'"),
    ("workers-tuple", {"dask_workers": (5, 2)}, "--dask-workers '5:2'"),
    ("env-dict-bad-key", {"env": {"1BAD": "x"}}, "--env '1BAD=x'"),
]


@pytest.mark.parametrize(("options", "expected"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_python_api_raises_bad_input_and_creates_nothing(
    home: Path, tmp_path: Path, options: dict[str, object], expected: str
) -> None:
    from kbatch_dask import BadInput, submit

    (tmp_path / "job.py").write_text(GOOD)
    with pytest.raises(BadInput) as info:
        submit(str(tmp_path / "job.py"), **options)
    assert expected in str(info.value)
    assert job_dirs(home) == []


def test_function_job_bad_workers(home: Path) -> None:
    from kbatch_dask import BadInput, submit_with_cluster

    with pytest.raises(BadInput, match="--dask-workers 'abc'"):
        submit_with_cluster(print, n_workers="abc")
    assert job_dirs(home) == []


@pytest.mark.parametrize("name", ["my nightly run", "análisis-día-🌊", "x" * 100])
def test_names_with_spaces_unicode_and_100_characters_are_kept(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    (tmp_path / "job.py").write_text(GOOD)
    code, out, err = run_main(["--dry-run", "-J", name, "job.py"], capsys)
    assert code == 0, err
    import yaml

    assert yaml.safe_load(out)["spec"]["name"] == name


@pytest.mark.gateway
def test_syntax_error_is_a_runtime_failure_not_a_submit_error(home: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("print('unclosed'\n")
    proc = kbatch("-o", "b.out", "--wait", "broken.py", "--dask-workers", "0", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Job " in proc.stderr and "FAILED" in proc.stderr
    assert "SyntaxError" in (tmp_path / "b.out").read_text()


@pytest.mark.parametrize("limit", ["0", "UNLIMITED", "unlimited", "INFINITE", "0:00"])
def test_time_zero_or_unlimited_means_no_limit_over_a_directive(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], limit: str
) -> None:
    import yaml

    (tmp_path / "job.py").write_text("#KBATCH --time 10\nprint(1)\n")
    code, out, err = run_main(["--dry-run", "--time", limit, "job.py"], capsys)
    assert code == 0, err
    assert yaml.safe_load(out)["spec"]["time_limit"] is None
    assert job_dirs(home) == []


def test_directives_after_a_utf8_byte_order_mark_are_read(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    (tmp_path / "job.py").write_bytes(b"\xef\xbb\xbf#!/usr/bin/env python\n#KBATCH -J from-directive\nprint(1)\n")
    code, out, err = run_main(["--dry-run", "job.py"], capsys)
    assert code == 0, err
    assert yaml.safe_load(out)["spec"]["name"] == "from-directive"


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "soon", "٣"])
def test_wait_timeout_must_be_finite_seconds(home: Path, tmp_path: Path, timeout: str) -> None:
    proc = kbatch("wait", "nosuch", "--timeout", timeout, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"Error: --timeout {timeout!r}: expected a number of seconds, 0 or more"
        + proc.stderr.strip().split("0 or more", 1)[1]
    ]


def test_wait_timeout_in_the_python_api_must_be_finite_seconds(home: Path, tmp_path: Path) -> None:
    from kbatch_dask import BadInput, submit

    (tmp_path / "job.py").write_text(GOOD)
    job = submit(str(tmp_path / "job.py"), dask_workers=0, output=str(tmp_path / "job.out"))
    with pytest.raises(BadInput, match="timeout nan: expected a number of seconds, 0 or more"):
        job.wait(timeout=float("nan"))
    assert job.wait(timeout=120).value == "SUCCEEDED"


def numbers() -> object:
    yield 1


async def later() -> int:
    return 1


FUNCTION_CASES = [
    ("generator", numbers, {}, "submit_with_cluster: numbers is a generator function"),
    ("async", later, {}, "submit_with_cluster: later is an async function"),
    ("int-kwargs-key", print, {"kwargs": {1: 2}}, "kwargs keys must be the function's parameter names, got 1"),
    ("kwargs-not-a-mapping", print, {"kwargs": [("a", 1)]}, "kwargs must be a dict of keyword arguments, got list"),
    ("not-callable", None, {}, "submit_with_cluster: None is not callable"),
]


@pytest.mark.parametrize(
    ("fn", "options", "expected"), [c[1:] for c in FUNCTION_CASES], ids=[c[0] for c in FUNCTION_CASES]
)
def test_function_jobs_that_cannot_work_are_refused_at_submit(
    home: Path, fn: object, options: dict[str, object], expected: str
) -> None:
    from kbatch_dask import BadInput, submit_with_cluster

    with pytest.raises(BadInput) as info:
        submit_with_cluster(fn, n_workers=0, **options)  # type: ignore[arg-type]
    assert expected in str(info.value)
    assert job_dirs(home) == []


@pytest.mark.parametrize("script", [None, 3, b"job.py", ""])
def test_submit_needs_a_script_path(home: Path, tmp_path: Path, script: object) -> None:
    from kbatch_dask import BadInput, submit

    (tmp_path / "job.py").write_text(GOOD)
    with pytest.raises(BadInput, match=r"^submit: the script must be a path \(str or os.PathLike\), got "):
        submit(script)  # type: ignore[arg-type]
    assert job_dirs(home) == []


@pytest.mark.parametrize("command", ["show", "logs", "cancel", "wait"])
def test_a_truncated_record_is_one_line_exit_1(home: Path, tmp_path: Path, command: str) -> None:
    broken = home / "jobs" / "zzzzz"
    broken.mkdir(parents=True)
    (broken / "record.json").write_text('{"id": "zzzzz", "state": "RUNN')  # half-written
    proc = kbatch(command, "zzzzz", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == (
        "Error: job 'zzzzz': record unreadable (JSONDecodeError: Unterminated string starting at: "
        f"line 1 column 26 (char 25)); see {broken / 'record.json'}"
    )


def without_privileges() -> list[str]:
    """A command prefix under which file permissions hold: root ignores them, but not
    root in a user namespace of its own (the files stay its own, the override goes)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-U", "true"]).returncode != 0:
        pytest.skip("running as root without user namespaces: permissions cannot be tested")
    return ["unshare", "-U"]


READ_ONLY_CASES = [
    ("jobs", "cannot create a job directory in {jobs}: Permission denied"),
    ("home", "cannot create the state directory {jobs}: Permission denied"),  # no jobs/ yet
]


@pytest.mark.parametrize(("read_only", "expected"), READ_ONLY_CASES, ids=[c[0] for c in READ_ONLY_CASES])
def test_a_read_only_state_directory_is_one_line_exit_1(
    home: Path, tmp_path: Path, read_only: str, expected: str
) -> None:
    (tmp_path / "job.py").write_text(GOOD)
    if read_only == "jobs":
        (home / "jobs").mkdir()
    locked = home / "jobs" if read_only == "jobs" else home
    locked.chmod(0o555)
    try:
        proc = subprocess.run(
            [*without_privileges(), str(BIN / "kbatch"), "job.py", "--dask-workers", "0"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == "Error: " + expected.format(jobs=home / "jobs")
    assert job_dirs(home) == []
