"""Live worker counts, read from the clusters' dashboards."""

from __future__ import annotations

import json
from collections.abc import Iterable


def counts_url(dashboard: str) -> str:
    """The scheduler's ``counts.json`` behind a dashboard link.

    >>> counts_url("http://gw/clusters/abc/status")
    'http://gw/clusters/abc/json/counts.json'
    """
    base = dashboard[: -len("/status")] if dashboard.endswith("/status") else dashboard.rstrip("/")
    return f"{base}/json/counts.json"


def live_workers(dashboards: Iterable[str], timeout: float = 1.0) -> dict[str, int | None]:
    """Live worker counts from each dashboard's ``json/counts.json``, read
    concurrently; None where the count could not be read in time."""
    links = list(dict.fromkeys(dashboards))
    if not links:
        return {}
    import urllib.request  # here: most queues have no running cluster to ask
    from concurrent.futures import ThreadPoolExecutor

    def fetch(link: str) -> int | None:
        try:
            with urllib.request.urlopen(counts_url(link), timeout=timeout) as resp:
                return int(json.load(resp)["workers"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    with ThreadPoolExecutor(max_workers=min(16, len(links))) as pool:
        return dict(zip(links, pool.map(fetch, links), strict=False))
