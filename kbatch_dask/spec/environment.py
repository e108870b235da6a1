"""Which of the session's environment variables a job inherits (``--export``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

# Credentials of the session and variables that describe this host or pod, not
# the job's: copying them would leak secrets or point the job at the wrong place.
DENY_PATTERNS: tuple[str, ...] = (
    "JUPYTERHUB_API_TOKEN",
    "JPY_API_TOKEN",
    "JUPYTERHUB_OAUTH_*",
    "JUPYTERHUB_CLIENT_ID",
    "JUPYTERHUB_SERVER_NAME",
    "JUPYTERHUB_SERVICE_PREFIX",
    "JUPYTERHUB_SERVICE_URL",
    "JUPYTERHUB_ACTIVITY_URL",
    "JUPYTER_TOKEN",
    "KUBERNETES_*",
    "*_SERVICE_HOST",
    "*_SERVICE_PORT",
    "*_SERVICE_PORT_*",
    "*_PORT_*_TCP*",
    "HOSTNAME",
    "HOST",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    "TERM_SESSION_ID",
    "SSH_*",
    "DISPLAY",
    "KBATCH_*",
)

# Kept even with --export NONE: without them a local job cannot find Python.
ESSENTIAL = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "SHELL", "TMPDIR", "VIRTUAL_ENV")


def is_denied(name: str) -> bool:
    """True for variables never copied into a job (credentials, host-specific).

    >>> is_denied("JUPYTERHUB_API_TOKEN"), is_denied("KUBERNETES_SERVICE_HOST"), is_denied("PATH")
    (True, True, False)
    """
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in DENY_PATTERNS)


def exported_environment(export: str, extra: tuple[tuple[str, str], ...], environ: Mapping[str, str]) -> dict[str, str]:
    """The job's environment: the session's variables chosen by ``export``
    (``ALL``, ``NONE`` or ``A,B``), minus the deny-list, plus ``--env`` values.

    >>> exported_environment("NONE", (("A", "1"),), {"PATH": "/bin", "X": "y"})
    {'PATH': '/bin', 'A': '1'}
    """
    if export == "ALL":
        chosen = {k: v for k, v in environ.items() if not is_denied(k)}
    else:
        names = () if export == "NONE" else tuple(export.split(","))
        chosen = {k: environ[k] for k in (*ESSENTIAL, *names) if k in environ}
    chosen.update(extra)
    return chosen
