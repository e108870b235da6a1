"""The driver: what runs inside a job (``python -m kbatch_dask.driver JOBDIR``).

Two processes, like slurmstepd and the batch script: the
:mod:`~kbatch_dask.driver.supervisor` creates and always removes the Dask
cluster; the :mod:`kbatch_dask.driver.runner` runs the user's code against it.
"""

from __future__ import annotations

from typing import TypedDict


class Timing(TypedDict):
    kill_grace: float
    gateway_retry: float
    switch_grace: float


def timing_from_config() -> Timing:
    """The supervisor's grace periods and retry window from the ``kbatch.driver``
    config, as keyword arguments of :class:`~kbatch_dask.driver.supervisor.Supervisor`."""
    from kbatch_dask import config

    return {
        "kill_grace": float(config.get("driver.kill-grace", 10)),
        "gateway_retry": float(config.get("driver.gateway-retry", 60)),
        "switch_grace": float(config.get("driver.dead-mans-switch-grace", 5)),
    }
