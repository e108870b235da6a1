"""Parsing and formatting of sizes, time limits and durations.

Pure functions; every error is a :class:`~kbatch_dask.errors.BadInput` whose
message names the offending value and what is allowed.
"""

from __future__ import annotations

import re

from kbatch_dask.errors import BadInput

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([KMGTP]?)(i?)(B?)\s*$", re.IGNORECASE)
_SIZE_HINT = "expected a size like 512M, 4G or 4Gi"


def parse_size(text: str, option: str = "--memory") -> int:
    """Parse a memory size into bytes.

    ``K M G T P`` are decimal (as in Kubernetes and Dask), ``Ki Mi Gi Ti Pi``
    binary; a trailing ``B`` is allowed (``4GB``, ``4GiB``). A unit is required.

    >>> parse_size("512M"), parse_size("4Gi"), parse_size("1.5G")
    (512000000, 4294967296, 1500000000)
    """
    match = _SIZE_RE.match(str(text))
    if not match or not match.group(2):
        raise BadInput(f"{option} {text!r}: {_SIZE_HINT}")
    number, unit, binary, _ = match.groups()
    power = "KMGTP".index(unit.upper()) + 1
    value = float(number) * ((1024 if binary else 1000) ** power)
    if value < 1:
        raise BadInput(f"{option} {text!r}: must be more than 0 ({_SIZE_HINT})")
    return int(value)


def format_size(size: int) -> str:
    """A size in bytes in the units it was most likely given in: binary when it is a
    whole number of KiB, MiB, ... (``4Gi``), else decimal.

    >>> format_size(4 * 2**30), format_size(200_000_000), format_size(1_500_000_000)
    ('4 GiB', '200 MB', '1.5 GB')
    """
    for power in range(5, 0, -1):
        if size % 1024**power == 0:
            return f"{size // 1024**power} {'KMGTP'[power - 1]}iB"
    power = max((p for p in range(1, 6) if size >= 1000**p), default=0)
    return f"{size / 1000**power:g} {'KMGTP'[power - 1]}B" if power else f"{size} B"


_TIME_HINT = "expected minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S (slurm formats)"


def parse_time(text: str, option: str = "--time") -> int:
    """Parse a slurm time limit into seconds.

    >>> parse_time("30"), parse_time("1:30"), parse_time("2:00:00"), parse_time("1-12")
    (1800, 90, 7200, 129600)
    """
    raw = str(text).strip()
    days = 0
    rest = raw
    if "-" in raw:
        day_part, _, rest = raw.partition("-")
        if not day_part.isdigit():
            raise BadInput(f"{option} {text!r}: {_TIME_HINT}")
        days = int(day_part)
    parts = rest.split(":")
    if not rest or not all(p.isdigit() for p in parts) or len(parts) > 3:
        raise BadInput(f"{option} {text!r}: {_TIME_HINT}")
    nums = [int(p) for p in parts]
    if "-" in raw:
        # D-H, D-H:M, D-H:M:S
        nums += [0] * (3 - len(nums))
        hours, minutes, seconds = nums
        bounded = [("hours", hours, 24), ("minutes", minutes, 60), ("seconds", seconds, 60)]
    elif len(nums) == 1:
        hours, minutes, seconds = 0, nums[0], 0
        bounded = []
    elif len(nums) == 2:
        hours, minutes, seconds = 0, nums[0], nums[1]
        bounded = [("seconds", seconds, 60)]
    else:
        hours, minutes, seconds = nums
        bounded = [("minutes", minutes, 60), ("seconds", seconds, 60)]
    for what, value, limit in bounded:
        if value >= limit:
            raise BadInput(f"{option} {text!r}: {what} must be below {limit} ({_TIME_HINT})")
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise BadInput(f"{option} {text!r}: a time limit must be more than 0")
    return total


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
