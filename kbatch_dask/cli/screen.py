"""Fitting a redrawn screen (``kqueue --watch``) to the terminal."""

from __future__ import annotations


def fit(text: str, columns: int, rows: int) -> str:
    """Cut each line to ``columns`` and keep the top ``rows - 1`` lines (the last row
    holds the cursor), so that the header stays on screen and long URLs do not wrap.

    >>> print(fit("clock\\nJOBID  NAME\\na  http://gateway/clusters/abc/status\\nb\\nc", 20, 4))
    clock
    JOBID  NAME
    … 3 more lines
    >>> print(fit("JOBID  DASHBOARD\\na  http://gateway/clusters/abc/status", 20, 10))
    JOBID  DASHBOARD
    a  http://gateway/c…
    """
    lines = [line if len(line) <= columns else line[: columns - 1] + "…" for line in text.splitlines()]
    room = max(1, rows - 1)
    if len(lines) > room:
        shown = max(0, room - 1)
        hidden = len(lines) - shown
        lines = [*lines[:shown], f"… {hidden} more lines"[:columns]]
    return "\n".join(lines)
