"""The ``kbatch`` and ``kqueue`` commands: parse, call the API, render, map errors
to exit codes. Nothing else in the package prints or exits.

- :mod:`.arguments`: which arguments are kbatch's and which the script's;
- :mod:`.commands`: the click commands;
- :mod:`.queue`: ``queue``, alone in its module so that ``kqueue`` imports only it;
- :mod:`.holds`: ``hold`` and ``release``;
- :mod:`.resubmit`: ``resubmit``;
- :mod:`.ui`: ``ui``, the queue's web page on 127.0.0.1;
- :mod:`.waiting`: ``wait`` and ``--wait``, drawn on a terminal;
- :mod:`.screen`: ``queue --watch`` fitted to the terminal;
- :mod:`.completion`: shell completion.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from kbatch_dask.errors import KbatchError


def _run(command: click.Command, args: list[str], prog: str, debug: bool = False) -> NoReturn:
    try:
        code = command.main(args=args, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.UsageError as exc:
        if debug:
            raise
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"Error: {exc.format_message().rstrip('.')}{hint}", err=True)
        code = 2
    except click.Abort as exc:
        # click turns Ctrl-C inside a command into Abort; the shell's convention is 130.
        interrupted = isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)
        click.echo("Interrupted." if interrupted else "Aborted.", err=True)
        code = 130 if interrupted else 1
    except KbatchError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a bug: still one line, the traceback on request
        if debug:
            raise
        click.echo(f"Error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


def main(args: list[str] | None = None) -> NoReturn:
    """Entry point of ``kbatch``. ``submit`` is the default command: a first
    argument that is not a command name (``kbatch train.py``) is the script."""
    from kbatch_dask.cli import holds, resubmit, ui  # noqa: F401  (register hold, release, resubmit and ui on cli)
    from kbatch_dask.cli.arguments import split_submit_args
    from kbatch_dask.cli.commands import cli

    args = list(sys.argv[1:] if args is None else args)
    lead = []
    while args and args[0] == "--debug":
        lead.append(args.pop(0))
    if not args:  # bare `kbatch`: its help, not a usage error
        args = ["--help"]
    elif args[0] == "submit":
        args = ["submit", *split_submit_args(args[1:], spell_long=True)]
    elif args and args[0] not in cli.commands and args[0] not in ("--help", "-h", "--version"):
        args = ["submit", *split_submit_args(args, spell_long=True)]
    _run(cli, lead + args, "kbatch", debug=bool(lead))


def kqueue_main(args: list[str] | None = None) -> NoReturn:
    """Entry point of ``kqueue`` (``kbatch queue``): imports that command only."""
    from kbatch_dask.cli.queue import queue_cmd

    _run(queue_cmd, list(sys.argv[1:] if args is None else args), "kqueue")
