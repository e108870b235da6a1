"""Shell completion (click's): file names for the script, job ids for the commands
that take one. Enabled with ``eval "$(_KBATCH_COMPLETE=bash_source kbatch)"``
(``zsh_source``, ``fish_source`` for those shells)."""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem

from kbatch_dask.errors import KbatchError


def script_files(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Let the shell complete a file name."""
    return [CompletionItem(incomplete, type="file")]


def job_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The ids of the jobs the backend knows, with their name and state as help."""
    from kbatch_dask import api

    try:
        records = api.list_records(all=True, backend=ctx.params.get("backend"), live=False)
    except KbatchError:  # no backend to ask: nothing to offer, and no error in the middle of a command line
        return []
    return [CompletionItem(r.id, help=f"{r.name} {r.state.value}") for r in records if r.id.startswith(incomplete)]


class DefaultSubmitGroup(click.Group):
    """The ``kbatch`` group: its first argument is a command or, when it is not one, the script."""

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        items = super().shell_complete(ctx, incomplete)
        return items if incomplete.startswith("-") else [*items, CompletionItem(incomplete, type="file")]
