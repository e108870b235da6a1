"""The labels and annotations of a job's Kubernetes objects: written at submit
time (:mod:`.manifests`) and by the driver while the job runs
(:mod:`kbatch_dask.driver.kubernetes`), read back into job records (:mod:`.status`)."""

MANAGED_BY = "kbatch-dask"
PREFIX = "kbatch-dask.io/"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_USER = PREFIX + "user"
LABEL_JOB_ID = PREFIX + "job-id"

# On the pod template: cluster-autoscaler evicts a Job's pods when it scales a node
# down (bare pods, like z2jh's notebooks, it leaves alone); this keeps it from doing so.
ANN_SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"

# Set at submit time.
ANN_NAME = PREFIX + "name"
ANN_USER = PREFIX + "user"
ANN_COMMENT = PREFIX + "comment"
ANN_SCRIPT = PREFIX + "script"
ANN_ARGS = PREFIX + "args"
ANN_SUBMITTED = PREFIX + "submitted"
ANN_WORKERS = PREFIX + "workers"
ANN_OUTPUT = PREFIX + "output"
ANN_TIME_LIMIT = PREFIX + "time-limit"
ANN_ERROR = PREFIX + "error"  # the error file, when the pod writes one where the session reads it
ANN_WORKDIR = PREFIX + "workdir"
ANN_NOTEBOOK_OUTPUT = PREFIX + "notebook-output"
ANN_WORKER_CORES = PREFIX + "worker-cores"
ANN_WORKER_MEMORY = PREFIX + "worker-memory"  # bytes
ANN_RESULT = PREFIX + "result"  # where a function job's pickled result goes
# Set by the kbatch-dask service: the hash of the job's driver credential (the
# credential itself is in the job's Secret only), and the id (not a secret) of
# the hub token it minted for the job's gateway, until it is revoked.
ANN_CREDENTIAL_HASH = PREFIX + "credential-sha256"
ANN_HUB_TOKEN_ID = PREFIX + "hub-token-id"
# The service mints the job's gateway token when the job leaves its queue (a token made at
# submit could expire while the job waits).
ANN_TOKEN_AT_START = PREFIX + "hub-token-at-start"
# Set by the service's admission (service/admission.py) on a Job it keeps
# suspended: its place in the queue (nanoseconds since the epoch at submit), why
# it waits (``waiting for quota``, ``dependency``, ``held``), its --dependency,
# and whether it is held. All of the queue is in these: a restart loses nothing.
ANN_QUEUE_ORDER = PREFIX + "queue-order"
ANN_PENDING_REASON = PREFIX + "pending-reason"
ANN_DEPENDENCY = PREFIX + "dependency"
ANN_HELD = PREFIX + "held"
# Set by the driver while the job runs.
ANN_CLUSTER = PREFIX + "cluster"
ANN_DASHBOARD = PREFIX + "dashboard"
ANN_WORKER_LIMIT = PREFIX + "worker-limit"  # the gateway's, when it capped the cluster
ANN_OWNED_CLUSTERS = PREFIX + "owned-clusters"  # comma-separated: the clusters the job's code made
ANN_STARTED = PREFIX + "started"
ANN_FINISHED = PREFIX + "finished"
ANN_STATE = PREFIX + "state"
ANN_EXIT_CODE = PREFIX + "exit-code"
ANN_REASON = PREFIX + "reason"
