"""Durations and sizes as people read them (``spec.units`` parses what they write).

Outside :mod:`kbatch_dask.spec` so that the queue's table, which prints them,
does not import the spec's validation.
"""

from __future__ import annotations


def format_duration(seconds: float | None) -> str:
    """Slurm-style elapsed time: ``M:SS``, ``H:MM:SS`` or ``D-HH:MM:SS``.

    >>> format_duration(75), format_duration(3725), format_duration(90061)
    ('1:15', '1:02:05', '1-01:01:01')
    """
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{s:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{s:02d}"
    return f"{minutes}:{s:02d}"


def format_size(size: int) -> str:
    """A size of bytes as it was most likely written: the largest unit, decimal
    or binary, that gives a number of at most three decimals.

    >>> format_size(16_000_000_000), format_size(4 * 2**30), format_size(1_500_000_000), format_size(1023)
    ('16G', '4Gi', '1.5G', '1023 bytes')
    """
    for power in range(5, 0, -1):
        for base, suffix in ((1024, "i"), (1000, "")):
            number = size / base**power
            if number >= 1 and round(number, 3) * base**power == size:
                return f"{number:g}{'KMGTP'[power - 1]}{suffix}"
    return f"{size} bytes"
