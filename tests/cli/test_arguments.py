"""Which arguments of ``kbatch [OPTS] SCRIPT [ARGS]`` are kbatch's, and which the script's."""

from __future__ import annotations

import pytest

from kbatch_dask.cli.arguments import split_submit_args


def test_before_the_script_every_option_is_kbatchs() -> None:
    assert split_submit_args(["-o", "x.out", "--wait", "-J", "run", "s.py", "a"]) == [
        "-o", "x.out", "--wait", "-J", "run", "s.py", "a",
    ]  # fmt: skip


def test_after_the_script_options_other_than_the_dask_ones_are_the_scripts() -> None:
    args = ["process.py", "-o", "results.csv", "--name", "run1", "--wait", "-t", "5", "--parsable"]
    assert split_submit_args(args) == args


@pytest.mark.parametrize(
    "dask",
    [
        ["--dask-workers", "20"],
        ["--dask-workers=20"],
        ["--dask-option", "image=x"],
        ["--worker-cores", "2"],
        ["--worker-memory", "4G"],
        ["--wait-for-workers", "all"],
    ],
)
def test_after_the_script_the_dask_options_are_still_kbatchs(dask: list[str]) -> None:
    assert split_submit_args(["train.py", "--epochs", "3", *dask, "-o", "r.csv"]) == [
        *dask, "train.py", "--epochs", "3", "-o", "r.csv",
    ]  # fmt: skip


def test_double_dash_ends_kbatchs_options_even_for_the_dask_ones() -> None:
    assert split_submit_args(["train.py", "--dask-workers", "2", "--", "--dask-workers", "5"]) == [
        "--dask-workers", "2", "train.py", "--dask-workers", "5",
    ]  # fmt: skip


def test_spelled_long_the_short_flags_before_the_script_given_their_values() -> None:
    args = ["-o", "x.out", "-W", "-p", "alpha", "1", "s.py", "-o", "r.csv", "--dask-workers", "2"]
    assert split_submit_args(args, spell_long=True) == [
        "--output", "x.out", "-W", "--parameter", "alpha", "1", "--dask-workers", "2", "s.py", "-o", "r.csv",
    ]  # fmt: skip
    assert split_submit_args(["-o"], spell_long=True) == ["-o"]  # click's error names the flag as typed
