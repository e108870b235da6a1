"""Which kbatch-dask versions talk to each other (SERVICE.md, "Compatibility
and operations"): the CLI in a user's image, the driver in a job's image and
the service are upgraded at different times.

- The service's HTTP API has a major version in its path (``api/v1``); a
  client built for another one is told which version to install.
- Clients and drivers send ``User-Agent: kbatch-dask/X.Y`` (:func:`user_agent`).
  The service refuses a kbatch-dask client older than
  :data:`MIN_CLIENT_VERSION`, and a ``kbatch-dask`` User-Agent it cannot read,
  both with a 400 naming the version to install. Requests without a
  kbatch-dask User-Agent (curl, a browser, a script of the user's) are served:
  the API is plain HTTP, and their fields are checked like any client's.
- What a newer client adds (an unknown field) is refused by name, never
  dropped (:mod:`kbatch_dask.service.submission`).
"""

from __future__ import annotations

import re
from functools import cache
from importlib.metadata import version as _installed

PRODUCT = "kbatch-dask"
API_VERSIONS = ("v1",)  # the major versions of the HTTP API this package speaks, as in its paths
# The oldest client whose requests API v1 of this service understands.
MIN_CLIENT_VERSION = (0, 1)
_AGENT = re.compile(rf"{PRODUCT}/(\d+)\.(\d+)[.\w+-]*(?:\s|$)")


@cache
def package_version() -> str:
    """The installed kbatch-dask's version, e.g. ``0.1.0``."""
    return _installed(PRODUCT)


def major_minor(text: str) -> tuple[int, int]:
    """``(0, 1)`` of ``0.1.0``.

    >>> major_minor("2.13.0rc1")
    (2, 13)
    """
    found = re.match(r"(\d+)\.(\d+)", text)
    if found is None:
        raise ValueError(f"version {text!r}: expected X.Y")
    return int(found[1]), int(found[2])


def user_agent() -> str:
    """What this package's clients and drivers send as their ``User-Agent``, e.g. ``kbatch-dask/0.1``."""
    major, minor = major_minor(package_version())
    return f"{PRODUCT}/{major}.{minor}"


def install_hint() -> str:
    """The client to install for this service: its own ``X.Y``."""
    major, minor = major_minor(package_version())
    return f'pip install "{PRODUCT}=={major}.{minor}.*" (the version of this service, {package_version()})'


def client_problem(agent: str | None) -> str | None:
    """Why the service cannot serve a client sending ``User-Agent: agent``, or None.

    >>> client_problem("kbatch-dask/0.1"), client_problem("curl/8.5.0"), client_problem(None)
    (None, None, None)
    >>> client_problem("kbatch-dask/0.0").split(":")[0]
    'kbatch-dask 0.0 is older than this service speaks (>= 0.1)'
    """
    if not agent or PRODUCT not in agent:
        return None
    found = _AGENT.search(agent)
    if found is None:
        return f"User-Agent {agent[:60]!r}: expected {PRODUCT}/X.Y; {install_hint()}"
    client = (int(found[1]), int(found[2]))
    if client < MIN_CLIENT_VERSION:
        oldest = ".".join(map(str, MIN_CLIENT_VERSION))
        return f"{PRODUCT} {client[0]}.{client[1]} is older than this service speaks (>= {oldest}): {install_hint()}"
    return None


def api_problem(api: str) -> str:
    """What a request to API ``api`` (e.g. ``v2``), which this service does not speak, is told."""
    return f"this service speaks API {', '.join(API_VERSIONS)}, not {api[:20]!r}: {install_hint()}"
