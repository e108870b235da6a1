"""The service's end of its jobs' drivers (docs/service.md, "The driver and the
service"): the per-job credential, the per-job hub token for the gateway, and
the events a driver reports, applied to its Job with the service's own
Kubernetes credentials.

- **The credential**: 32 random bytes minted at submit, put in the job's Secret
  (:data:`~kbatch_dask.driver.service.CREDENTIAL_VAR`) and nowhere else in
  plain; the Job's annotation ``kbatch-dask.io/credential-sha256`` holds its
  SHA-256, so a restarted service still verifies it. It is the only thing the
  events routes accept.
- **Events** patch the Job's annotations with the names the Kubernetes
  reporter writes (:mod:`kbatch_dask.driver.kubernetes`), so
  :func:`~kbatch_dask.backends.kubernetes.status.job_record` reads a service
  job like a direct one. Events for a Job that has ended (``Complete`` or
  ``Failed``) change nothing.
- **The hub token**: minted for the submitting user with the scopes the
  gateway needs (``kbatch.hub.token-scopes``) and the direct backend's expiry
  rule, put in the job's Secret as ``JUPYTERHUB_API_TOKEN``, and revoked on the
  driver's final ``finished`` event, after a cancel (once the pod's
  termination grace is over: its driver stops the cluster with it), and by
  :meth:`DriverEvents.sweep` for Jobs found ended without one.
- **Mail**: a job's ``started`` and last ``finished`` events, and the ends the
  sweep finds, go to :mod:`.job_mail` when the job asked for mail.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kbatch_dask.backends.hub.protocol import EVENTS
from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.backends.kubernetes.slugs import is_dns_label
from kbatch_dask.backends.kubernetes.status import disruption
from kbatch_dask.errors import BadInput, HubError, KubeError
from kbatch_dask.hub import tokens as hub
from kbatch_dask.records import JobState, now
from kbatch_dask.service.job_mail import JobMail

log = logging.getLogger("kbatch_dask.service")
ALL_JOBS = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
POD_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # a DNS subdomain
ENDED = ("Complete", "SuccessCriteriaMet", "Failed", "FailureTarget")
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "started": (),
    "cluster": ("name", "dashboard", "worker_limit"),
    "owned": ("clusters",),
    "finished": ("state", "exit_code", "reason"),
}


def new_credential() -> str:
    """A job's driver credential: 32 random bytes, URL-safe text."""
    return secrets.token_urlsafe(32)


def digest(credential: str) -> str:
    """What the Job's annotation holds of the credential.

    >>> digest("x")
    '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881'
    """
    return hashlib.sha256(credential.encode()).hexdigest()


def ended(job: Mapping[str, Any]) -> bool:
    """Whether the Job has ended for good (the Job controller's conditions)."""
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ENDED and c.get("status") == "True" for c in conditions)


def _annotations(job: Mapping[str, Any]) -> Mapping[str, str]:
    return (job.get("metadata") or {}).get("annotations") or {}


@dataclass(frozen=True)
class JobTokens:
    """Per-job hub tokens, made with the service's own hub token (its role holds
    the ``tokens`` scope on users)."""

    api_url: str
    token: str = field(repr=False)
    policy: hub.TokenPolicy

    def _session(self, user: str) -> hub.HubSession:
        return hub.HubSession(self.api_url.rstrip("/"), user, self.token)

    def mint(self, user: str, name: str, time_limit: int | None) -> hub.HubToken:
        """A token of ``user`` for the job's gateway; HubError when the hub refuses."""
        policy = self.policy
        return hub.create_token(
            self._session(user),
            note=hub.token_note(name, now(), "the kbatch-dask service"),
            scopes=[s for s in dict.fromkeys(policy.scopes) if s != hub.REVOKE_SCOPE],  # the service revokes it
            expires_in=hub.token_lifetime(time_limit, policy.margin, policy.lifetime),
            timeout=policy.timeout,
        )

    def revoke(self, user: str, token_id: str, job: str) -> bool:
        """Delete the token (gone already counts); False, logged, if the hub refuses."""
        try:
            hub.revoke_token(self._session(user), token_id, self.policy.timeout)
        except HubError as exc:
            log.warning("user %s job %s: could not revoke hub token %s (%s); it expires", user, job, token_id, exc)
            return False
        log.info("user %s job %s: revoked its hub token %s", user, job, token_id)
        return True

    def environment(self, user: str, token: hub.HubToken) -> dict[str, str]:
        """What the job's Secret gets: the token as the gateway client reads it."""
        return {"JUPYTERHUB_API_URL": self.api_url, "JUPYTERHUB_USER": user, hub.TOKEN_VAR: token.token}


