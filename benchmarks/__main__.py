"""Run the benchmarks and print one table: ``python -m benchmarks`` from the repository.

python -m benchmarks                 the issue's sizes (about 2 minutes on 2 cores)
python -m benchmarks --smoke         tiny sizes, one repetition (the test suite runs this)
python -m benchmarks --only startup,local-queue
python -m benchmarks --only local-queue,submit,logs --no-bytecode-cache
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the fake API server lives in tests/fakes/kube
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    cli_cases,
    driver_cases,
    kube_cases,
    scaling_cases,
    service_cases,
    switch_cases,
    web_cases,
)
from benchmarks.context import Context, Sizes  # noqa: E402
from benchmarks.measure import Row, table  # noqa: E402

GROUPS: dict[str, Callable[[Context], list[Row]]] = {
    "startup": cli_cases.startup,
    "local-queue": cli_cases.local_queue,
    "submit": cli_cases.submit,
    "logs": cli_cases.logs,
    "kube-queue": kube_cases.kube_queue,
    "driver": driver_cases.driver,
    "switch": switch_cases.switch,
    "service": service_cases.service_queue,
    "web-page": web_cases.web_page,
    "scaling": scaling_cases.scaling,
}


def machine() -> str:
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return (
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {pages * page_size / 2**30:.1f} GiB memory, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--only", help=f"comma-separated groups of: {', '.join(GROUPS)}")
    parser.add_argument("--repeat", type=int, help="repetitions of every measurement (default: 15 fast, 5 slow)")
    parser.add_argument("--gateway-home", help="a state directory whose embedded gateway to use (else a new one)")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="let the commands compile their modules on every run where PYTHONDONTWRITEBYTECODE is set",
    )
    args = parser.parse_args(argv)
    groups = args.only.split(",") if args.only else list(GROUPS)
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group {unknown[0]!r}; groups: {', '.join(GROUPS)}")
    sizes = Sizes.smoke() if args.smoke else Sizes()
    if args.repeat:
        sizes = dataclasses.replace(sizes, repeat_fast=args.repeat, repeat_slow=args.repeat)
    rows: list[Row] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kbatch-bench-") as scratch:
        gateway_home = Path(args.gateway_home) if args.gateway_home else Path(scratch) / "gateway-home"
        gateway_home.mkdir(exist_ok=True)
        ctx = Context(
            sizes,
            Path(scratch),
            gateway_home,
            own_gateway=not args.gateway_home,
            bytecode_cache=not args.no_bytecode_cache,
        )
        try:
            ctx.settings  # noqa: B018 (start the embedded gateway before anything is timed)
            for name in groups:
                print(f"# {name} ...", file=sys.stderr, flush=True)
                rows += GROUPS[name](ctx)
        finally:
            ctx.close()
    print(f"kbatch-dask benchmarks{' (smoke: tiny sizes, 1 repetition)' if args.smoke else ''}")
    print(f"machine: {machine()}; load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"medians of interleaved repetitions; {time.monotonic() - began:.0f} s in all\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
