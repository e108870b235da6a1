"""A service job's gateway hub token: whether it gets one (it has a cluster on a
gateway with JupyterHub auth), and when it is made. A job the service's queue
starts gets it as it leaves the queue (:meth:`GatewayTokens.at_start`), so that
it lives ``--time`` plus the margin from the start however long the job waited
or was held; with Kueue, which starts the Jobs itself, at submit."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.errors import HubError, Refused
from kbatch_dask.gateway import configured_gateway
from kbatch_dask.hub.tokens import HubToken
from kbatch_dask.service.driver_events import JobTokens
from kbatch_dask.spec import JobSpec


class GatewayTokens:
    """Made with the service's own hub token (``tokens``; None: no hub to make them with)."""

    def __init__(self, api: KubeAPI, tokens: JobTokens | None) -> None:
        self.api, self.tokens = api, tokens

    def needed(self, spec: JobSpec) -> bool:
        """Whether the job gets a hub token: it has a cluster, on a gateway with JupyterHub auth."""
        gateway = configured_gateway()
        return (
            self.tokens is not None and bool(spec.workers) and gateway is not None and gateway.auth_type == "jupyterhub"
        )

    def at_start(self, job: Mapping[str, Any]) -> dict[str, str]:
        """As the queue starts ``job``: its gateway token, made now (so that it lives
        ``--time`` plus the margin from the start, however long the job waited), put
        in the job's Secret before its pod exists; the annotation naming it."""
        meta = job.get("metadata") or {}
        ann = meta.get("annotations") or {}
        if ann.get(names.ANN_TOKEN_AT_START) != "true" or self.tokens is None:
            return {}
        user, name, namespace = str(ann[names.ANN_USER]), str(ann.get(names.ANN_NAME, "")), str(meta["namespace"])
        limit = ann.get(names.ANN_TIME_LIMIT)
        token = self.mint(user, name, int(limit) if limit else None)
        data = {k: base64.b64encode(v.encode()).decode() for k, v in self.tokens.environment(user, token).items()}
        try:
            self.api.patch_secret(namespace, str(meta["name"]), {"data": data})  # the Secret shares the Job's name
        except BaseException:
            self.tokens.revoke(user, token.id, str(meta["name"]))
            raise
        return {names.ANN_HUB_TOKEN_ID: token.id}

    def mint(self, user: str, name: str, time_limit: int | None) -> HubToken:
        """A hub token of ``user`` for the job's cluster (on a gateway with
        JupyterHub auth); a hub that refuses is a refusal (403)."""
        assert self.tokens is not None
        try:
            return self.tokens.mint(user, name, time_limit)
        except HubError as exc:
            raise Refused(
                f"JupyterHub did not create a token for the job's Dask cluster ({exc}); the service's hub role "
                "needs the scope 'tokens' and users the scopes of kbatch.hub.token-scopes"
            ) from None
