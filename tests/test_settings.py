"""One typed settings object: every key the code reads has its default and its
comment in kbatch.yaml and a row in docs/configuration.md, every documented key
is read, and nothing outside settings.py reads the ``kbatch`` config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dask.config
import pytest
import yaml

from kbatch_dask import settings
from kbatch_dask.errors import BadInput

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kbatch_dask"


def leaves(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        nested = isinstance(value, dict) and key != "pod-template"  # a pod-spec fragment, one value
        out += leaves(value, f"{prefix}{key}.") if nested else [f"{prefix}{key}"]
    return out


def package_source() -> str:
    """The package's code, but for the modules that read the config itself."""
    readers = (PACKAGE / "settings.py", PACKAGE / "config.py")
    return "\n".join(p.read_text() for p in PACKAGE.rglob("*.py") if p not in readers)


def test_every_setting_has_its_default_in_kbatch_yaml_and_nothing_more() -> None:
    shipped = yaml.safe_load((PACKAGE / "kbatch.yaml").read_text())["kbatch"]
    assert sorted(leaves(shipped)) == sorted(settings.all_keys())


def test_every_key_in_kbatch_yaml_has_a_comment() -> None:
    lines = (PACKAGE / "kbatch.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"\s+[a-z-]+: \S", line):  # a key with a value (sections have none)
            above = lines[number - 1].strip()
            assert above.startswith("#") or lines[number - 2].strip().startswith("#"), f"no comment above {line!r}"


def test_every_setting_has_a_row_in_the_configuration_docs() -> None:
    documented = set(re.findall(r"^\| `kbatch\.([a-z.-]+)` \|", (ROOT / "docs" / "configuration.md").read_text(), re.M))
    assert documented == set(settings.all_keys())


def test_every_setting_is_read_by_the_code() -> None:
    """A documented key that no code reads is a promise the tool does not keep."""
    source = package_source()
    names = {key: key.split(".")[-1].replace("-", "_") for key in settings.all_keys()}
    unread = [key for key, name in names.items() if not re.search(rf"\.{name}\b", source)]
    assert unread == []


def test_only_settings_py_reads_the_kbatch_config() -> None:
    source = package_source()
    assert re.findall(r"config\.(?:get|dask_get)\([\"']kbatch", source) == []
    assert "config.get(" not in source, "read settings through kbatch_dask.settings.load()"


def test_overrides_are_typed_and_bad_values_name_the_key() -> None:
    with dask.config.set({"kbatch.driver.kill-grace": "2.5", "kbatch.hub.job-tokens": False}):
        loaded = settings.load()
    assert loaded.driver.kill_grace == 2.5 and loaded.hub.job_tokens is False
    with dask.config.set({"kbatch.queue.recent-hours": "soon"}), pytest.raises(BadInput) as bad:
        settings.load()
    assert str(bad.value) == "config kbatch.queue.recent-hours = 'soon': expected a number"
    with dask.config.set({"kbatch.kubernetes.page-size": 2.5}), pytest.raises(BadInput) as bad:
        settings.load()
    assert "kbatch.kubernetes.page-size" in str(bad.value) and "whole number" in str(bad.value)


def test_environment_overrides_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_KBATCH__QUEUE__RECENT_HOURS", "48")
    dask.config.refresh()
    try:
        assert settings.load().queue.recent_hours == 48.0
    finally:
        monkeypatch.undo()
        dask.config.refresh()


def test_the_fields_types_are_those_typing_gives() -> None:
    import dataclasses
    import typing

    sections = [c for c in vars(settings).values() if isinstance(c, type) and dataclasses.is_dataclass(c)]
    assert len(sections) > 10
    for section in sections:
        assert settings._hints(section) == typing.get_type_hints(section), section.__name__
