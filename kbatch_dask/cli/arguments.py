"""Which of ``kbatch [OPTS] SCRIPT [ARGS]`` are kbatch's, and which the script's."""

from __future__ import annotations

from kbatch_dask.spec.options import SPEC_OPTIONS

SUBMIT_FLAGS = ("--wait", "-W", "--parsable", "--dry-run")


def _value_options() -> dict[str, int]:
    """Each submit option flag, with the number of values it takes."""
    return {flag: o.nargs for o in SPEC_OPTIONS for flag in o.opts}


def split_submit_args(args: list[str]) -> list[str]:
    """Reorder ``kbatch [OPTS] SCRIPT [ARGS]`` so that click sees kbatch's options first.

    Before the script, every option is kbatch's. After it, kbatch's submit
    options (``--dask-workers 2``, ``-o out``, ``--wait``) are still kbatch's;
    anything else, and everything after ``--``, belongs to the script.

    >>> split_submit_args(["train.py", "--dask-workers", "2", "--epochs", "3", "--", "-o", "x"])
    ['--dask-workers', '2', 'train.py', '--epochs', '3', '-o', 'x']
    """
    takes_value = _value_options()
    known = set(takes_value) | set(SUBMIT_FLAGS)
    head: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--" or not token.startswith("-") or token == "-":
            break
        n = takes_value.get(token, 0)
        head += args[i : i + 1 + n]
        i += 1 + n
    if i < len(args) and args[i] == "--":
        i += 1
    if i >= len(args):
        return head
    script, rest = args[i], args[i + 1 :]
    moved: list[str] = []
    script_args: list[str] = []
    j = 0
    while j < len(rest):
        token = rest[j]
        if token == "--":
            script_args += rest[j + 1 :]
            break
        name = token.split("=", 1)[0] if token.startswith("--") else token
        if name in known:
            n = takes_value.get(token, 0) if name == token else 0
            moved += rest[j : j + 1 + n]
            j += n
        else:
            script_args.append(token)
        j += 1
    return head + moved + [script] + script_args
