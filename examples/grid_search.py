# KBATCH --dask-workers 2
# KBATCH -J grid-search
"""A scikit-learn grid search on the job's Dask cluster, through joblib's Dask backend.

    pip install "kbatch-dask[examples]"
    kbatch --wait examples/grid_search.py --dask-workers 2

The Pangeo prototype's workload: the search's fits are spread over the
cluster's workers; nothing here names the cluster, the job makes it the default.
"""

import joblib
from dask.distributed import get_client
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

client = get_client()
client.wait_for_workers(1, timeout=120)

X, y = make_classification(n_samples=400, n_features=20, random_state=0)
grid = GridSearchCV(
    SVC(gamma="auto"),
    param_grid={"C": [0.1, 1.0, 10.0], "kernel": ["rbf", "linear"], "shrinking": [True, False]},
    cv=3,
    n_jobs=-1,
)
with joblib.parallel_backend("dask"):
    grid.fit(X, y)

print(f"workers used: {len(client.scheduler_info()['workers'])}")
print(f"best parameters: {grid.best_params_}")
print(f"best score: {grid.best_score_:.3f}")
