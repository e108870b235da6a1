"""Makes the fake Kubernetes fixtures available to the tests of the double itself."""

from .fixtures import fake_apiserver, fake_kubelet, kube_env  # noqa: F401
