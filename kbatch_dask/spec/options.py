"""The submit options, defined once.

The same click parameters serve the command line, ``#KBATCH`` directives and
``KBATCH_*`` environment variables, so an option is spelled the same way
everywhere. Values stay raw strings here; :mod:`kbatch_dask.spec` validates them.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from typing import Any

import click

from kbatch_dask.errors import BadInput

# Options that describe the job (allowed on the command line, in #KBATCH lines,
# as KBATCH_* variables and as keyword arguments of the Python API).
SPEC_OPTIONS: list[click.Option] = [
    click.Option(["-J", "--name"], help="Job name [default: the script's file name without extension]."),
    click.Option(["--comment"], help="Free text kept with the job."),
    click.Option(
        ["-o", "--output"],
        help="File for the job's stdout (and stderr unless -e): %j job id, %x name, "
        "%u user, %% a percent sign [default: ~/kbatch-%j.out].",
    ),
    click.Option(["-e", "--error"], help="Separate file for stderr (same patterns as --output)."),
    click.Option(["-D", "--chdir"], help="Working directory of the job [default: the current directory]."),
    click.Option(
        ["--cpus"], metavar="N", help="CPUs for the script (local: pinned to that many) [default: backend default]."
    ),
    click.Option(
        ["--memory"], metavar="SIZE", help="Memory for the script: 512M, 4G, 4Gi, 1.5G; more ends the job OOM."
    ),
    click.Option(["--gpus"], metavar="N", help="GPUs for the script (local: CUDA_VISIBLE_DEVICES) [default: 0]."),
    click.Option(
        ["-t", "--time"],
        metavar="LIMIT",
        help="Wall-clock limit: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S; 0 or UNLIMITED for none [default: none].",
    ),
    click.Option(
        ["--dask-workers"],
        metavar="N|MIN:MAX",
        help="Fixed (N) or adaptive (MIN:MAX) Dask cluster size; 0 runs without a cluster "
        "[default: config kbatch.dask.workers].",
    ),
    click.Option(
        ["--wait-for-workers"],
        metavar="N|all",
        help="Workers the cluster must have before the script's first line "
        "[default: config kbatch.driver.wait-for-workers].",
    ),
    click.Option(["--worker-cores"], metavar="N", help="Cores per Dask worker [default: the gateway's]."),
    click.Option(["--worker-memory"], metavar="SIZE", help="Memory per Dask worker [default: the gateway's]."),
    click.Option(
        ["--dask-option"],
        metavar="KEY=VALUE",
        multiple=True,
        help="Any other Dask-Gateway cluster option (repeatable).",
    ),
    click.Option(["--image"], help="Container image (Kubernetes) [default: $JUPYTER_IMAGE_SPEC, $JUPYTER_IMAGE]."),
    click.Option(["--env"], metavar="KEY=VALUE", multiple=True, help="Extra environment variable (repeatable)."),
    click.Option(
        ["--export"],
        metavar="ALL|NONE|VAR[,VAR...]",
        help="Which variables of this session the job inherits [default: ALL, minus hub tokens "
        "and host-specific variables; cloud keys pass].",
    ),
    click.Option(
        ["--retries"],
        metavar="N",
        help="Re-run a failed or OOM job up to N times, each on a fresh cluster [default: 0].",
    ),
    click.Option(
        ["-d", "--dependency"],
        metavar="TYPE:ID[:ID...]",
        help="Start only once other jobs have ended: afterok (all SUCCEEDED), afterany (all ended), "
        "afternotok (all ended, none SUCCEEDED), or singleton (no earlier job of yours with this name "
        "is pending or running); PENDING (dependency) until then, CANCELLED when it can never be met.",
    ),
    click.Option(
        ["-p", "--parameter"],
        nargs=2,
        metavar="KEY VALUE",
        multiple=True,
        help="Notebook parameter, injected by papermill (repeatable).",
    ),
    click.Option(
        ["--mail-type"],
        metavar="TYPES",
        help="Mail about the job: BEGIN, END, FAIL, ALL or NONE, comma-separated (the service sends it) "
        "[default: NONE].",
    ),
    click.Option(
        ["--mail-user"],
        metavar="ADDRESS",
        help="Where the mail goes [default: the address the service's admin maps your hub name to].",
    ),
    click.Option(
        ["--backend"],
        metavar="local|kubernetes",
        help="Where to run [default: config kbatch.backend; auto = kubernetes inside a pod, else local].",
    ),
]

SPEC_OPTION_NAMES: tuple[str, ...] = tuple(str(o.name) for o in SPEC_OPTIONS)
MULTIPLE_OPTIONS = frozenset(str(o.name) for o in SPEC_OPTIONS if o.multiple)
PAIR_OPTIONS = frozenset(str(o.name) for o in SPEC_OPTIONS if o.nargs == 2)

_directive_command = click.Command("#KBATCH", params=list[click.Parameter](SPEC_OPTIONS), add_help_option=False)


def explicit_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Drop options that were not given (None, or an empty tuple for repeatables)."""
    return {k: v for k, v in values.items() if k in SPEC_OPTION_NAMES and v not in (None, ())}


def parse_option_args(tokens: list[str]) -> dict[str, Any]:
    """Parse option tokens (``["--name", "x", "--env=A=1"]``) as the CLI would.

    Raises :class:`BadInput` with click's message for unknown or malformed options.

    >>> parse_option_args(["-J", "train", "--env", "A=1"])
    {'name': 'train', 'env': ('A=1',)}
    """
    try:
        ctx = _directive_command.make_context("#KBATCH", list(tokens), resilient_parsing=False)
    except click.UsageError as exc:
        raise BadInput(exc.format_message()) from None
    if ctx.args:
        raise BadInput(f"unexpected argument {ctx.args[0]!r}")
    return explicit_values(ctx.params)


def env_values(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Submit options given as ``KBATCH_<OPTION>`` variables (like slurm's ``SBATCH_*``).

    Repeatable options take several values separated as in a shell
    (``KBATCH_ENV="A=1 B='two words'"``).

    >>> env_values({"KBATCH_DASK_WORKERS": "4", "KBATCH_ENV": "A=1 B=2"})
    {'dask_workers': '4', 'env': ('A=1', 'B=2')}
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in SPEC_OPTION_NAMES:
        raw = environ.get(f"KBATCH_{name.upper()}")
        if raw is None or raw == "":
            continue
        if name in MULTIPLE_OPTIONS:
            try:
                words = shlex.split(raw)
            except ValueError as exc:
                raise BadInput(f"KBATCH_{name.upper()}={raw!r}: {exc}") from None
            if name in PAIR_OPTIONS:
                if len(words) % 2:
                    raise BadInput(f"KBATCH_{name.upper()}={raw!r}: expected KEY VALUE pairs")
                values[name] = tuple(zip(words[::2], words[1::2], strict=True))
            else:
                values[name] = tuple(words)
        else:
            values[name] = raw
    return values
