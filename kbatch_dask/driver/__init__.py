"""The driver: what runs inside a job (``python -m kbatch_dask.driver JOBDIR``).

Two processes, like slurmstepd and the batch script: the
:mod:`~kbatch_dask.driver.supervisor` creates and always removes the Dask
cluster; the :mod:`kbatch_dask.driver.runner` runs the user's code against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from kbatch_dask import settings

if TYPE_CHECKING:  # the package's import stays light: the site hook's module is in it
    from kbatch_dask.driver.switch import Grace


class Timing(TypedDict):
    kill_grace: float
    gateway_retry: float
    switch_grace: Grace | None
    cluster_lost_after: float
    wait_for_workers_timeout: float


def timing(driver: settings.Driver) -> Timing:
    """The supervisor's grace periods and retry window from the ``kbatch.driver``
    settings, as keyword arguments of :class:`~kbatch_dask.driver.supervisor.Supervisor`."""
    from kbatch_dask.driver.switch import Grace

    return {
        "kill_grace": driver.kill_grace,
        "gateway_retry": driver.gateway_retry,
        "switch_grace": (
            Grace(driver.dead_mans_switch_grace, driver.dead_mans_switch_silence)
            if driver.dead_mans_switch_grace > 0
            else None
        ),
        "cluster_lost_after": driver.cluster_lost_after,
        "wait_for_workers_timeout": driver.wait_for_workers_timeout,
    }
