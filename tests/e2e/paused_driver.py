"""A local job's driver that stands still once, as in a long garbage collection.

Run as the driver (``python -m paused_driver JOBDIR``, the local backend's
``DRIVER_MODULE`` swapped for it): the thread that logs a line containing
``$KBATCH_TEST_PAUSE_AT`` holds the GIL for ``$KBATCH_TEST_PAUSE_FOR`` seconds,
so that no other thread of the driver runs meanwhile (its Dask client's event
loop included: it sends no heartbeat), then says so in the driver's log and
lets the driver go on. A stop-the-world GC pause looks the same from outside.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from kbatch_dask.driver.local import main


class Pause(logging.Handler):
    def __init__(self, text: str, seconds: float) -> None:
        super().__init__()
        self.text = text
        self.seconds = seconds

    def handle(self, record: logging.LogRecord) -> bool:
        # Not Handler.handle: it would hold the handler's lock, and so every other thread that logs.
        if self.seconds and self.text in record.getMessage():
            seconds, self.seconds = self.seconds, 0.0  # once
            switch = sys.getswitchinterval()
            sys.setswitchinterval(10 * seconds)  # no other thread is given the GIL before the loop ends
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
            sys.setswitchinterval(switch)
            logging.getLogger().info("test: held the GIL for %g s", seconds)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        pass


if __name__ == "__main__":
    # The driver's own logging (main's basicConfig is then a no-op), then the pause after it.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    logging.getLogger().addHandler(
        Pause(os.environ["KBATCH_TEST_PAUSE_AT"], float(os.environ["KBATCH_TEST_PAUSE_FOR"]))
    )
    sys.exit(main(sys.argv[1:]))
