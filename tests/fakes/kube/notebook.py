"""A JupyterHub notebook session on the fake cluster: its pod stored on the
server, its home volume (a PVC) backed by a local directory, and the
environment a process in that notebook has."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .fake_apiserver import FakeApiServer
from .fake_kubelet import FakeKubelet
from .resources import POD

NAMESPACE = "default"
IMAGE = "kbatch-dask:test"
POD_NAME = "jupyter-notebook"
CLAIM = "claim-user"


def notebook_pod(name: str, home: Path) -> dict[str, Any]:
    """A notebook pod as Zero to JupyterHub makes one: home on a PVC, the
    service-account token mounted, a node selector and security context."""
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"component": "singleuser-server"}},
        "spec": {
            "containers": [
                {
                    "name": "notebook",
                    "image": IMAGE,
                    "volumeMounts": [
                        {"name": "home", "mountPath": str(home)},
                        {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                    ],
                    "securityContext": {"runAsUser": os.getuid()},
                }
            ],
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": CLAIM}},
                {"name": "kube-api-access-abcde", "projected": {"sources": []}},
            ],
            "nodeSelector": {"hub.jupyter.org/node-purpose": "user"},
            "securityContext": {"fsGroup": 100},
        },
        "status": {"phase": "Running"},
    }


def notebook_session(server: FakeApiServer, kubelet: FakeKubelet, home: Path) -> dict[str, str]:
    """Put the notebook pod on the server, back its home volume with ``home``, and
    return the environment of a process in that notebook."""
    server.store.insert(POD, notebook_pod(POD_NAME, home))
    kubelet.map_volume(CLAIM, home)
    return {
        **os.environ,
        "HOSTNAME": POD_NAME,
        "JUPYTER_IMAGE_SPEC": IMAGE,
        "DASK_KBATCH__KUBERNETES__TERMINATION_GRACE": "20",
        "DASK_KBATCH__DRIVER__KILL_GRACE": "2",
    }
