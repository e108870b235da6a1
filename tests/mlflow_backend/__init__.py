"""Tests of kbatch_dask/mlflow (a folder named ``mlflow`` here would shadow MLflow itself on sys.path)."""
