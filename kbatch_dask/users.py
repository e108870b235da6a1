"""Who the jobs belong to (a module of its own: the queue needs it without the spec)."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping


def current_user(environ: Mapping[str, str] | None = None) -> str:
    """The user jobs belong to: the JupyterHub user when there is one."""
    environ = os.environ if environ is None else environ
    return environ.get("JUPYTERHUB_USER") or getpass.getuser()
