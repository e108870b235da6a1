"""What a service job's driver and the kbatch-dask service agree on: where the driver
finds the service and its credential (the job's Secret holds both), the events
it reports to ``POST {service}api/v1/jobs/{id}/events``, and what it uploads as
the job ends (``PUT .../result``, ``PUT .../logs?stream=output|error``,
``PUT .../report``), within the service's limits, which the Secret holds too."""

from typing import Literal

SERVICE_URL_VAR = "KBATCH_DASK_SERVICE_URL"
CREDENTIAL_VAR = "KBATCH_DASK_JOB_CREDENTIAL"
EVENTS = ("started", "cluster", "owned", "finished")
# The service's kbatch.service.archive.max-log-bytes and max-result-bytes, for the
# driver: the job's image may have other defaults than the service.
MAX_LOG_BYTES_VAR = "KBATCH_DASK_ARCHIVE_MAX_LOG_BYTES"
MAX_RESULT_BYTES_VAR = "KBATCH_DASK_ARCHIVE_MAX_RESULT_BYTES"
# The job report's summary (kbatch-%j.report.json): the meter keeps aggregates and lists at most
# 20 task prefixes, so a summary is a few kB; this bounds what a driver may make the service keep.
MAX_REPORT_BYTES = 256 * 1024
Upload = Literal["result", "output", "error", "report"]
LOG_UPLOADS: tuple[Upload, ...] = ("output", "error")  # the ?stream= of PUT .../logs
