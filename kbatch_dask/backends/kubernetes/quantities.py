"""CPU and memory as Kubernetes quantities, exact and shortest."""

from __future__ import annotations


def cpu_quantity(cpus: float) -> str:
    """``2`` → ``"2"``, ``0.5`` → ``"500m"``.

    >>> cpu_quantity(2), cpu_quantity(0.5), cpu_quantity(1.25)
    ('2', '500m', '1250m')
    """
    if float(cpus).is_integer():
        return str(int(cpus))
    return f"{round(cpus * 1000)}m"


def memory_quantity(n: int) -> str:
    """The shortest exact Kubernetes spelling of a byte count.

    >>> memory_quantity(4 * 2**30), memory_quantity(1_500_000_000), memory_quantity(1001)
    ('4Gi', '1500M', '1001')
    """
    for suffixes, base in ((("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"), 1024), (("E", "P", "T", "G", "M", "k"), 1000)):
        for power, suffix in zip(range(6, 0, -1), suffixes, strict=True):
            if n % base**power == 0:
                return f"{n // base**power}{suffix}"
    return str(n)


_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def parse_cpu(quantity: object) -> float | None:
    """A CPU quantity as a number of CPUs; None when it is not one.

    >>> parse_cpu("500m"), parse_cpu("2"), parse_cpu(None)
    (0.5, 2.0, None)
    """
    text = str(quantity or "")
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return None


def parse_memory(quantity: object) -> int | None:
    """A memory quantity in bytes; None when it is not one.

    >>> parse_memory("4Gi"), parse_memory("1500M"), parse_memory("1001"), parse_memory("x")
    (4294967296, 1500000000, 1001, None)
    """
    text = str(quantity or "")
    for units in (_BINARY, _DECIMAL):
        for suffix, factor in units.items():
            if text.endswith(suffix):
                text, scale = text[: -len(suffix)], factor
                break
        else:
            continue
        break
    else:
        scale = 1
    try:
        return int(float(text) * scale)
    except ValueError:
        return None
