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
