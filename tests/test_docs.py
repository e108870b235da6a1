"""The CLI reference shows each command's real --help, so it cannot drift."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import BIN

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        "",
        "submit",
        "queue",
        "show",
        "history",
        "report",
        "logs",
        "cancel",
        "hold",
        "release",
        "resubmit",
        "wait",
        "gc",
        "gateway",
        "gateway stop",
        "gateway status",
        "doctor",
    ],
)
def test_cli_reference_holds_the_current_help(command: str) -> None:
    argv = [str(BIN / "kbatch"), *command.split(), "--help"]
    help_text = subprocess.run(argv, capture_output=True, text=True).stdout
    help_text = "\n".join(line.rstrip() for line in help_text.splitlines())
    assert help_text in (ROOT / "docs" / "cli.md").read_text(), f"docs/cli.md is out of date for `kbatch {command}`"


def test_the_environment_docs_name_every_variable_jobs_and_the_embedded_gateway_are_given_or_not() -> None:
    from kbatch_dask.backends.local.embedded_gateway import GATEWAY_ENVIRONMENT
    from kbatch_dask.spec.environment import DENY_PATTERNS, ESSENTIAL

    text = (ROOT / "docs" / "getting-started.md").read_text()
    section = text.split("## The job's environment\n", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in (*DENY_PATTERNS, *ESSENTIAL, *GATEWAY_ENVIRONMENT) if f"`{name}`" not in section]
    assert missing == [], f"docs/getting-started.md § The job's environment does not name {missing}"
