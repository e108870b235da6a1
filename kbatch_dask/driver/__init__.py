"""The driver: what runs inside a job (``python -m kbatch_dask.driver JOBDIR``).

Two processes, like slurmstepd and the batch script: the
:mod:`~kbatch_dask.driver.supervisor` creates and always removes the Dask
cluster; the :mod:`kbatch_dask.runner` runs the user's code against it.
"""
