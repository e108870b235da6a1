"""submit_with_cluster: functions run in a job, on the job's cluster, with results."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, job_dirs

from kbatch_dask import JobState, submit_with_cluster
from kbatch_dask.driver.payload import pack_function, unpack_function
from kbatch_dask.errors import BadInput, KbatchError, PayloadMismatch, RemoteTraceback

pytestmark = pytest.mark.gateway


def where_work_runs(n: int) -> dict[str, object]:
    """Square numbers on the cluster and report which processes did the work."""
    import os

    from dask.distributed import get_client, get_worker

    client = get_client()
    client.wait_for_workers(2, timeout=60)

    def square(x: int) -> tuple[int, int, str]:
        return x * x, os.getpid(), get_worker().address

    results = client.gather(client.map(square, range(n)))
    return {
        "total": sum(r[0] for r in results),
        "task_pids": {r[1] for r in results},
        "task_workers": {r[2] for r in results},
        "cluster_workers": set(client.scheduler_info()["workers"]),
        "runner_pid": os.getpid(),
        "cluster": os.environ["KBATCH_DASK_CLUSTER"],
    }


class Boom(ValueError):
    pass


def explode(message: str) -> None:
    raise Boom(message)


def test_function_result_computed_on_the_cluster_workers(home: Path, tmp_path: Path) -> None:
    job = submit_with_cluster(where_work_runs, 21, n_workers=2, output=str(tmp_path / "fn.out"))
    assert job.record.state in (JobState.PENDING, JobState.RUNNING)
    result = job.result(timeout=120)
    assert result["total"] == sum(x * x for x in range(21))
    assert result["task_workers"] <= result["cluster_workers"]
    assert result["runner_pid"] not in result["task_pids"]  # not computed in the job's own process
    assert result["cluster"] == job.cluster_name
    assert job.state is JobState.SUCCEEDED


def test_remote_exception_is_reraised_with_its_traceback(home: Path, tmp_path: Path) -> None:
    job = submit_with_cluster(explode, "bad data", n_workers=0, output=str(tmp_path / "x.out"))
    with pytest.raises(Boom, match="bad data") as info:
        job.result(timeout=60)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in explode" in cause.text and "Boom: bad data" in cause.text
    assert job.state is JobState.FAILED and job.record.exit_code == 1


def test_function_from_main_module_and_kwargs(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "main_fn.py"
    script.write_text(
        textwrap.dedent(f"""
        from kbatch_dask import submit_with_cluster

        def greet(name, punctuation="."):
            return f"hello {{name}}{{punctuation}}"

        if __name__ == "__main__":
            job = submit_with_cluster(greet, "world", kwargs={{"punctuation": "!"}}, n_workers=0,
                                      output={str(tmp_path / "m.out")!r})
            print(job.result(timeout=60))
    """)
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello world!"


def test_unpicklable_argument_fails_at_submit_and_creates_nothing(home: Path) -> None:
    import threading

    with pytest.raises(BadInput, match=r"cannot ship .*where_work_runs.*lock"):
        submit_with_cluster(where_work_runs, threading.Lock(), n_workers=0)
    assert job_dirs(home) == []


def test_job_options_never_mix_with_function_kwargs(home: Path) -> None:
    with pytest.raises(BadInput, match=r"unknown job option .epochs.*kwargs="):
        submit_with_cluster(where_work_runs, 1, epochs=3)
    assert job_dirs(home) == []


def test_result_of_a_cancelled_job_says_why(home: Path, tmp_path: Path) -> None:
    import time

    job = submit_with_cluster(time.sleep, 300, n_workers=0, output=str(tmp_path / "c.out"))
    job.cancel()
    with pytest.raises(KbatchError, match=f"job {job.id} ended CANCELLED"):
        job.result(timeout=30)


def test_version_mismatch_names_both_versions() -> None:
    import io
    import pickle

    data = pack_function(max, (1, 2), {})
    buf = io.BytesIO(data)
    header = pickle.load(buf)
    forged = pickle.dumps({**header, "python": "3.99.0"}, protocol=4) + buf.read()
    with pytest.raises(PayloadMismatch, match=r"Python 3\.99\.0 .* but the job has Python 3\."):
        unpack_function(forged)


def test_get_client_outside_a_job_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from kbatch_dask import get_client

    monkeypatch.delenv("KBATCH_DASK_CLUSTER", raising=False)
    monkeypatch.delenv("KBATCH_DASK_JOB_ID", raising=False)
    with pytest.raises(KbatchError, match="not inside a kbatch job"):
        get_client()
    assert os.environ.get("KBATCH_DASK_CLUSTER") is None


def test_notebook_runs_with_parameters_and_the_cluster(home: Path, tmp_path: Path) -> None:
    pytest.importorskip("papermill")
    import nbformat
    from conftest import kbatch

    proc = kbatch(
        "-p",
        "alpha",
        "0.5",
        "-p",
        "label",
        "nightly",
        "-o",
        str(tmp_path / "nb-%j.out"),
        "--wait",
        str(ROOT / "examples" / "analysis.ipynb"),
        "--dask-workers",
        "2",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.split()[2]
    executed = nbformat.read(tmp_path / f"analysis-{job_id}.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "label=nightly alpha=0.5 cluster=" in outputs
    assert "cluster=None" not in outputs
    assert "scaled sum = 249750.0" in outputs
    assert "workers = 2" in outputs
    assert_quiet((tmp_path / f"nb-{job_id}.out").read_text(), (home / "jobs" / job_id / "driver.log").read_text())


def test_notebook_starts_once_its_workers_have_come(home: Path, tmp_path: Path) -> None:
    """--wait-for-workers holds a notebook's first cell as it holds a script's first line."""
    pytest.importorskip("papermill")
    import nbformat
    from conftest import kbatch

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "from dask.distributed import get_client\n"
            "print('workers at the first cell =', len(get_client().scheduler_info(n_workers=-1)['workers']))"
        )
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "count.ipynb"
    nbformat.write(notebook, path)
    proc = kbatch("-o", str(tmp_path / "count.out"), "--wait", str(path), "--dask-workers", "2",
                  "--wait-for-workers", "all", timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    executed = nbformat.read(tmp_path / f"count-{proc.stdout.split()[2]}.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    assert "workers at the first cell = 2" in outputs, executed.cells[-1].outputs
    # The notebook has no parameters cell, but the user gave no -p: papermill's note
    # that it has none is about kbatch's own kbatch_cluster, noise to this user.
    assert "does not contain a cell with tag 'parameters'" not in (tmp_path / "count.out").read_text()


# What a job's output and driver.log used to hold on every run, though nothing was wrong.
NOISE = ("Passed unknown parameter", "running over TCP without encryption", "Exception ignored", "Traceback")


def assert_quiet(*texts: str) -> None:
    for text in texts:
        assert [noise for noise in NOISE if noise in text] == [], text


def test_failing_notebook_names_the_users_cell_and_nothing_else(home: Path, tmp_path: Path) -> None:
    pytest.importorskip("papermill")
    import nbformat
    from conftest import kbatch

    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("rows = 3", metadata={"tags": ["parameters"]}),  # no kbatch_cluster
            nbformat.v4.new_code_cell("raise ValueError(f'no data for {rows} rows')"),
        ],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
    )
    nbformat.write(notebook, tmp_path / "two_cells.ipynb")
    out = tmp_path / "two.out"
    proc = kbatch("-p", "rows", "5", "-o", str(out), "--wait", str(tmp_path / "two_cells.ipynb"), timeout=300)
    assert proc.returncode != 0
    job_id = proc.stdout.split()[2]
    text = out.read_text()
    assert "kbatch: the notebook failed in cell 2: ValueError: no data for 5 rows" in text
    assert_quiet(text, (home / "jobs" / job_id / "driver.log").read_text())


def helper_that_raises(value: int) -> None:
    raise Boom(f"no luck with {value}")


def function_that_fails(value: int) -> None:
    helper_that_raises(value + 1)


def test_function_traceback_shows_each_job_frame_once_by_its_real_name(home: Path, tmp_path: Path) -> None:
    import traceback

    # A cluster makes the job import distributed, which pickles exceptions with their tracebacks.
    job = submit_with_cluster(function_that_fails, 1, n_workers=1, output=str(tmp_path / "f.out"))
    with pytest.raises(Boom, match="no luck with 2") as info:
        job.result(timeout=120)
    shown = "".join(traceback.format_exception(info.value))
    assert shown.count(", in function_that_fails") == 1, shown
    assert shown.count(", in helper_that_raises") == 1, shown
    assert f'File "{__file__}", line' in shown and "<dynamic-code>" not in shown, shown
    assert "helper_that_raises(value + 1)" in shown  # the job's frames show their source lines


def fails_on_a_worker(value: int) -> int:
    raise Boom(f"the worker could not take {value}")


def function_whose_task_fails(value: int) -> int:
    from dask.distributed import get_client

    client = get_client()
    client.wait_for_workers(1, timeout=60)
    return int(client.submit(fails_on_a_worker, value + 1).result())


def function_whose_map_fails(value: int) -> list[int]:
    from dask.distributed import get_client

    client = get_client()
    client.wait_for_workers(1, timeout=60)
    return list(client.gather(client.map(fails_on_a_worker, [value + 1])))


@pytest.mark.parametrize("function", [function_whose_task_fails, function_whose_map_fails])
def test_traceback_from_a_worker_shows_each_frame_once_by_its_real_name(
    home: Path, tmp_path: Path, function: Callable[[int], object]
) -> None:
    out = tmp_path / "w.out"
    job = submit_with_cluster(function, 1, n_workers=1, output=str(out))
    with pytest.raises(Boom, match="the worker could not take 2") as info:
        job.result(timeout=120)
    remote = info.value.__cause__
    assert isinstance(remote, RemoteTraceback)  # what the re-raised error shows of the job
    for text in (remote.text, out.read_text()):
        assert "<dynamic-code>" not in text, text
        assert text.count(f", in {function.__name__}") == 1, text
        assert text.count(", in fails_on_a_worker") == 1, text
        assert text.count(f'File "{__file__}", line') == 2, text  # the worker's frame by its real file, too
        assert 'raise Boom(f"the worker could not take {value}")' in text  # with its source line


def test_function_job_example_runs(home: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "function_job.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    months = [line for line in proc.stdout.splitlines() if line.startswith("month")]
    assert len(months) == 12
