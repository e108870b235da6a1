"""The classes that take their ``__repr__``, ``__eq__`` and ``__hash__`` from
``kbatch_dask.frozen`` (the settings, the job record) behave as the frozen
dataclasses' own methods did: each is checked against a plain frozen
dataclass with the same fields and values."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from kbatch_dask import settings
from kbatch_dask.gateway.settings import GatewaySettings
from kbatch_dask.gateway.status import ClusterInfo, ClusterStatus
from kbatch_dask.records import DaskInfo, JobRecord, JobState, now


def as_plain_dataclass(value: Any) -> Any:
    """``value`` as an instance of a frozen dataclass with dataclass's own methods."""
    cls = type(value)
    fields = [
        (f.name, Any, dataclasses.field(repr=f.repr, compare=f.compare, hash=f.hash)) for f in dataclasses.fields(cls)
    ]
    plain = dataclasses.make_dataclass(cls.__name__, fields, frozen=True)
    plain.__qualname__ = cls.__qualname__
    return plain(**{f.name: getattr(value, f.name) for f in dataclasses.fields(cls)})


def record() -> JobRecord:
    dask = DaskInfo("2:4", cluster="c1", cluster_status=ClusterStatus.RUNNING, live_workers=3)
    at = now()
    return JobRecord("k3x9q", "train", "me", "local", JobState.RUNNING, at - timedelta(minutes=1), "t.py",
                     args=("--epochs", "3"), started=at, dask=dask, owned_clusters=("c2",))  # fmt: skip


SETTINGS = ["dask", "driver", "queue", "local", "embedded_gateway", "hub", "report"]
VALUES = {name: lambda name=name: getattr(settings.load(), name) for name in SETTINGS}
VALUES.update({
    "record": record,
    "dask-info": lambda: DaskInfo("2", cluster="c1"),
    "cluster-info": lambda: ClusterInfo("c1", ClusterStatus.RUNNING, "http://gw/clusters/c1/status"),
})  # fmt: skip


def hashed(value: Any) -> int | str:
    try:
        return hash(value)
    except TypeError as exc:  # a dict among the fields, for both
        return str(exc)


@pytest.mark.parametrize("name", list(VALUES))
def test_shown_compared_hashed_and_frozen_as_a_dataclass(name: str) -> None:
    value = VALUES[name]()
    plain = as_plain_dataclass(value)
    assert repr(value) == repr(plain)
    assert hashed(value) == hashed(plain)
    first = dataclasses.fields(value)[0].name
    copy = dataclasses.replace(value)
    changed = dataclasses.replace(value, **{first: "other"})
    assert copy == value and hashed(copy) == hashed(value)
    assert changed != value
    assert value != plain  # another class: not equal, as between two dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, first, "other")


def test_the_whole_settings_compare_and_show_as_before() -> None:
    config = settings.load()
    assert config == settings.load()
    assert repr(config).startswith("Settings(backend=") and "queue=Queue(recent_hours=" in repr(config)
    with pytest.raises(TypeError, match="unhashable"):
        hash(config)  # a pod template is a dict, as with dataclass's own __hash__


def test_the_gateway_settings_hide_their_secrets_as_before() -> None:
    gateway = GatewaySettings("http://gw", None, "http://gw", "basic", {"password": "s3cret"}, {"X": "1"})
    assert repr(gateway) == repr(as_plain_dataclass(gateway)) and "s3cret" not in repr(gateway)
    assert gateway == GatewaySettings("http://gw", None, "http://gw", "basic", {"password": "s3cret"}, {"X": "1"})
