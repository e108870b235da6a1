"""Concurrent HTTP load on one URL, many users' tokens: wrk (Debian's ``wrk``, a
C load generator, so the clients take little of this 2-core machine) when it is
installed, else aiohttp clients in this process (which then compete with the
server for the CPU and inflate its latency)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class Load:
    p50: float
    p99: float
    rate: float  # requests per second
    requests: int
    tool: str


def run(url: str, tokens: list[str], clients: int, seconds: float, requests: int, scratch: Path) -> Load:
    """``clients`` connections at once, each sending its next request as soon as
    the last one answered, with the tokens taken in turn: for ``seconds`` (wrk) or
    ``requests`` per client (aiohttp)."""
    if shutil.which("wrk"):
        return _wrk(url, tokens, clients, seconds, scratch)
    return asyncio.run(_aiohttp(url, tokens, clients, requests))


def _wrk(url: str, tokens: list[str], clients: int, seconds: float, scratch: Path) -> Load:
    script = scratch / "tokens.lua"
    quoted = ", ".join(f'"{t}"' for t in tokens)
    script.write_text(
        f"local tokens = {{{quoted}}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #tokens + 1\n"
        '  return wrk.format("GET", nil, {["Authorization"] = "token " .. tokens[i]})\n'
        "end\n"
    )
    argv = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)$", out, re.MULTILINE))
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Load(_seconds(percentiles["50"]), _seconds(percentiles["99"]), rate, done, "wrk")


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


async def _aiohttp(url: str, tokens: list[str], clients: int, per_client: int) -> Load:
    import statistics

    import aiohttp

    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(i: int) -> None:
            headers = {"Authorization": f"token {tokens[i % len(tokens)]}"}
            for _ in range(per_client):
                began = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"GET {response.url}: HTTP {response.status}")
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return Load(statistics.median(latencies), p99, len(latencies) / elapsed, len(latencies), "aiohttp")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