class DriverEvents:
    """Events and questions of the service's job drivers, checked by their credential."""

    def __init__(
        self,
        api: KubeAPI,
        namespaces: Callable[[], list[str]],
        tokens: JobTokens | None,
        located: Callable[[str], str | None] = lambda job_id: None,
        mail: JobMail | None = None,
    ) -> None:
        self.api = api
        self.namespaces = namespaces  # those holding the service's jobs (one, or one per user)
        self.located = located  # the namespace of a job the service knows already (its watch cache)
        self.tokens = tokens
        self.mail = mail  # None: the service sends no mail

    # -- who asks ---------------------------------------------------------------

    def job(self, job_id: str, credential: str | None) -> dict[str, Any] | None:
        """The Job ``job_id`` if ``credential`` is its driver's, else None (the
        caller answers 401 alike for a wrong credential and a missing Job)."""
        if not credential or not is_dns_label(job_id):
            return None
        selector = f"{ALL_JOBS},{names.LABEL_JOB_ID}={job_id}"
        # Read fresh from the API (a cancel's deletionTimestamp), in the job's own namespace
        # when known: per-user mode would otherwise list every user's namespace per event.
        known = self.located(job_id)
        for namespace in [known] if known else self.namespaces():
            for job in self.api.list_jobs(namespace, selector, 2):
                expected = _annotations(job).get(names.ANN_CREDENTIAL_HASH)
                if expected and hmac.compare_digest(expected, digest(credential)):
                    return job
        return None

    # -- events -----------------------------------------------------------------

    def apply(self, job: Mapping[str, Any], body: Any) -> None:
        """Record one event on the Job (BadInput for a malformed one); nothing for a Job that ended."""
        event, values = parse_event(body)
        meta = job.get("metadata") or {}
        job_id = (meta.get("labels") or {}).get(names.LABEL_JOB_ID, "")
        if ended(job):
            log.info("job %s: %s event after the Job ended; ignored", job_id, event)
            return
        if event == "finished" and meta.get("deletionTimestamp") and values["state"] != JobState.SUCCEEDED.value:
            # Deleted while it ran: cancelled (the service's cancel deletes in the foreground),
            # also when the driver was stopped before it could ask why.
            values = {**values, "state": JobState.CANCELLED.value, "reason": "cancelled by user"}
        annotations = _event_annotations(event, values)
        try:
            self.api.patch_job(str(meta["namespace"]), str(meta["name"]), {"metadata": {"annotations": annotations}})
        except KubeError as exc:
            if exc.status != 404:  # deleted meanwhile (a cancel): nothing to record on
                raise
        final = event == "finished" and _final(job, JobState(values["state"]))
        if self.mail is not None:
            self.mail.driver_event(job, event, values, final)
        if final:
            self.revoke(job)

    def pod_status(self, job: Mapping[str, Any], pod_name: str | None) -> dict[str, Any]:
        """What the driver may ask of its Job and pod: is the Job being deleted
        (a cancel), is the pod being replaced (its ``DisruptionTarget``)."""
        meta = job.get("metadata") or {}
        disrupted = None
        if pod_name and POD_NAME.fullmatch(pod_name):
            job_id = (meta.get("labels") or {}).get(names.LABEL_JOB_ID)
            try:
                pod = self.api.read_pod(str(meta["namespace"]), pod_name)
            except KubeError:
                pod = {}
            if ((pod.get("metadata") or {}).get("labels") or {}).get(names.LABEL_JOB_ID) == job_id:
                disrupted = disruption(pod)  # of this job's pods only
        return {"cancel_requested": bool(meta.get("deletionTimestamp")), "disrupted": disrupted}

    # -- the job's hub token ----------------------------------------------------

    def revoke(self, job: Mapping[str, Any]) -> None:
        """Revoke the job's hub token, if it has one, and take its id off the Job."""
        meta = job.get("metadata") or {}
        ann = _annotations(job)
        token_id, user = ann.get(names.ANN_HUB_TOKEN_ID), ann.get(names.ANN_USER)
        if not (self.tokens and token_id and user):
            return
        job_id = (meta.get("labels") or {}).get(names.LABEL_JOB_ID, "")
        if self.tokens.revoke(user, token_id, job_id):
            patch = {"metadata": {"annotations": {names.ANN_HUB_TOKEN_ID: None}}}
            with contextlib.suppress(KubeError):  # gone, or unreachable: revoking again is harmless
                self.api.patch_job(str(meta["namespace"]), str(meta["name"]), patch)

    def revoke_later(self, job: Mapping[str, Any], delay: float) -> None:
        """:meth:`revoke` in ``delay`` seconds (a cancelled job's driver still stops its cluster)."""
        timer = threading.Timer(delay, self.revoke, args=(job,))
        timer.daemon = True
        timer.start()

    def sweep(self, jobs: Iterable[Mapping[str, Any]]) -> int:
        """Revoke the tokens of ``jobs`` (the watch cache's: no list of its own)
        that ended without a final event (killed, OOM, node gone, retries spent),
        and mail their ends; how many tokens were revoked."""
        if self.tokens is None and self.mail is None:
            return 0
        count = 0
        for job in jobs:
            # The annotations first: most Jobs kept ended long ago and need nothing.
            token = self.tokens is not None and bool(_annotations(job).get(names.ANN_HUB_TOKEN_ID))
            mail = self.mail is not None and self.mail.awaits_end(job)
            if not (token or mail) or not ended(job):
                continue
            if mail and self.mail is not None:
                self.mail.ended(job)
            if token:
                self.revoke(job)
                count += 1
        return count


