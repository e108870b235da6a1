"""``#KBATCH`` lines at the top of a script, like ``#SBATCH``.

Directives are read from the leading block of the script: blank lines and
comments (a shebang included), up to the first line that is neither.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any

from kbatch_dask.errors import BadInput
from kbatch_dask.spec.options import MULTIPLE_OPTIONS, parse_option_args

_DIRECTIVE = re.compile(r"^#\s*KBATCH\b(.*)$")


def parse_directives(
    text: str, source: str = "script", check: Callable[[str, Any], object] | None = None
) -> dict[str, Any]:
    """Options given in ``#KBATCH`` lines of ``text``.

    A later line overrides an earlier one; repeatable options accumulate. An
    unknown or malformed directive is a :class:`BadInput` naming its line;
    ``check(option, value)`` validates each value so a bad one is reported with
    its line too.

    >>> text = "#!/usr/bin/env python\\n#KBATCH --dask-workers 4\\n# KBATCH -J=x\\nimport os\\n#KBATCH -J late"
    >>> parse_directives(text)
    {'dask_workers': '4', 'name': 'x'}
    """
    found: dict[str, Any] = {}
    # Editors on Windows start UTF-8 files with a byte order mark; Python skips it,
    # and so must we, or the first line would not be a comment.
    text = text.removeprefix("\ufeff")
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        match = _DIRECTIVE.match(stripped)
        if not match:
            continue
        body = match.group(1)
        try:
            tokens = shlex.split(body, comments=True)  # a trailing "# note" is a comment
            tokens = _split_short_equals(tokens)
            values = parse_option_args(tokens)
            for name, value in values.items():
                if check is not None:
                    check(name, value)
        except (ValueError, BadInput) as exc:
            raise BadInput(f"{source}, line {lineno}: bad #KBATCH directive {stripped!r}: {exc}") from None
        if not values:
            raise BadInput(f"{source}, line {lineno}: #KBATCH directive without an option: {stripped!r}")
        for name, value in values.items():
            found[name] = found.get(name, ()) + value if name in MULTIPLE_OPTIONS else value
    return found


def _split_short_equals(tokens: list[str]) -> list[str]:
    """Accept ``-J=name`` as well as ``-J name`` (click only splits long options on '=')."""
    out: list[str] = []
    for token in tokens:
        if len(token) > 2 and token[0] == "-" and token[1] != "-" and token[2] == "=":
            out += [token[:2], token[3:]]
        else:
            out.append(token)
    return out
