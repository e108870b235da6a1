"""MLflow projects as kbatch jobs: the ``kbatch-dask`` project execution backend.

``mlflow run . --backend kbatch-dask --backend-config kbatch.json`` (the
``mlflow.project_backend`` entry point, installed with ``kbatch-dask[mlflow]``)
submits the entry point's command as a kbatch job on the configured backend,
with its own Dask cluster, in the MLflow run the command logs to.

- ``config.py``   the backend config: the submit options by their long names, checked as the CLI checks them
- ``bundle.py``   the project directory packed into the job's script, and the run's tracking URI made absolute
- ``launch.py``   inside the job: unpack, run the entry point's command, end the MLflow run as the command ends
- ``backend.py``  the plugin: ``KbatchDaskBackend.run`` and the ``SubmittedRun`` that follows the job

It stands on the public Python API (``kbatch_dask.api``, ``Job``, ``JobState``)
only, like any other user of kbatch-dask.
"""
