"""Ridge regression fitted on the job's Dask cluster, logged to the MLflow run.

`mlflow run examples/mlflow-project --backend kbatch-dask --backend-config
examples/mlflow-project/kbatch.json -P alpha=5` runs it as a kbatch job; the
run's parameters and metrics land in the run `mlflow run` created (its id is
in $MLFLOW_RUN_ID). Outside a job (`mlflow run examples/mlflow-project
--env-manager local`) it runs on a local Dask cluster.
"""

from __future__ import annotations

import argparse
import os
import time

import dask.array as da
import mlflow
import numpy as np
from dask.distributed import Client, LocalCluster


def connect(workers: int) -> Client:
    """The job's cluster inside a kbatch job, else a local one; with ``workers`` workers up."""
    if os.environ.get("KBATCH_DASK_CLUSTER"):
        import kbatch_dask

        client = kbatch_dask.get_client()
    else:
        client = Client(LocalCluster(n_workers=workers, threads_per_worker=1))
    client.wait_for_workers(workers, timeout=300)
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alpha", type=float, default=1.0, help="the ridge penalty")
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2, help="workers to wait for")
    args = parser.parse_args()

    client = connect(args.workers)
    features = 10
    # MLflow logged the entry point's parameters (alpha, samples, workers) as it made the run.
    mlflow.log_param("features", features)
    start = time.monotonic()
    rng = da.random.RandomState(0)
    x = rng.normal(size=(args.samples, features), chunks=(args.samples // 8, features))
    truth = np.arange(1, features + 1, dtype=float)
    y = x @ truth + rng.normal(scale=0.5, size=args.samples, chunks=args.samples // 8)
    # Ridge's normal equations: the two sums are computed by the workers, chunk by chunk.
    gram, moment = da.compute(x.T @ x, x.T @ y)
    coef = np.linalg.solve(gram + args.alpha * np.eye(features), moment)
    rmse = float(da.sqrt(((x @ coef - y) ** 2).mean()).compute())
    mlflow.log_metrics(
        {
            "rmse": rmse,
            "coef_error": float(np.abs(coef - truth).max()),
            "workers": len(client.scheduler_info()["workers"]),
            "fit_seconds": time.monotonic() - start,
        }
    )
    print(f"alpha={args.alpha} rmse={rmse:.4f} on {len(client.scheduler_info()['workers'])} workers")


if __name__ == "__main__":
    main()
