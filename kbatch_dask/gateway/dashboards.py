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
    from concurrent.futures import ThreadPoolExecutor  # here: most queues have no running cluster to ask

    def fetch(link: str) -> int | None:
        try:
            return int(json.loads(_get(counts_url(link), timeout))["workers"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    with ThreadPoolExecutor(max_workers=min(16, len(links))) as pool:
        return dict(zip(links, pool.map(fetch, links), strict=False))


def _get(url: str, timeout: float) -> bytes:
    """The body of a GET of ``url``; OSError unless it answered 200 (2xx for urllib)."""
    from kbatch_dask.gateway import direct_http  # here: most queues have no running cluster to ask

    if direct_http.direct(url):
        status, reason, body = direct_http.request("GET", url, {}, timeout=timeout)
        if status not in direct_http.REDIRECT:
            if 200 <= status < 300:
                return body
            raise OSError(f"HTTP {status} {reason}")
    import urllib.request  # only a dashboard behind https or a proxy needs urllib's HTTP stack

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return bytes(resp.read())
