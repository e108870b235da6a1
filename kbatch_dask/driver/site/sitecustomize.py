"""On the PYTHONPATH of a job's runner: every Python process of the job records
the Dask clusters it makes (``kbatch_dask/driver/owned.py``), then runs the
``sitecustomize`` this one hides, if there is one.

``owned.py`` is loaded by its path, not imported from the package: it needs
only the standard library, so this costs a Python child next to nothing and
also works in a Python that has dask-gateway but not kbatch-dask.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _record_owned_clusters() -> None:
    if not os.environ.get("KBATCH_DASK_OWNED_CLUSTERS"):
        return
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "owned.py")
    spec = importlib.util.spec_from_file_location("_kbatch_dask_owned", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.install()


def _run_the_hidden_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_record_owned_clusters()
_run_the_hidden_sitecustomize()
