"""What a service job's driver and the kbatch-dask service agree on: where the driver
finds the service and its credential (the job's Secret holds both), and the events
it reports to ``POST {service}api/v1/jobs/{id}/events``."""

SERVICE_URL_VAR = "KBATCH_DASK_SERVICE_URL"
CREDENTIAL_VAR = "KBATCH_DASK_JOB_CREDENTIAL"
EVENTS = ("started", "cluster", "owned", "finished")
