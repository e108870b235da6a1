"""Timing side by side: interleaved repetitions, medians, ratios, one table.

These machines are noisy, so every comparison is made inside one run: the
commands of a group take turns, round after round, and each row reports the
median of its own repetitions next to the median of its baseline.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    """A target from the issue: ``value <= limit`` (absolute), or ``value <= limit × baseline``
    (``times``), or ``value <= baseline + limit`` (``plus``), or ``value >= limit`` (``at-least``,
    for rates)."""

    limit: float
    kind: str = "abs"  # "abs", "times", "plus" or "at-least"

    def met(self, value: float, baseline: float | None) -> bool:
        if self.kind == "at-least":
            return value >= self.limit
        if self.kind == "times":
            return baseline is not None and value <= self.limit * baseline
        if self.kind == "plus":
            return baseline is not None and value <= baseline + self.limit
        return value <= self.limit

    def text(self, unit: str, baseline_name: str | None) -> str:
        if self.kind == "at-least":
            return f"≥ {self.limit:g} {unit}"
        if self.kind == "times":
            return f"≤ {self.limit:g} × {baseline_name}"
        if self.kind == "plus":
            return f"≤ {baseline_name} + {self.limit:g} {unit}"
        return f"≤ {self.limit:g} {unit}"


@dataclass
class Row:
    """One measured quantity: its samples, and what it is compared with."""

    name: str
    samples: list[float]
    unit: str = "s"
    baseline: str | None = None  # the name of another row
    target: Target | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")


def interleaved(runs: Mapping[str, Callable[[], float]], repeat: int) -> dict[str, list[float]]:
    """Call each of ``runs`` ``repeat`` times, taking turns (the starting one rotates
    every round); each call returns the quantity it measured."""
    names = list(runs)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeat):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(runs[name]())
    return samples


def timed(cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None) -> float:
    """Wall-clock seconds of one command run to its end; fails loudly if the command does."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return elapsed


def process_start(pid: int) -> float:
    """When process ``pid`` started, as ``time.time()`` (10 ms resolution, from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    since_boot = ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME) + since_boot


def peak_rss_mib(pid: int) -> float | None:
    """The peak resident memory of a running process so far (VmHWM), in MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f}"
    if unit in ("MiB", "MB/s"):
        return f"{value:.0f}"
    if unit == "ms":
        return f"{value:.2f}"
    return f"{value:g}"


def table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table (also readable as plain text)."""
    by_name = {r.name: r for r in rows}
    header = ["what", "median", "n", "compared with", "ratio", "target", "met"]
    lines = [header]
    for row in rows:
        base = by_name.get(row.baseline) if row.baseline else None
        ratio = f"{row.median / base.median:.2f}×" if base and base.median else ""
        if base and row.target and row.target.kind == "plus":
            ratio = f"{row.median - base.median:+.3f} {row.unit}"
        target = row.target.text(row.unit, row.baseline) if row.target else ""
        met = ""
        if row.target:
            met = "yes" if row.target.met(row.median, base.median if base else None) else "**no**"
        name = row.name + (f" ({row.note})" if row.note else "")
        median = f"{_fmt(row.median, row.unit)} {row.unit}"
        lines.append([name, median, str(len(row.samples)), row.baseline or "", ratio, target, met])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        out.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |")
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)
