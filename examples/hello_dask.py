"""A small Dask computation: `kbatch --wait examples/hello_dask.py --dask-workers 2`.

Inside a kbatch job the job's cluster is the default Dask client, so plain
dask code runs on the cluster's workers unchanged.
"""

import dask.bag as db
from dask.distributed import get_client

client = get_client()
client.wait_for_workers(1, timeout=120)
print(f"cluster workers: {len(client.scheduler_info()['workers'])}")

squares = db.range(1000, npartitions=10).map(lambda x: x * x)
print(f"sum of squares of 0..999 = {squares.sum().compute()}")
