"""YAML config files are parsed once per version of the file: the cached copy
gives the same data, an edited file is parsed again, data JSON cannot hold
exactly is parsed every time, and the copies are private."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from kbatch_dask import config, yaml_cache


@pytest.fixture
def parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths parsed with PyYAML, while the cache is under ``tmp_path``."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    seen: list[str] = []
    parse_yaml = config.parse_yaml

    def parse(path: str) -> Any:
        seen.append(path)
        return parse_yaml(path)

    monkeypatch.setattr(config, "parse_yaml", parse)
    return seen


def test_a_file_is_parsed_once_until_it_changes(tmp_path: Path, parses: list[str]) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("kbatch:\n  queue: {recent-hours: 48}\n  dask:\n    workers: '1:4'\n")
    first, second = config.load_yaml(str(path)), config.load_yaml(str(path))
    assert first == second == {"kbatch": {"queue": {"recent-hours": 48}, "dask": {"workers": "1:4"}}}
    assert parses == [str(path)]
    path.write_text("kbatch:\n  queue: {recent-hours: 12}\n")
    os.utime(path, ns=(1, 1))  # a new modification time even within the clock's resolution
    assert config.load_yaml(str(path)) == {"kbatch": {"queue": {"recent-hours": 12}}}
    assert parses == [str(path)] * 2
    copies = list((tmp_path / "cache" / "kbatch-dask" / "yaml").iterdir())
    assert [oct(c.stat().st_mode & 0o777) for c in copies] == ["0o600"]


def test_data_json_cannot_hold_is_parsed_every_time(tmp_path: Path, parses: list[str]) -> None:
    path = tmp_path / "dated.yaml"
    path.write_text("kbatch:\n  since: 2026-01-01\n  1: one\n")
    assert (
        config.load_yaml(str(path)) == config.load_yaml(str(path)) == {"kbatch": {"since": date(2026, 1, 1), 1: "one"}}
    )
    assert len(parses) == 2


def test_without_a_writable_cache_files_are_parsed_as_before(tmp_path: Path, parses: list[str]) -> None:
    (tmp_path / "cache").write_text("not a folder")
    path = tmp_path / "mine.yaml"
    path.write_text("gateway: {address: 'http://gw:8000'}\n")
    assert config.load_yaml(str(path)) == config.load_yaml(str(path)) == {"gateway": {"address": "http://gw:8000"}}
    assert len(parses) == 2
    assert yaml_cache.cache_dir().startswith(str(tmp_path / "cache"))
