"""Dask's performance report rendered in the driver (kbatch_dask/driver/page.py) from
what the meter collected, next to the page the scheduler itself makes, on a real
in-process Dask cluster."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from distributed import Client, LocalCluster

from kbatch_dask.driver import meter, page


def inc(i: int) -> int:
    return i + 1


def test_the_page_rendered_from_the_collected_data_is_the_one_the_scheduler_makes() -> None:
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(meter.JobMeter(task_stream=True), name=meter.JobMeter.name)
        assert client.gather(client.map(inc, range(20))) == list(range(1, 21))
        collected = client.run_on_scheduler(meter.collect, page=True)
        start = collected["report"]["metered_from"]
        own = client.sync(client.scheduler.performance_report, start=start, last_count=0, code="x", mode=None)
    rendered = page.render(collected["page"], "x")

    assert _titles(rendered) == _titles(own) and "Task Stream" in _titles(rendered)
    assert ["inc"] * 20 in list(_name_columns(rendered)), "the task stream holds no rectangle for each task"
    assert "number of tasks: 20" in rendered


def _document(html: str) -> Any:
    found = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)
    assert found, "the page embeds no bokeh document"
    return json.loads(found.group(1))


def _walk(item: Any) -> Iterator[Any]:
    todo = [item]
    while todo:
        item = todo.pop()
        yield item
        todo += item.values() if isinstance(item, dict) else item if isinstance(item, list) else []


def _titles(html: str) -> set[str]:
    """The tabs' titles (the panels Dask's report has)."""
    return {
        item["attributes"]["title"]
        for item in _walk(_document(html))
        if isinstance(item, dict) and item.get("name") == "TabPanel"
    }


def _name_columns(html: str) -> Iterator[list[Any]]:
    """The ``name`` columns of the page's data sources (the task stream's: a prefix per rectangle)."""
    for item in _walk(_document(html)):
        if isinstance(item, list) and len(item) == 2 and item[0] == "name" and isinstance(item[1], list):
            yield item[1]
