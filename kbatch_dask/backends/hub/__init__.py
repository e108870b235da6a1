"""The ``hub`` backend: jobs submitted to the kbatch-dask JupyterHub service
(:mod:`.backend`) over its HTTP API (:mod:`.client`)."""
