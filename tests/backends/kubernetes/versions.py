"""The Kubernetes versions we support, for every strict schema check of what we send or publish.

The z2jh chart needs Kubernetes >= 1.32 and dask-gateway (>= 2025.4) >= 1.30, so
the backend's objects must hold from 1.30; kubernetes-validate >= 1.35 has the
schemas up to 1.35.
"""

from __future__ import annotations

K8S_VERSIONS = ("1.30", "1.31", "1.32", "1.33", "1.34", "1.35")
