"""Which of ``kbatch [OPTS] SCRIPT [ARGS]`` are kbatch's, and which the script's."""

from __future__ import annotations

from kbatch_dask.spec.options import SPEC_OPTIONS

# After the script, only these are kbatch's (as sbatch gives every other argument to
# the script): they size the cluster, which is what `kbatch train.py --dask-workers 20`
# is typed for; a script's own `-o` or `--name` must reach the script.
DASK_OPTIONS = ("--dask-workers", "--dask-option", "--worker-cores", "--worker-memory", "--wait-for-workers")


def _value_options() -> dict[str, int]:
    """Each submit option flag, with the number of values it takes."""
    return {flag: o.nargs for o in SPEC_OPTIONS for flag in o.opts}


def _long_names() -> dict[str, str]:
    """Each submit option's short flag, with its long one: ``{"-o": "--output", ...}``."""
    return {flag: o.opts[-1] for o in SPEC_OPTIONS for flag in o.opts if not flag.startswith("--")}


def split_submit_args(args: list[str], spell_long: bool = False) -> list[str]:
    """Reorder ``kbatch [OPTS] SCRIPT [ARGS]`` so that click sees kbatch's options first.

    Before the script, every option is kbatch's. After it, only the Dask options
    (:data:`DASK_OPTIONS`) are still kbatch's; anything else, and everything
    after ``--``, belongs to the script. With ``spell_long``, kbatch's short flags
    given their values are spelled long (``-o x`` as ``--output x``): click looks a
    short flag up as a long one first, and that miss imports difflib to suggest
    near names, ~3 % of a submission.

    >>> split_submit_args(["train.py", "--dask-workers", "2", "-o", "r.csv", "--", "--worker-cores", "1"])
    ['--dask-workers', '2', 'train.py', '-o', 'r.csv', '--worker-cores', '1']
    """
    takes_value = _value_options()
    long_names = _long_names() if spell_long else {}
    head: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--" or not token.startswith("-") or token == "-":
            break
        n = takes_value.get(token, 0)
        given = i + n < len(args)  # else click's error names the flag as typed
        head += [long_names.get(token, token) if given else token, *args[i + 1 : i + 1 + n]]
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
        name = token.split("=", 1)[0]
        if name in DASK_OPTIONS:
            n = takes_value[name] if name == token else 0
            moved += rest[j : j + 1 + n]
            j += n
        else:
            script_args.append(token)
        j += 1
    return head + moved + [script] + script_args
