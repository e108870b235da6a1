"""Parsing and formatting of sizes, time limits and durations.

Pure functions; every error is a :class:`~kbatch_dask.errors.BadInput` whose
message names the offending value and what is allowed.
"""

from __future__ import annotations

import math
import re

from kbatch_dask.errors import BadInput
from kbatch_dask.formats import format_duration as format_duration  # spec.units.format_*, as before
from kbatch_dask.formats import format_size as format_size

# re.ASCII: \d would also match other scripts' digits, which float() then reads.
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([KMGTP]?)(i?)(B?)\s*$", re.IGNORECASE | re.ASCII)
_SIZE_HINT = "expected a size like 512M, 4G or 4Gi"


def is_digits(text: str) -> bool:
    """Whether ``text`` is a whole number in ASCII digits: ``str.isdigit`` alone
    also takes ``²`` (which ``int`` refuses) and other scripts' digits.

    >>> is_digits("42"), is_digits("²"), is_digits("٣"), is_digits("")
    (True, False, False, False)
    """
    return text.isascii() and text.isdigit()


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


_TIME_HINT = "expected minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S (slurm formats), or 0 or UNLIMITED for none"
_NO_LIMIT = ("UNLIMITED", "INFINITE")  # slurm's words for no limit


def parse_time(text: str, option: str = "--time") -> int | None:
    """Parse a slurm time limit into seconds; None for no limit (``0``,
    ``UNLIMITED`` or ``INFINITE``, as in slurm).

    >>> parse_time("30"), parse_time("1:30"), parse_time("2:00:00"), parse_time("1-12")
    (1800, 90, 7200, 129600)
    >>> parse_time("0"), parse_time("unlimited")
    (None, None)
    """
    raw = str(text).strip()
    if raw.upper() in _NO_LIMIT:
        return None
    days = 0
    rest = raw
    if "-" in raw:
        day_part, _, rest = raw.partition("-")
        if not is_digits(day_part):
            raise BadInput(f"{option} {text!r}: {_TIME_HINT}")
        days = int(day_part)
    parts = rest.split(":")
    if not rest or not all(is_digits(p) for p in parts) or len(parts) > 3:
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
    return total or None


def parse_seconds(value: object, option: str = "--timeout") -> float:
    """A number of seconds to wait: finite and 0 or more (``nan`` would never
    time out, so it is refused with ``inf``; no timeout is no value at all).

    >>> parse_seconds("2.5"), parse_seconds(10)
    (2.5, 10.0)
    """
    text = str(value)
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    # ASCII only: float() also reads other scripts' digits, which no other option takes.
    if not text.isascii() or not 0 <= seconds < math.inf:
        raise BadInput(f"{option} {value!r}: expected a number of seconds, 0 or more (leave it out to wait to the end)")
    return seconds


AGE_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_age(text: str, option: str = "--since") -> int:
    """A length of time such as ``90d``, ``12h``, ``30m``, ``2w`` or ``45s``, in seconds.

    >>> parse_age("2d"), parse_age("12h"), parse_age("1w")
    (172800, 43200, 604800)
    """
    raw = str(text).strip().lower()
    if len(raw) < 2 or raw[-1] not in AGE_UNITS or not is_digits(raw[:-1]):
        raise BadInput(f"{option} {text!r}: expected a number and a unit, e.g. 90d, 12h, 30m, 2w or 45s")
    return int(raw[:-1]) * AGE_UNITS[raw[-1]]
