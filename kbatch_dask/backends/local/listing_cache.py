"""Which job directories there are, without listing ``<home>/jobs`` each time.

``kqueue`` needs two things of the directories: the jobs whose end is not indexed
(the active ones, read from their records) and the indexed jobs whose directory
was removed (not shown). Listing 10,000 directories and reading 10,000 indexed
ids costs more than the rest of a queue, and gives the same answer until a
directory is added or removed. So the answer is kept in ``<home>/index/listing``
with the jobs directory's stamp (its mtime and link count, which every ``mkdir``
and ``rmdir`` in it changes) and used while the stamp is the same::

    {"stamp": [mtime_ns, nlink], "active": ["k3x9q", ...], "gone": []}

A job that ends changes no stamp: a reader that finds a listed active job ended
lists again (:class:`~kbatch_dask.backends.local.backend.LocalBackend.list`). A
directory's timestamps come from a coarse clock: an answer is kept only for a
directory last changed :data:`SETTLED` seconds or more ago, so that no change can
share the stamp it was listed under.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable

from kbatch_dask.files import write_atomic

SETTLED = 5.0  # seconds since the jobs directory last changed before its listing is kept

Stamp = tuple[int, int]


def stamp(jobs_dir: str) -> Stamp | None:
    """The jobs directory's mtime and link count; None if it does not exist."""
    try:
        st = os.stat(jobs_dir)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_nlink


def read(path: str, current: Stamp | None) -> tuple[list[str], set[str]] | None:
    """The kept active and gone ids, if kept under the ``current`` stamp; else None."""
    if current is None:
        return None
    try:
        with open(path) as f:
            kept = json.load(f)
        if tuple(kept["stamp"]) != current:
            return None
        return [str(i) for i in kept["active"]], {str(i) for i in kept["gone"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def keep(path: str, listed: Stamp | None, active: Iterable[str], gone: Iterable[str]) -> None:
    """Keep what was listed under the stamp ``listed`` (taken before the listing), if the
    directory has settled; a state directory that cannot be written is listed next time too."""
    if listed is None or time.time_ns() - listed[0] < SETTLED * 1e9:
        return
    data = {"stamp": list(listed), "active": sorted(active), "gone": sorted(gone)}
    with contextlib.suppress(OSError):
        write_atomic(path, json.dumps(data).encode(), 0o600)
