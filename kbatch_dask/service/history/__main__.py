"""``python -m kbatch_dask.service.history``: the schema of the job records by
hand. The service upgrades it itself at start; ``downgrade`` is the rollback
before installing an older kbatch-dask (docs/service.md)::

    python -m kbatch_dask.service.history current
    python -m kbatch_dask.service.history downgrade 0001 [--url URL]
"""

from __future__ import annotations

import argparse
import sys

from kbatch_dask import settings
from kbatch_dask.errors import KbatchError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kbatch_dask.service.history", description=__doc__.split("::")[0])
    parser.add_argument("--url", help="the database (default: kbatch.service.database-url)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("current", help="the revision the database is at, and the newest shipped")
    commands.add_parser("revisions", help="every shipped revision, oldest first")
    up = commands.add_parser("upgrade", help="migrate to REVISION (default: the newest), as the service does at start")
    up.add_argument("revision", nargs="?", default="head")
    down = commands.add_parser("downgrade", help="migrate back to REVISION (an id, -1, or base: no tables)")
    down.add_argument("revision")
    args = parser.parse_args(argv)

    from kbatch_dask.service.history import migrations
    from kbatch_dask.service.history.store import History

    try:
        if args.command == "revisions":
            for revision, message in migrations.revisions():
                print(f"{revision}  {message.splitlines()[0] if message else ''}")
            return
        history = History(args.url or settings.load().service.database_url, migrate=False)
        try:
            if args.command == "current":
                print(
                    f"{history.url}: at {migrations.current(history.engine) or 'base (no tables)'}; "
                    f"newest shipped: {migrations.head()}"
                )
            elif args.command == "upgrade":
                migrations.upgrade(history.engine, args.revision)
                print(f"{history.url}: at {migrations.current(history.engine)}")
            else:
                migrations.downgrade(history.engine, args.revision)
                print(f"{history.url}: at {migrations.current(history.engine) or 'base (no tables)'}")
        finally:
            history.close()
    except KbatchError as exc:
        sys.exit(f"Error: {exc}")
    except Exception as exc:  # Alembic's and the database's errors: one line
        sys.exit(f"Error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


if __name__ == "__main__":
    main()
