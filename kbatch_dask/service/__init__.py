"""The kbatch-dask JupyterHub service (``python -m kbatch_dask.service``): it
holds the Kubernetes credentials, authenticates users with their hub tokens,
builds every job's pod itself from the validated job spec, the admin's policy
and the user's own server pod, and gives each user their own jobs only.
``/work/shared/SERVICE.md``'s HTTP API v1 is served by:

- :mod:`.app`        the tornado application and where it listens
- :mod:`.handlers`   the routes, thin
- :mod:`.auth`       who is calling (JupyterHub's HubAuth; admins)
- :mod:`.errors`     every error as ``{"error": "<one line>"}`` with its status
- :mod:`.submission` a ``POST /jobs`` body into a JobSpec
- :mod:`.policy`     allowed images and limits (pure)
- :mod:`.jobs`       the Kubernetes backend on behalf of one user
- :mod:`.context`    what the handlers share
- :mod:`.metrics`    ``GET /metrics`` (Prometheus; no label holds user data)
- :mod:`.logs`       the log lines, text or JSON, with the user and job

Nothing else in the package imports this one.
"""
