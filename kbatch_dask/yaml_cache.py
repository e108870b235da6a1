"""YAML config files parsed once per version of the file, then read as JSON.

Every command reads the shipped ``kbatch.yaml`` and the YAML files of dask's
config paths (dask-gateway writes one into ``~/.config/dask`` on first use).
Importing PyYAML and parsing them costs more than the rest of ``kqueue``, so
the data of a parsed file is kept under ``$XDG_CACHE_HOME/kbatch-dask/yaml``
(``~/.cache/...``), keyed by the file's path, size and modification time
(nanoseconds): an edited file is parsed again. Only data that JSON holds
exactly is kept; anything else (a date, a key that is not a string) is parsed
every time. The copies are private (0600 in a 0700 folder): dask config may
hold a gateway's password. A cache that cannot be written or read is skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

VERSION = 1  # of the cache's format


def cache_dir(environ: Mapping[str, str] = os.environ) -> str:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kbatch-dask", "yaml")


def load(path: str, parse: Callable[[str], Any]) -> Any:
    """The data of the YAML file ``path``: from its cached copy if the file did not
    change since, else ``parse(path)`` (kept for next time)."""
    try:
        st = os.stat(path)
    except OSError:
        return parse(path)  # its own error, as without a cache
    key: list[Any] = [VERSION, os.path.abspath(path), st.st_size, st.st_mtime_ns]
    copy = os.path.join(cache_dir(), key[1].replace("%", "%25").replace("/", "%2F") + ".json")
    try:
        with open(copy) as f:
            entry = json.load(f)
        if entry["key"] == key:
            return entry["data"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    data = parse(path)
    _keep(copy, key, data)
    return data


def _keep(copy: str, key: list[Any], data: Any) -> None:
    try:
        text = json.dumps({"key": key, "data": data})
        if json.loads(text)["data"] != data:  # not exactly JSON (e.g. a YAML date): parse it each time
            return
        os.makedirs(os.path.dirname(copy), mode=0o700, exist_ok=True)
        tmp = f"{copy}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, copy)  # readers see the old copy or the new one
    except (OSError, TypeError, ValueError):
        pass  # no cache here: parsed each time, as before
