"""A local job's driver held at one of its stages, for a test to kill it there.

Run as the driver (``python -m held_driver JOBDIR``, the local backend's
``DRIVER_MODULE`` swapped for it): the thread that logs a line containing
``$KBATCH_TEST_HOLD_AT`` waits there forever, once the line is in the driver's
log. The other threads go on.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from kbatch_dask.driver.local import main


class Hold(logging.Handler):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def handle(self, record: logging.LogRecord) -> bool:
        # Not Handler.handle: it would hold the handler's lock, and so every other thread that logs.
        if self.text in record.getMessage():
            threading.Event().wait()
        return True

    def emit(self, record: logging.LogRecord) -> None:
        pass


if __name__ == "__main__":
    # The driver's own logging (main's basicConfig is then a no-op), then the hold after it.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    logging.getLogger().addHandler(Hold(os.environ["KBATCH_TEST_HOLD_AT"]))
    sys.exit(main(sys.argv[1:]))
