"""Test doubles for the Kubernetes backend: a fake API server and a fake kubelet.

See ``fake_apiserver.py`` and ``fake_kubelet.py`` for what they simulate and
where they differ from Kubernetes; ``fixtures.py`` has the pytest fixtures.
"""

from .fake_apiserver import FakeApiServer, RecordedRequest

__all__ = ["FakeApiServer", "RecordedRequest"]
