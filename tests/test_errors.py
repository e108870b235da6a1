"""The error tree: drawn in errors.py as it is, rooted in KbatchError, and each
family mapped by the CLI to its exit code."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import click
import pytest

from kbatch_dask import cli, errors

PACKAGE = Path(errors.__file__).parent

ERRORS = [
    cls
    for cls in vars(errors).values()
    if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == errors.__name__
]
WARNINGS = {errors.KbatchWarning}

# What `kbatch` exits with when a command raises each error (docs/cli.md, "Exit codes").
EXIT_CODES = {
    errors.KbatchError: 1,
    errors.BadInput: 2,
    errors.Refused: 2,
    errors.Conflict: 2,
    errors.JobNotFound: 1,
    errors.GatewayError: 1,
    errors.GatewayUnreachable: 1,
    errors.HubError: 1,
    errors.BackendError: 1,
    errors.KubeError: 1,
    errors.PayloadMismatch: 1,
    errors.RemoteTraceback: 1,
}

# Exceptions the package may define elsewhere: control flow that never leaves its module.
INTERNAL = {  # raised and caught within the driver
    ("driver/cluster.py", "Interrupted"),  # a signal before the runner was released
    ("driver/tee.py", "OutputUnwritable"),  # the job fails, saying why
    ("driver/service.py", "Unanswered"),  # a report the service did not take: retried, or said once
}


def drawn_tree() -> dict[str, str | None]:
    """Each class named in the module docstring's drawing, with the one drawn above it."""
    doc = errors.__doc__ or ""
    drawing = doc.split("::", 1)[1].split("``status``", 1)[0]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in drawing.splitlines():
        match = re.match(r"^([ │├└─]*)([A-Z]\w+)\s", line)
        if not match:
            continue  # the continuation of a description
        column, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= column:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((column, name))
    return parents


def tree_parent(cls: type) -> str | None:
    ours = [base.__name__ for base in cls.__bases__ if base.__module__ == errors.__name__]
    assert len(ours) <= 1, f"{cls.__name__} has two parents in the tree: {ours}"
    return ours[0] if ours else None


def test_the_docstring_draws_the_tree_as_it_is() -> None:
    drawn = drawn_tree()
    assert drawn == {cls.__name__: tree_parent(cls) for cls in ERRORS}


@pytest.mark.parametrize("cls", [c for c in ERRORS if c not in WARNINGS], ids=lambda c: c.__name__)
def test_every_error_derives_from_kbatch_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, errors.KbatchError)


def base_names(node: ast.ClassDef) -> set[str]:
    return {base.id if isinstance(base, ast.Name) else ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases}


def test_the_package_defines_its_exceptions_in_errors_py() -> None:
    ours = {cls.__name__ for cls in ERRORS}
    outside = set()
    for path in PACKAGE.rglob("*.py"):
        where = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                where != "errors.py"
                and isinstance(node, ast.ClassDef)
                and any(b in ours or b.endswith(("Error", "Exception", "Warning")) for b in base_names(node))
            ):
                outside.add((where, node.name))
    assert outside <= INTERNAL


STATUS_ERRORS = [c for c in ERRORS if "status" in inspect.signature(c.__init__).parameters]


def test_the_errors_with_a_status_are_the_http_ones() -> None:
    assert set(STATUS_ERRORS) == {errors.GatewayError, errors.GatewayUnreachable, errors.HubError, errors.KubeError}


@pytest.mark.parametrize("cls", STATUS_ERRORS, ids=lambda c: c.__name__)
def test_no_http_status_is_none(cls: type[errors.GatewayError | errors.HubError | errors.KubeError]) -> None:
    assert inspect.signature(cls.__init__).parameters["status"].default is None
    assert cls("no answer").status is None
    assert cls("refused", 403).status == 403


def run_raising(exc: BaseException, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The exit code and stderr of `kbatch` when a command raises ``exc``."""

    @click.command()
    def command() -> None:
        raise exc

    with pytest.raises(SystemExit) as exited:
        cli._run(command, [], "kbatch")
    code = exited.value.code
    assert isinstance(code, int)
    return code, capsys.readouterr().err


def test_every_error_has_an_exit_code_here() -> None:
    assert set(EXIT_CODES) == set(ERRORS) - WARNINGS


@pytest.mark.parametrize(("cls", "code"), EXIT_CODES.items(), ids=lambda c: getattr(c, "__name__", str(c)))
def test_the_cli_maps_each_error_to_its_exit_code(
    cls: type[errors.KbatchError], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    error = cls("it went wrong")
    assert run_raising(error, capsys) == (code, f"Error: {error}\n")


@pytest.mark.parametrize(
    ("exc", "code", "stderr"),
    [
        (click.UsageError("no such option: --x"), 2, "Error: no such option: --x (see 'kbatch --help')\n"),
        (RuntimeError("a bug"), 1, "Error: unexpected RuntimeError: a bug (run with --debug for the traceback)\n"),
        (KeyboardInterrupt(), 130, "\nInterrupted.\n"),  # Ctrl-C: the shell's 128 + SIGINT
        (click.Abort(), 1, "Aborted.\n"),
    ],
    ids=["usage", "bug", "ctrl-c", "abort"],
)
def test_the_cli_maps_other_exceptions_to_their_exit_codes(
    exc: BaseException, code: int, stderr: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_raising(exc, capsys) == (code, stderr)


def test_debug_shows_the_error_itself() -> None:
    @click.command()
    def command() -> None:
        raise errors.BadInput("--memory '4GG': expected a size like 512M, 4G or 4Gi")

    with pytest.raises(errors.BadInput):
        cli._run(command, [], "kbatch", debug=True)
