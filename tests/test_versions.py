"""Which clients the service serves, and what it tells the others."""

from __future__ import annotations

import pytest

from kbatch_dask.versions import api_problem, client_problem, major_minor, package_version, user_agent

INSTALL = 'pip install "kbatch-dask=={}.*"'.format(".".join(package_version().split(".")[:2]))


def test_the_user_agent_is_the_package_major_and_minor() -> None:
    assert user_agent() == "kbatch-dask/{}.{}".format(*major_minor(package_version()))
    assert client_problem(user_agent()) is None


@pytest.mark.parametrize(
    "agent", [None, "", "curl/8.5.0", "Mozilla/5.0", "kbatch-dask/0.1.3 python/3.11", "kbatch-dask/7.0"]
)
def test_other_tools_and_current_or_newer_clients_are_served(agent: str | None) -> None:
    assert client_problem(agent) is None


@pytest.mark.parametrize(
    "agent", ["kbatch-dask", "kbatch-dask/", "kbatch-dask/x.y", "kbatch-dask/1", "kbatch-dask/0.0"]
)
def test_old_or_garbled_kbatch_clients_are_told_what_to_install(agent: str) -> None:
    problem = client_problem(agent)
    assert problem is not None and INSTALL in problem and "\n" not in problem


def test_another_api_version_is_told_what_this_service_speaks() -> None:
    assert api_problem("v2").startswith("this service speaks API v1, not 'v2': ")
    assert INSTALL in api_problem("v2")
