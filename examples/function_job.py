"""Hand a function to a batch job, close the laptop, collect the result later.

    python examples/function_job.py

`submit_with_cluster` ships `monthly_means` (defined here, in __main__) to a job
with a 2-worker Dask cluster of its own; the cluster exists exactly as long as
the function runs. The job id is printed: `kbatch queue` shows the job, and
`kbatch_dask.get_job(id).result()` fetches the result from any later session.
"""

from __future__ import annotations

from kbatch_dask import submit_with_cluster


def monthly_means(years: int, seed: int = 0) -> dict[int, float]:
    """Simulated daily temperatures, averaged per month on the job's cluster."""
    import random

    import dask.bag as db

    def day(i: int) -> tuple[int, float]:
        rng = random.Random(seed * 100_000 + i)
        month = (i // 30) % 12 + 1
        return month, 10 + 8 * (month in (6, 7, 8)) + rng.gauss(0, 3)

    days = db.range(365 * years, npartitions=8).map(day)
    sums = days.foldby(
        lambda d: d[0],
        lambda acc, d: (acc[0] + d[1], acc[1] + 1),
        (0.0, 0),
        lambda a, b: (a[0] + b[0], a[1] + b[1]),
        (0.0, 0),
    ).compute()
    return {month: round(total / count, 2) for month, (total, count) in sorted(sums)}


if __name__ == "__main__":
    job = submit_with_cluster(monthly_means, 10, kwargs={"seed": 42}, n_workers=2, name="monthly-means")
    print(f"submitted job {job.id}; waiting for its result (Ctrl-C is fine: the job goes on)")
    for month, mean in job.result(timeout=600).items():
        print(f"month {month:2d}: {mean:6.2f} °C")
