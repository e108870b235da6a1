"""The checklist ``kbatch doctor`` prints: :class:`Check` rows, their statuses,
and the checklist as text (:func:`render`) or JSON (:func:`to_json`).

Statuses: ``ok``; ``fail`` (jobs will not work, or will not outlive the
session: ``kbatch doctor`` exits 1); ``warn`` (works, with a limitation);
``skip`` (does not apply here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

OK, FAIL, WARN, SKIP = "ok", "fail", "warn", "skip"
SYMBOLS = {OK: "✓", FAIL: "✗", WARN: "!", SKIP: "-"}
ASCII_SYMBOLS = {OK: "[ok]", FAIL: "[FAIL]", WARN: "[warn]", SKIP: "[skip]"}


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    status: str
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def passed(checks: Sequence[Check]) -> bool:
    """True when nothing needed failed (``kbatch doctor`` exits 0)."""
    return all(c.status != FAIL for c in checks)


def render(checks: Sequence[Check], unicode: bool = True) -> str:
    """The checklist as text: one line per check, its fix indented below.

    >>> print(render([Check("gateway", "fail", "unreachable", "start it")], unicode=False))
    [FAIL] gateway: unreachable
           fix: start it
    """
    symbols = SYMBOLS if unicode else ASCII_SYMBOLS
    lines = []
    for check in checks:
        mark = symbols[check.status]
        lines.append(f"{mark} {check.name}: {check.message}")
        if check.fix and check.status in (FAIL, WARN):
            lines.append(f"{' ' * len(mark)} fix: {check.fix}")
    text = "\n".join(lines)
    return text if unicode else text.encode("ascii", "replace").decode()


def to_json(checks: Sequence[Check]) -> str:
    return json.dumps({"ok": passed(checks), "checks": [c.to_dict() for c in checks]}, indent=2)
