"""The backend config of ``mlflow run --backend kbatch-dask``: kbatch's submit options.

``--backend-config kbatch.json`` holds the submit options by their long names
(``{"dask_workers": "2:10", "time": "2:00:00", "memory": "8G"}``). They are
checked by the same code as the command line's (``api.make_spec``), so a bad
value gets the CLI's message; this module only takes out what MLflow itself
adds to the config and what has no meaning for a project (pure).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kbatch_dask.errors import BadInput

# The keys MLflow's `run` adds to every backend's config (mlflow.projects.utils.PROJECT_*).
MLFLOW_KEYS = frozenset(
    {"ENV_MANAGER", "SYNCHRONOUS", "DOCKER_ARGS", "STORAGE_DIR", "build_image", "docker_auth"}
    | {"_mlflow_local_backend_run_id"}
)
# Submit options a project cannot use, and what to do instead.
NOT_FOR_PROJECTS = {
    "parameter": "it sets a notebook's parameters; give the project's parameters with -P KEY=VALUE",
}
# MLflow's environment managers; only "local" is the job's own environment (its image).
LOCAL = "local"


def submit_options(backend_config: Mapping[str, Any]) -> dict[str, Any]:
    """The submit options of a backend config, as ``api.submit`` takes them.

    >>> submit_options({"dask_workers": "2:10", "ENV_MANAGER": None, "SYNCHRONOUS": False})
    {'dask_workers': '2:10'}
    >>> submit_options({"parameter": {"alpha": 1}})
    Traceback (most recent call last):
    ...
    kbatch_dask.errors.BadInput: backend config "parameter": it sets a notebook's parameters; ...
    """
    options = {k: v for k, v in backend_config.items() if k not in MLFLOW_KEYS}
    for key, why in NOT_FOR_PROJECTS.items():
        if key in options:
            raise BadInput(f'backend config "{key}": {why}')
    return options


def environment_warning(env_manager: str | None, env_file: str | None) -> str | None:
    """What to say about the project's environment file, which only the job's image provides.

    An explicit ``--env-manager`` other than ``local`` is refused (the job cannot
    build an environment), as MLflow's own backends refuse what they cannot do;
    an environment file under the default manager gets a warning.

    >>> environment_warning(None, "python_env.yaml")
    "the project's python_env.yaml is not installed: the job runs in its image's environment (--env-manager local)"
    >>> environment_warning("local", "python_env.yaml") is None
    True
    """
    if env_manager not in (None, LOCAL):
        raise BadInput(
            f"--env-manager {env_manager}: the kbatch-dask backend runs the project in the job's image; "
            "use --env-manager local and an image with the project's packages (--image in the backend config)"
        )
    if env_manager is None and env_file:
        return (
            f"the project's {env_file} is not installed: the job runs in its image's environment (--env-manager local)"
        )
    return None
