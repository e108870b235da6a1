"""The job spec: units, directives, option layers and their precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbatch_dask.errors import BadInput
from kbatch_dask.spec import JobSpec, Workers, build_spec, expand_pattern
from kbatch_dask.spec.directives import parse_directives
from kbatch_dask.spec.units import format_duration, parse_seconds, parse_size, parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512M", 512_000_000),
        ("4G", 4_000_000_000),
        ("4Gi", 4 * 2**30),
        ("1.5G", 1_500_000_000),
        ("4GB", 4_000_000_000),
        ("4GiB", 4 * 2**30),
        ("100Ki", 102_400),
        ("2T", 2 * 10**12),
    ],
)
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["4GG", "0", "0G", "-1G", "G", "4", "four G", ""])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(BadInput, match="expected a size like 512M, 4G or 4Gi"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("0:05", 5),
        ("1:30", 90),
        ("2:00:00", 7200),
        ("1-0", 86400),
        ("1-2", 93600),
        ("1-2:3", 93780),
        ("1-2:3:4", 93784),
        ("90", 5400),
    ],
)
def test_slurm_times(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    "text", ["1:61:00", "1:60", "1-24", "x", "1:2:3:4", "-5", "1-", "", "²", "1:²", "²-1", "٣", "UNLIMITEDx"]
)
def test_bad_times(text: str) -> None:
    with pytest.raises(BadInput, match="--time"):
        parse_time(text)


@pytest.mark.parametrize("text", ["0", "0:00", "0-0", "UNLIMITED", "unlimited", "INFINITE", " Unlimited "])
def test_zero_and_unlimited_times_mean_no_limit(text: str) -> None:
    assert parse_time(text) is None


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("2.5", 2.5), (10, 10.0), ("1e3", 1000.0)])
def test_timeouts(value: object, seconds: float) -> None:
    assert parse_seconds(value) == seconds


@pytest.mark.parametrize(
    "value", ["nan", "inf", "-inf", "-1", float("nan"), float("inf"), -0.5, "soon", "٣", None, True]
)
def test_bad_timeouts(value: object) -> None:
    with pytest.raises(BadInput, match=r"--timeout .*: expected a number of seconds, 0 or more"):
        parse_seconds(value)


def test_directives_after_a_byte_order_mark() -> None:
    assert parse_directives("\ufeff#!/usr/bin/env python\n#KBATCH -J x\n") == {"name": "x"}


def test_durations() -> None:
    assert [format_duration(s) for s in (0, 59, 61, 3600, 86399, 86400 * 2 + 5)] == [
        "0:00",
        "0:59",
        "1:01",
        "1:00:00",
        "23:59:59",
        "2-00:00:05",
    ]


def test_workers() -> None:
    assert Workers.parse("3") == Workers(3, 3)
    assert Workers.parse("0:5") == Workers(0, 5, adaptive=True)
    assert str(Workers.parse("2:20")) == "2:20"
    assert Workers.parse("0") is None


def script(tmp_path: Path, text: str = "print(1)\n", name: str = "train.py") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_precedence_cli_over_env_over_directives_over_config(tmp_path: Path) -> None:
    path = script(
        tmp_path, "#!/usr/bin/env python\n#KBATCH --dask-workers 3 --time 10 -J fromfile\n# KBATCH --comment=c\n"
    )
    config = {"dask_workers": "1", "output": "cfg-%j.out", "backend": "local"}
    env = {"KBATCH_DASK_WORKERS": "4", "USER": "me"}

    spec = build_spec(path, options={"dask_workers": "5"}, environ=env, config=config, cwd=str(tmp_path))
    assert str(spec.workers) == "5"  # command line wins
    spec = build_spec(path, environ=env, config=config, cwd=str(tmp_path))
    assert str(spec.workers) == "4"  # then KBATCH_* variables
    spec = build_spec(path, environ={}, config=config, cwd=str(tmp_path))
    assert str(spec.workers) == "3"  # then #KBATCH lines
    assert (spec.name, spec.comment, spec.time_limit, spec.output) == ("fromfile", "c", 600, "cfg-%j.out")
    spec = build_spec(script(tmp_path, name="plain.py"), environ={}, config=config, cwd=str(tmp_path))
    assert str(spec.workers) == "1" and spec.name == "plain"  # then config


def test_repeatable_options_accumulate_across_layers(tmp_path: Path) -> None:
    path = script(tmp_path, "#KBATCH --env A=file --env B=file\n")
    spec = build_spec(path, options={"env": ("A=cli",)}, environ={"KBATCH_ENV": "C=env"}, config={}, cwd=str(tmp_path))
    assert dict(spec.env) == {"A": "cli", "B": "file", "C": "env"}


def test_directives_stop_at_first_code_line(tmp_path: Path) -> None:
    path = script(tmp_path, "# comment\n\n#KBATCH -J early\nimport os\n#KBATCH -J late\n")
    assert build_spec(path, environ={}, cwd=str(tmp_path)).name == "early"


def test_bad_env_variable_names_its_variable(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="KBATCH_MEMORY: --memory 'lots'"):
        build_spec(script(tmp_path), environ={"KBATCH_MEMORY": "lots"}, cwd=str(tmp_path))


def test_spec_round_trips_through_json(tmp_path: Path) -> None:
    spec = build_spec(
        script(tmp_path),
        ["--epochs", "3"],
        {"dask_workers": "2:8", "worker_memory": "4Gi", "dask_option": ("profile=big", "gpu=true"), "time": "1:00"},
        environ={},
        cwd=str(tmp_path),
    )
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert spec.cluster_options() == {"profile": "big", "gpu": True, "worker_memory": 4.0}


def test_script_snapshot_is_taken_at_submit_and_patterns_expand(tmp_path: Path) -> None:
    assert expand_pattern("~/%u/%x-%j.%%", "k3x9q", "t", "al", "/w").endswith("/al/t-k3x9q.%")
    assert expand_pattern("rel/%j.out", "ab", "t", "al", "/w") == "/w/rel/ab.out"


def test_directives_allow_trailing_comments(tmp_path: Path) -> None:
    path = script(tmp_path, "# KBATCH --dask-workers 2:20   # adaptive\n#KBATCH --comment 'a # kept'\n")
    spec = build_spec(path, environ={}, cwd=str(tmp_path))
    assert (str(spec.workers), spec.comment) == ("2:20", "a # kept")