def _final(job: Mapping[str, Any], state: JobState) -> bool:
    """Whether a ``finished`` event is the job's last: no other attempt follows."""
    if state in (JobState.SUCCEEDED, JobState.CANCELLED) or (job.get("metadata") or {}).get("deletionTimestamp"):
        return True
    retries = int((job.get("spec") or {}).get("backoffLimit") or 0)
    failed = int((job.get("status") or {}).get("failed") or 0)  # this attempt's pod not counted yet
    return failed >= retries


def _event_annotations(event: str, values: Mapping[str, Any]) -> dict[str, str | None]:
    stamp = now().isoformat(timespec="seconds")
    if event == "started":
        return {names.ANN_STARTED: stamp}
    if event == "cluster":
        limit = values.get("worker_limit")
        return {
            names.ANN_CLUSTER: values["name"],
            names.ANN_DASHBOARD: values.get("dashboard"),
            names.ANN_WORKER_LIMIT: None if limit is None else str(limit),
        }
    if event == "owned":
        return {names.ANN_OWNED_CLUSTERS: ",".join(values["clusters"])}
    code = values.get("exit_code")
    return {
        names.ANN_STATE: values["state"],
        names.ANN_EXIT_CODE: None if code is None else str(code),
        names.ANN_REASON: values.get("reason"),
        names.ANN_FINISHED: stamp,
    }


def parse_event(body: Any) -> tuple[str, dict[str, Any]]:
    """An event's name and fields; BadInput naming the first bad one.

    >>> parse_event({"event": "owned", "clusters": ["a"]})
    ('owned', {'clusters': ['a']})
    """
    if not isinstance(body, dict):
        raise BadInput("the event: expected a JSON object")
    event = body.get("event")
    if event not in EVENTS:
        raise BadInput(f"event {event!r}: expected one of {', '.join(EVENTS)}")
    values = {k: v for k, v in body.items() if k != "event"}
    unknown = sorted(set(values) - set(EVENT_FIELDS[event]))
    if unknown:
        raise BadInput(f"unknown field {unknown[0]!r} of a {event} event")
    optional_text = (type(None), str)
    checks: dict[str, tuple[type, ...]] = {
        "name": (str,),
        "dashboard": optional_text,
        "worker_limit": (type(None), int),
        "exit_code": (type(None), int),
        "reason": optional_text,
        "state": (str,),
    }
    for key, value in values.items():
        if key == "clusters":
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise BadInput("clusters: expected a list of cluster names")
        elif not isinstance(value, checks[key]) or isinstance(value, bool):
            raise BadInput(f"{key}: not a valid value for a {event} event")
    if event == "cluster" and "name" not in values:
        raise BadInput("a cluster event needs the cluster's name")
    if event == "finished" and values.get("state") not in JobState.__members__:
        raise BadInput(f"state {values.get('state')!r}: expected a job state")
    return event, values
