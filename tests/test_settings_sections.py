"""The settings classes share one ``__repr__``, ``__eq__`` and ``__hash__``
(``settings._Section``, cheaper to make than dataclass's own): they behave as
the frozen dataclasses' own did."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kbatch_dask import settings


def as_plain_dataclass(section: Any) -> Any:
    """``section`` as an instance of a frozen dataclass with the same fields and dataclass's own methods."""
    cls = type(section)
    fields = [(f.name, Any) for f in dataclasses.fields(cls)]
    plain = dataclasses.make_dataclass(cls.__name__, fields, frozen=True)
    plain.__qualname__ = cls.__qualname__
    return plain(**{f.name: getattr(section, f.name) for f in dataclasses.fields(cls)})


@pytest.mark.parametrize("name", ["dask", "driver", "queue", "local", "embedded_gateway", "hub", "report"])
def test_a_section_shows_compares_and_hashes_as_a_frozen_dataclass(name: str) -> None:
    section = getattr(settings.load(), name)
    plain = as_plain_dataclass(section)
    assert repr(section) == repr(plain)
    assert section == getattr(settings.load(), name) and hash(section) == hash(plain)
    first = dataclasses.fields(section)[0].name
    changed = dataclasses.replace(section, **{first: "other"})
    assert changed != section and (changed == section) == (as_plain_dataclass(changed) == plain)
    assert section != plain  # another class: not equal, as between two dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(section, first, "other")


def test_the_whole_settings_compare_and_show_as_before() -> None:
    config = settings.load()
    assert config == settings.load()
    assert repr(config).startswith("Settings(backend=") and "queue=Queue(recent_hours=" in repr(config)
    with pytest.raises(TypeError, match="unhashable"):
        hash(config)  # a pod template is a dict, as with dataclass's own __hash__
