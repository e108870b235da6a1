"""Watches of the fake API server with Kubernetes' resourceVersion semantics:
resumed from a resourceVersion, ``410 Expired`` once the history is compacted,
and connections dropped under the client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import ProtocolError

from .fake_apiserver import FakeApiServer
from .resources import STORED

NS = "ns"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"


def watch(server: FakeApiServer, resource_version: str = "", timeout: int = 1) -> Iterator[dict[str, Any]]:
    """The events of one watch of the namespace's ConfigMaps, as they arrive."""
    query = f"watch=true&timeoutSeconds={timeout}" + (
        f"&resourceVersion={resource_version}" if resource_version else ""
    )
    response = urllib3.request(
        "GET",
        f"{server.url}{CONFIGMAPS}?{query}",
        headers={"Authorization": f"Bearer {server.token}"},
        preload_content=False,
    )
    assert response.status == 200
    buffer = b""
    for chunk in response.stream(amt=None):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield json.loads(line)


def create(server: FakeApiServer, name: str) -> str:
    """Create a ConfigMap over the store (as any writer would); its resourceVersion."""
    return str(server.create("configmaps", NS, {"metadata": {"name": name}})["metadata"]["resourceVersion"])


def names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


def test_a_watch_from_a_resource_version_replays_the_changes_after_it(fake_apiserver: FakeApiServer) -> None:
    create(fake_apiserver, "before")
    since = create(fake_apiserver, "at")
    create(fake_apiserver, "after")
    fake_apiserver.store.delete(STORED["configmaps"], NS, "before")
    assert names(list(watch(fake_apiserver, since))) == [("ADDED", "after"), ("DELETED", "before")]


def test_a_watch_without_a_resource_version_starts_with_the_current_objects(fake_apiserver: FakeApiServer) -> None:
    create(fake_apiserver, "one")
    create(fake_apiserver, "two")
    assert names(list(watch(fake_apiserver))) == [("ADDED", "one"), ("ADDED", "two")]


def test_a_watch_from_before_the_compacted_history_ends_with_410_expired(fake_apiserver: FakeApiServer) -> None:
    since = create(fake_apiserver, "old")
    create(fake_apiserver, "newer")
    fake_apiserver.compact()
    events = list(watch(fake_apiserver, since))
    assert [e["type"] for e in events] == ["ERROR"]
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith(f"too old resource version: {since} (")


def test_a_watch_from_the_compacted_resource_version_is_served(fake_apiserver: FakeApiServer) -> None:
    create(fake_apiserver, "old")
    fake_apiserver.compact()
    since = fake_apiserver.store.resource_version
    create(fake_apiserver, "new")
    assert names(list(watch(fake_apiserver, since))) == [("ADDED", "new")]


def test_history_beyond_the_limit_is_compacted(fake_apiserver: FakeApiServer) -> None:
    fake_apiserver.store.history_limit = 2
    first = create(fake_apiserver, "a")
    kept = create(fake_apiserver, "b")
    create(fake_apiserver, "c")
    create(fake_apiserver, "d")
    assert [e["type"] for e in watch(fake_apiserver, first)] == ["ERROR"]
    assert names(list(watch(fake_apiserver, kept))) == [("ADDED", "c"), ("ADDED", "d")]


def test_dropped_watches_are_cut_without_an_end_and_a_resumed_one_sees_what_followed(
    fake_apiserver: FakeApiServer,
) -> None:
    create(fake_apiserver, "seen")
    events = watch(fake_apiserver, timeout=30)
    first = next(events)
    assert first["object"]["metadata"]["name"] == "seen"
    fake_apiserver.drop_watches()
    with pytest.raises(ProtocolError):
        next(events)  # the chunked stream stops mid-way: no clean end
    create(fake_apiserver, "while-dropped")
    resumed = list(watch(fake_apiserver, first["object"]["metadata"]["resourceVersion"]))
    assert names(resumed) == [("ADDED", "while-dropped")]


def test_max_watch_seconds_ends_a_longer_watch_cleanly(fake_apiserver: FakeApiServer) -> None:
    fake_apiserver.max_watch_seconds = 0.2
    create(fake_apiserver, "one")
    assert names(list(watch(fake_apiserver, timeout=600))) == [("ADDED", "one")]  # ends, without an error
