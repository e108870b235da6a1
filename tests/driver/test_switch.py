"""The driver's end of the dead-man's switch, told of its cluster's start by the
supervisor (the arming on a real scheduler is in tests/e2e/test_dead_mans_switch.py)."""

from __future__ import annotations

import time
from typing import Any

from fakes.driver import FakeGateway

from kbatch_dask.driver.switch import GRACE, DeadMansSwitch


def test_a_switch_whose_cluster_never_ran_ends_its_arming_at_once_and_quietly() -> None:
    logged: list[str] = []
    switch = DeadMansSwitch(FakeGateway([]), "c-1", GRACE, logged.append, told=True)
    start = time.monotonic()
    switch.ending()  # the job stopped before its cluster ran: told nothing
    assert time.monotonic() - start < 30  # not the arming's timeout (60 s)
    assert logged == ["arming the dead-man's switch on cluster c-1"]
    switch.disarm()


def test_a_switch_makes_its_dask_gateway_client_while_the_cluster_starts() -> None:
    """dask-gateway's import (0.1 s) is off the path from the cluster's start to the
    switch's arming: its Gateway is made before the switch is told the cluster runs."""
    import threading

    made = threading.Event()

    class Gateway(FakeGateway):
        def dask_gateway(self) -> Any:
            made.set()
            return super().dask_gateway()

    logged: list[str] = []
    switch = DeadMansSwitch(Gateway([]), "c-1", GRACE, logged.append, told=True)
    assert made.wait(30), "the switch waited to be told the cluster runs before it made its Gateway"
    switch.ending()  # told nothing: the cluster never ran
    assert logged == ["arming the dead-man's switch on cluster c-1"]
    switch.disarm()
