"""A fake Kubernetes API server over real HTTP on 127.0.0.1: a test double.

No real API server can run on the project's test machines, so the Kubernetes
backend is tested against this one. It speaks the real wire protocol, so the real
``kubernetes`` Python client and ``kubectl`` work against it unchanged; what runs
behind it is a small in-memory store with Kubernetes' write rules (``store.py``),
defaulting and validation (``admission.py``) and selectors (``selection.py``).

Served:

* ``v1`` pods (+ ``status``, ``log``), configmaps, secrets, events,
  persistentvolumeclaims (+ ``status``; their access modes decide attachment,
  see ``nodes.py``); ``batch/v1``
  jobs (+ ``status``); namespaces (get/list/create: a namespace exists once
  created, and ``default`` and every namespace holding an object exist as if
  created — objects may be created in any namespace, unlike Kubernetes, except
  with ``strict_namespaces=True``: then creating one in a namespace that does
  not exist is Kubernetes' 404);
  ``authorization.k8s.io/v1`` selfsubjectaccessreviews and
  selfsubjectrulesreviews (answered from the RBAC simulation below);
  ``rbac.authorization.k8s.io/v1`` roles, rolebindings, clusterroles and
  clusterrolebindings (stored; evaluated in RBAC mode).
* Verbs: create (409 AlreadyExists, generateName), get (404), list (label and
  field selectors, ``limit``/``continue`` pagination), watch (``watch=true``,
  ``timeoutSeconds``, ``resourceVersion``: from "" or "0" the current objects
  then changes, from N the changes after N, replayed from the store's history;
  older than the history, as after :meth:`FakeApiServer.compact`, an ERROR
  event with a ``410 Expired`` Status ends the stream, as the real server
  does; ``max_watch_seconds`` caps every watch, as the real server's request
  timeout does), update (PUT), patch (JSON, merge, strategic-as-merge),
  delete with ``propagationPolicy`` and garbage collection by ownerReferences
  (a Job's default is Orphan, as in Kubernetes), deletecollection; ``dryRun=All``.
* Errors as ``Status`` bodies with Kubernetes' reasons and messages (400, 401,
  403, 404, 405, 409, 413, 415, 422), so ``ApiException.status`` is right.
* Discovery (``/version``, ``/api``, ``/apis``, group versions) in the legacy
  format — enough for ``kubectl get``. ``/openapi/*`` is a 404 (kubectl's
  ``get`` does not need it).
* Bearer-token authentication: each token names a user (and, for tokens the
  fake kubelet gives pods, the pod). Unknown tokens get 401. Requests without
  an ``Authorization`` header are served as user ``system:anonymous`` unless
  ``allow_anonymous=False``: kubectl (client-go) does not send bearer tokens over
  plain http, and the server is plain http. The request log records the user, so
  a test can check that the project's own calls were authenticated.
* RBAC simulation, two modes. By default everything is allowed except what
  tests deny with :meth:`FakeApiServer.deny`. With ``rbac=True`` nothing is
  allowed unless a Role or ClusterRole bound to the caller grants it
  (``rbac.py`` evaluates verbs, apiGroups, resources, resourceNames and ``*``);
  deny rules still apply on top. The caller is the token's user: a pod's
  service account (``system:serviceaccount:<ns>:<sa>``) for tokens the fake
  kubelet gives pods, the user of :meth:`issue_token` for kubeconfigs.
  Refused calls get Kubernetes' 403 message. Writing RBAC objects goes through
  Kubernetes' escalation check (``escalation.py``: a binding needs ``bind`` on
  its role or all the role's permissions, a Role ``escalate`` or its
  permissions); the request log names the ``bind``/``escalate`` it used. In the default mode a
  selfsubjectrulesreview answers ``incomplete`` (deny rules are not rules).
* A request log (:meth:`FakeApiServer.requests`) for asserting on API traffic.
* Dropped watches (:meth:`FakeApiServer.drop_watches`): every open watch
  connection is cut without the end of its stream.
* A black hole (:meth:`FakeApiServer.black_hole`): connections are accepted and
  requests read, but never answered, as where a NetworkPolicy lets the
  handshake through to a proxy that drops the rest, or an overloaded API
  server; the client's own timeout is all that ends the call. Held requests
  are logged with ``status`` None and closed when the server stops.

Not served: protobuf bodies (415; ``kubectl get/logs/describe/delete`` work,
``kubectl auth can-i`` does not), Table output (``kubectl get`` shows only
NAME and AGE columns), server-side apply (415), ``fieldValidation=Strict`` (unknown
fields are kept, not refused), resourceVersion on list (lists are always current;
``resourceVersionMatch`` is ignored), watch bookmarks, list-merge semantics of
strategic merge patch (lists are replaced), admission beyond ``admission.py``. Garbage collection runs
synchronously inside the delete call instead of shortly after it.

The fake kubelet (``fake_kubelet.py``) changes objects through :attr:`store`
directly, not over HTTP, so its writes never appear in the request log.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from .escalation import checked, confirm_no_escalation
from .rbac import allows, bound_rules
from .resources import (
    BY_PATH,
    JOB,
    NAMESPACE,
    POD,
    RBAC_GROUP,
    SSAR,
    SSRR,
    STORED,
    ResourceType,
    api_group,
    api_group_list,
    api_resource_list,
)
from .selection import labels_match, parse_label_selector
from .store import PATCH_TYPES, ApiError, JsonObj, Store, bad_request

MAX_BODY_BYTES = 3 * 1024 * 1024  # the real server's request size limit
DEFAULT_USER = "system:serviceaccount:{namespace}:default"


@dataclass
class RecordedRequest:
    """One request the server received, for tests to assert on."""

    method: str
    path: str
    query: dict[str, str]
    user: str | None = None
    pod: str | None = None  # "namespace/name" when a pod's token made the call
    status: int | None = None
    #: (verb, resource) of the ``bind`` or ``escalate`` permission that let an RBAC write
    #: through the escalation check (``escalation.py``); None when none was needed.
    escalation: tuple[str, str] | None = None


@dataclass(frozen=True)
class Identity:
    """Who a bearer token stands for. ``{namespace}`` in ``user`` is the request's."""

    user: str
    pod: str | None = None

    def name_in(self, namespace: str | None) -> str:
        return self.user.replace("{namespace}", namespace or "default")


#: Who a request without credentials is. kubectl (client-go) never sends a bearer
#: token over plain http, so the server accepts such requests by default.
ANONYMOUS = Identity("system:anonymous")


@dataclass(frozen=True)
class DenyRule:
    """A (verb, group, resource) the server refuses; None / "*" match anything."""

    verb: str
    group: str
    resource: str
    namespace: str | None = None
    user: str | None = None
    caller: str | None = None  # "pod" (tokens given to pods) or "client" (all others)

    def matches(self, identity: Identity, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        caller = "pod" if identity.pod else "client"
        return (
            self.verb in ("*", verb)
            and self.group in ("*", group)
            and self.resource in ("*", resource)
            and self.namespace in (None, namespace)
            and self.user in (None, identity.name_in(namespace))
            and self.caller in (None, caller)
        )


@dataclass
class PodLog:
    """Where a pod's log comes from: a file the kubelet writes, or fixed text."""

    path: Path | None = None
    text: bytes = b""
    finished: bool = False

    def read(self, offset: int = 0) -> bytes:
        if self.path is None:
            return self.text[offset:]
        try:
            with self.path.open("rb") as handle:
                handle.seek(offset)
                return handle.read()
        except FileNotFoundError:
            return b""


@dataclass(frozen=True)
class Target:
    """What a request path names."""

    rtype: ResourceType
    namespace: str | None
    name: str | None = None
    subresource: str | None = None


class FakeApiServer:
    """The fake API server; runs its own event loop in a background thread.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        version: tuple[int, int] = (1, 33),
        user: str = DEFAULT_USER,
        allow_anonymous: bool = True,
        rbac: bool = False,
        strict_namespaces: bool = False,
    ) -> None:
        self.store = Store()
        self.version = version
        self.allow_anonymous = allow_anonymous
        self.rbac = rbac  # True: deny by default, evaluate the stored Roles (may be switched any time)
        self.strict_namespaces = strict_namespaces  # True: creating in a namespace that does not exist is a 404
        self.token = secrets.token_hex(16)
        self._tokens: dict[str, Identity] = {self.token: Identity(user)}
        self._deny_rules: list[DenyRule] = []
        self._black_hole: tuple[str | None] | None = None  # (caller,) while requests go unanswered
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self._logs: dict[tuple[str, str], PodLog] = {}
        self._created_namespaces: dict[str, JsonObj] = {}  # by name, as created (labels kept)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = threading.Event()
        self._watch_drops = 0  # bumped by drop_watches(): open watches compare it with theirs
        #: The longest a watch is served before its stream ends cleanly (the real
        #: server's --min-request-timeout does this, randomised, around 30 minutes).
        self.max_watch_seconds = 1800.0
        self.port = 0

    # -- lifecycle ------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeApiServer:
        """Listen on a free port of 127.0.0.1; returns once requests are served."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(sock, started), name="fake-apiserver", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the fake API server did not start")
        return self

    def stop(self) -> None:
        """Stop serving; open log follows and watches end."""
        if self._loop is None or self._thread is None:
            return
        self._stopping.set()
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            future.result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = self._thread = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, sock: socket.socket, started: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.SockSite(self._runner, sock, shutdown_timeout=0.5).start())
        started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- credentials and clients ----------------------------------------------

    def issue_token(self, user: str, *, pod: str | None = None) -> str:
        """A new bearer token for ``user`` (``pod`` = "ns/name" marks a pod's token)."""
        token = secrets.token_hex(16)
        self._tokens[token] = Identity(user, pod)
        return token

    def kubeconfig(self, path: str | Path, *, namespace: str = "default", token: str | None = None) -> Path:
        """Write a kubeconfig (plain HTTP, bearer token) for this server to ``path``."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": {"token": token or self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake-user", "namespace": namespace}}],
            "current-context": "fake",
            "preferences": {},
        }
        path = Path(path)
        path.write_text(yaml.safe_dump(config))
        return path

    def client(self, *, token: str | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` configured for this server."""
        from kubernetes import client

        configuration = client.Configuration(host=self.url)
        configuration.api_key = {"BearerToken": token or self.token}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        return client.ApiClient(configuration)

    # -- RBAC simulation ------------------------------------------------------

    def deny(
        self,
        verb: str,
        group: str,
        resource: str,
        *,
        namespace: str | None = None,
        user: str | None = None,
        caller: str | None = None,
    ) -> None:
        """Refuse ``verb`` on ``group``/``resource`` (e.g. ``"jobs"``, ``"pods/log"``).

        ``caller="pod"`` limits the rule to calls made with a pod's token (the
        driver), ``caller="client"`` to all others (the notebook/test side).
        """
        self._deny_rules.append(DenyRule(verb, group, resource, namespace, user, caller))

    def allow(self, verb: str, group: str, resource: str) -> None:
        """Drop the deny rules for exactly this (verb, group, resource)."""
        self._deny_rules = [r for r in self._deny_rules if (r.verb, r.group, r.resource) != (verb, group, resource)]

    def allow_all(self) -> None:
        self._deny_rules = []

    def is_allowed(
        self,
        identity: Identity,
        verb: str,
        group: str,
        resource: str,
        namespace: str | None,
        name: str | None = None,
    ) -> bool:
        if any(rule.matches(identity, verb, group, resource, namespace) for rule in self._deny_rules):
            return False
        return not self.rbac or allows(self.store, identity.name_in(namespace), verb, group, resource, namespace, name)

    # -- black hole -------------------------------------------------------------

    def black_hole(self, enabled: bool = True, *, caller: str | None = None) -> None:
        """Stop answering (``enabled=False``: answer again, from the next request on).

        ``caller="pod"`` swallows only calls made with a pod's token (the driver),
        ``caller="client"`` only all others, as for :meth:`deny`."""
        self._black_hole = (caller,) if enabled else None

    def _swallows(self, request: web.Request) -> bool:
        hole = self._black_hole
        if hole is None:
            return False
        (caller,) = hole
        if caller is None:
            return True
        _, _, token = request.headers.get("Authorization", "").partition(" ")
        identity = self._tokens.get(token.strip())
        return caller == ("pod" if identity is not None and identity.pod else "client")

    # -- request log ----------------------------------------------------------

    def requests(
        self,
        method: str | None = None,
        path_contains: str | None = None,
        *,
        pod: str | None = None,
        from_pods: bool | None = None,
    ) -> list[RecordedRequest]:
        """Recorded requests, oldest first, filtered by method / path substring / caller."""
        with self._requests_lock:
            recorded = list(self._requests)
        return [
            r
            for r in recorded
            if (method is None or r.method == method.upper())
            and (path_contains is None or path_contains in r.path)
            and (pod is None or r.pod == pod)
            and (from_pods is None or (r.pod is not None) == from_pods)
        ]

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    # -- direct access for tests ----------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> JsonObj | None:
        """A copy of a stored object, or None (no RBAC, not logged)."""
        return self.store.find(STORED[resource], namespace, name)

    def objects(self, resource: str, namespace: str | None = None, label_selector: str = "") -> list[JsonObj]:
        """Copies of the stored objects of a kind (no RBAC, not logged)."""
        return copy.deepcopy(self.store.select(STORED[resource], namespace, label_selector))

    def compact(self) -> None:
        """Compact the history as etcd does: a watch from an older resourceVersion gets 410."""
        self.store.compact()

    def create(self, resource: str, namespace: str, body: JsonObj) -> JsonObj:
        """Create through admission (defaults, validation) without HTTP."""
        return self.store.create(STORED[resource], namespace, body)

    def wait_for(
        self,
        resource: str,
        namespace: str,
        name: str,
        predicate: Callable[[JsonObj | None], bool],
        *,
        timeout: float = 10.0,
    ) -> JsonObj | None:
        """Poll an object (None when absent) until ``predicate`` holds; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.get(resource, namespace, name)
            if predicate(obj):
                return obj
            if time.monotonic() > deadline:
                shown = json.dumps(obj, indent=1)[:4000] if obj is not None else "absent"
                raise AssertionError(f"timed out after {timeout} s waiting for {resource}/{name}; last state: {shown}")
            time.sleep(0.02)

    # -- pod logs (written by the fake kubelet) -------------------------------

    def attach_log(self, namespace: str, pod: str, path: Path) -> None:
        """Serve ``path`` as the pod's log from now on (the container has started)."""
        self._logs[(namespace, pod)] = PodLog(path=path)

    def finish_log(self, namespace: str, pod: str) -> None:
        """The container has exited: followers get the rest and the stream ends."""
        if (namespace, pod) in self._logs:
            self._logs[(namespace, pod)].finished = True

    def forget_log(self, namespace: str, pod: str) -> None:
        """The pod is gone, and its log with it."""
        self._logs.pop((namespace, pod), None)

    def set_log_text(self, namespace: str, pod: str, text: str) -> None:
        """A finished log with fixed contents (for seeded pods)."""
        self._logs[(namespace, pod)] = PodLog(text=text.encode(), finished=True)

    # -- seeding --------------------------------------------------------------

    def seed_jobs(
        self,
        namespace: str,
        n: int,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        outcome: str = "Complete",
        name_prefix: str = "seeded-",
        image: str = "python:3.11-slim",
        pods: bool = True,
        log: str | None = None,
    ) -> list[str]:
        """Insert ``n`` realistic Jobs (and their pods) straight into the store.

        ``outcome`` is "Complete", "Failed" (exit code 1, BackoffLimitExceeded) or
        "Running". Seeded objects bypass admission and emit no events, so a running
        kubelet ignores them. Returns the job names.
        """
        from .seeding import seeded_job, seeded_pod

        names = []
        for i in range(n):
            name = f"{name_prefix}{i:05d}"
            job = seeded_job(namespace, name, labels or {}, annotations or {}, outcome, image)
            self.store.insert(JOB, job)
            if pods:
                pod = seeded_pod(job, outcome)
                self.store.insert(POD, pod)
                if log is not None:
                    self.set_log_text(namespace, pod["metadata"]["name"], log)
            names.append(name)
        return names

    # -- HTTP -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = RecordedRequest(request.method, request.path, dict(request.query))
        with self._requests_lock:
            self._requests.append(record)
        if self._swallows(request):
            await request.read()
            while not self._stopping.is_set():  # never answered; the connection closes with the server
                await asyncio.sleep(0.05)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)  # written nowhere: the connection is closed
        try:
            response = await self._route(request, record)
        except ApiError as exc:
            response = _json(exc.status(), exc.code)
        except web.HTTPRequestEntityTooLarge:
            response = _json(
                ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY_BYTES}").status(),
                413,
            )
        record.status = response.status
        return response

    async def _route(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts in (["version"], ["healthz"], ["livez"], ["readyz"]):
            return self._public(parts[0])
        identity = self._authenticate(request)
        record.user, record.pod = identity.user, identity.pod
        if parts == ["api"]:
            return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        if parts == ["apis"]:
            return _json(api_group_list())
        if len(parts) == 2 and parts[0] == "apis" and any(r.group == parts[1] for r in BY_PATH.values()):
            return _json(api_group(parts[1]))
        group, version, rest = _split_api_path(parts)
        if group is None:
            raise _page_not_found()
        if not rest:
            listing = api_resource_list(f"{group}/{version}" if group else version)
            if listing is None:
                raise _page_not_found()
            return _json(listing)
        target = _target(group, version, rest)
        record.user = identity.name_in(target.namespace)
        return await self._resource(request, identity, target, record)

    def _public(self, what: str) -> web.Response:
        if what != "version":
            return web.Response(text="ok", content_type="text/plain")
        major, minor = self.version
        return _json(
            {
                "major": str(major),
                "minor": str(minor),
                "gitVersion": f"v{major}.{minor}.0-fake",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.24.0",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    def _authenticate(self, request: web.Request) -> Identity:
        header = request.headers.get("Authorization")
        if header is None and self.allow_anonymous:
            return ANONYMOUS
        scheme, _, token = header.partition(" ") if header else ("", "", "")
        identity = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if identity is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return identity

    def _authorize(self, identity: Identity, verb: str, target: Target) -> None:
        rtype = target.rtype
        resource = rtype.plural + (f"/{target.subresource}" if target.subresource else "")
        if self.is_allowed(identity, verb, rtype.group, resource, target.namespace, target.name):
            return
        subject = rtype.qualified + (f' "{target.name}"' if target.name else "")
        scope = f' in the namespace "{target.namespace}"' if target.namespace else " at the cluster scope"
        message = (
            f'{subject} is forbidden: User "{identity.name_in(target.namespace)}" cannot {verb} resource '
            f'"{resource}" in API group "{rtype.group}"{scope}'
        )
        details = {"group": rtype.group, "kind": rtype.plural, **({"name": target.name} if target.name else {})}
        raise ApiError(403, "Forbidden", message, details)

    async def _resource(
        self, request: web.Request, identity: Identity, target: Target, record: RecordedRequest
    ) -> web.StreamResponse:
        verb = _verb(request, target)
        if verb not in target.rtype.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if target.rtype is SSAR:
            return self._access_review(identity, await _body(request))
        if target.rtype is SSRR:
            return self._rules_review(identity, await _body(request))
        self._authorize(identity, verb, target)
        # The namespace lifecycle admission runs before the registry's escalation check.
        if verb == "create" and self.strict_namespaces and target.namespace not in (None, *self._namespace_names()):
            raise ApiError(404, "NotFound", f'namespaces "{target.namespace}" not found', {"kind": "namespaces"})
        if self.rbac and verb in ("create", "update") and checked(target.rtype):
            record.escalation = confirm_no_escalation(
                self.store,
                identity.name_in(target.namespace),
                lambda verb, resource, name, ns: self.is_allowed(identity, verb, RBAC_GROUP, resource, ns, name),
                target.rtype,
                target.namespace,
                await _body(request),
            )
        if target.rtype is NAMESPACE:
            body = await _body(request) if verb == "create" else None
            return self._namespaces(target, verb, body, request.query.get("labelSelector", ""))
        if target.subresource == "log":
            return await self._pod_log(request, target)
        if verb == "watch":
            return await self._watch(request, target)
        return await self._crud(request, verb, target)

    async def _crud(self, request: web.Request, verb: str, target: Target) -> web.Response:
        rtype, namespace, name, sub = target.rtype, target.namespace or "", target.name or "", target.subresource
        query = request.query
        dry_run = query.get("dryRun") == "All"
        if verb == "get":
            return _json(self.store.get(rtype, namespace, name))
        if verb == "list":
            return self._list(target, query)
        if verb == "create":
            return _json(self.store.create(rtype, namespace, await _body(request), dry_run=dry_run), 201)
        if verb == "update":
            return _json(
                self.store.replace(rtype, namespace, name, await _body(request), subresource=sub, dry_run=dry_run)
            )
        if verb == "patch":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            if content_type not in PATCH_TYPES:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"{', '.join(PATCH_TYPES)} (server-side apply is not simulated)",
                )
            patched = self.store.patch(
                rtype, namespace, name, content_type, await _body(request), subresource=sub, dry_run=dry_run
            )
            return _json(patched)
        options = {**(await _body(request, optional=True) or {}), **_delete_query(query)}
        propagation = options.get("propagationPolicy")
        if propagation is None and options.get("orphanDependents") is not None:
            propagation = "Orphan" if options["orphanDependents"] else "Background"
        if verb == "deletecollection":
            self.store.delete_collection(
                rtype,
                namespace,
                label_selector=query.get("labelSelector", ""),
                field_selector=query.get("fieldSelector", ""),
                propagation=propagation,
            )
            return _json(_success(rtype, ""))
        grace = options.get("gracePeriodSeconds")
        obj, gone = self.store.delete(
            rtype,
            namespace,
            name,
            propagation=propagation,
            grace_seconds=int(grace) if grace is not None else None,
            preconditions=options.get("preconditions"),
            dry_run=dry_run or options.get("dryRun") == ["All"],
        )
        if gone and rtype is not POD:
            return _json(_success(rtype, name, obj["metadata"]["uid"]))
        return _json(obj)

    def _list(self, target: Target, query: Any) -> web.Response:
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise bad_request(f"invalid limit {query.get('limit')!r}") from None
        items, meta = self.store.page(
            target.rtype,
            target.namespace,
            label_selector=query.get("labelSelector", ""),
            field_selector=query.get("fieldSelector", ""),
            limit=limit,
            continue_token=query.get("continue", ""),
        )
        # Like the real server, list items carry no kind/apiVersion of their own.
        body = {
            "kind": f"{target.rtype.kind}List",
            "apiVersion": target.rtype.api_version,
            "metadata": meta,
            "items": [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items],
        }
        return _json(body)

    def _namespaces(self, target: Target, verb: str, body: Any, label_selector: str) -> web.Response:
        def namespace(name: str) -> JsonObj:
            created = self._created_namespaces.get(name, {}).get("metadata") or {}
            return {
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": {
                    "name": name,
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                    "labels": {**(created.get("labels") or {}), "kubernetes.io/metadata.name": name},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }

        names = self._namespace_names()
        if verb == "create":
            name = ((body or {}).get("metadata") or {}).get("name") if isinstance(body, dict) else None
            if not isinstance(name, str) or not name:
                raise ApiError(422, "Invalid", "Namespace is invalid: metadata.name: Required value")
            if name in names:
                raise ApiError(409, "AlreadyExists", f'namespaces "{name}" already exists', {"kind": "namespaces"})
            self._created_namespaces[name] = copy.deepcopy(body)
            return _json(namespace(name), 201)
        if target.name:
            if target.name not in names:
                raise ApiError(404, "NotFound", f'namespaces "{target.name}" not found', {"kind": "namespaces"})
            return _json(namespace(target.name))
        selector = parse_label_selector(label_selector)
        listed = [namespace(n) for n in sorted(names)]
        items = [
            {k: v for k, v in ns.items() if k not in ("kind", "apiVersion")}
            for ns in listed
            if labels_match(selector, ns["metadata"]["labels"])
        ]
        meta = {"resourceVersion": self.store.resource_version}
        return _json({"kind": "NamespaceList", "apiVersion": "v1", "metadata": meta, "items": items})

    def _namespace_names(self) -> set[str]:
        """The namespaces that exist: ``default``, those created, and those of stored objects."""
        return (
            {"default"}
            | set(self._created_namespaces)
            | {ns for r in STORED.values() if r.namespaced for ns in self._namespaces_of(r)}
        )

    def _namespaces_of(self, rtype: ResourceType) -> set[str]:
        return {o["metadata"].get("namespace", "") for o in self.store.select(rtype, None)}

    def _access_review(self, identity: Identity, body: Any) -> web.Response:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        spec = body.get("spec") or {}
        attrs = spec.get("resourceAttributes")
        if attrs is None:
            allowed, reason = True, "non-resource URLs are allowed"
        else:
            resource = attrs.get("resource", "") + (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
            namespace = attrs.get("namespace") or None
            verb, group, name = attrs.get("verb", ""), attrs.get("group", ""), attrs.get("name") or None
            allowed = self.is_allowed(identity, verb, group, resource, namespace, name)
            reason = "allowed by the fake API server" if allowed else ""
        review = {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": {"allowed": allowed, **({"reason": reason} if reason else {})},
        }
        return _json(review, 201)

    def _rules_review(self, identity: Identity, body: Any) -> web.Response:
        """What ``kubectl auth can-i --list`` shows: the caller's rules in a namespace."""
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        spec = body.get("spec") or {}
        namespace = spec.get("namespace") or ""
        if not namespace:
            raise ApiError(400, "BadRequest", "no namespace on request")
        status: JsonObj
        if self.rbac:
            fields = ("verbs", "apiGroups", "resources", "resourceNames")
            rules = bound_rules(self.store, identity.name_in(namespace), namespace)
            resource_rules = [{k: rule[k] for k in fields if rule.get(k)} for rule in rules]
            status = {"resourceRules": resource_rules, "nonResourceRules": [], "incomplete": False}
        else:
            status = {
                "resourceRules": [],
                "nonResourceRules": [],
                "incomplete": True,
                "evaluationError": "the fake API server allows all but denied requests (RBAC mode is off)",
            }
        review = {
            "kind": "SelfSubjectRulesReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
        return _json(review, 201)

    async def _pod_log(self, request: web.Request, target: Target) -> web.StreamResponse:
        namespace, name = target.namespace or "", target.name or ""
        pod = self.store.get(POD, namespace, name)
        container = _log_container(pod, request.query.get("container"))
        source = self._logs.get((namespace, name))
        if source is None:
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {_waiting_reason(pod)}')
        tail = request.query.get("tailLines")
        data = source.read()
        offset = len(data)
        if tail is not None:
            data = b"".join(data.splitlines(keepends=True)[-int(tail) :]) if int(tail) > 0 else b""
        if request.query.get("limitBytes"):
            data = data[: int(request.query["limitBytes"])]
        if request.query.get("follow") not in ("true", "1"):
            return web.Response(body=data, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        try:
            await response.write(data)
            while not self._stopping.is_set():
                more = source.read(offset)
                offset += len(more)
                if more:
                    await response.write(more)
                elif source.finished or self.store.find(POD, namespace, name) is None:
                    break
                else:
                    await asyncio.sleep(0.05)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, JsonObj]] = asyncio.Queue()

        def deliver(event: str, obj: JsonObj) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (event, obj))

        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            first, unsubscribe = self.store.watch(
                target.rtype,
                target.namespace,
                request.query.get("labelSelector", ""),
                request.query.get("fieldSelector", ""),
                deliver,
                since=request.query.get("resourceVersion", ""),
            )
        except ApiError as exc:
            if exc.code != 410:
                raise
            # As the real server: the watch is accepted, then ends with an ERROR event.
            await response.prepare(request)
            await response.write(json.dumps({"type": "ERROR", "object": exc.status()}).encode() + b"\n")
            await response.write_eof()
            return response
        timeout = min(float(request.query.get("timeoutSeconds") or 1800), self.max_watch_seconds)
        deadline = loop.time() + timeout
        dropped = self._watch_drops
        try:
            await response.prepare(request)
            for event, obj in first:
                await response.write(json.dumps({"type": event, "object": obj}).encode() + b"\n")
            while not self._stopping.is_set() and loop.time() < deadline:
                if self._watch_drops != dropped:
                    if request.transport is not None:
                        request.transport.abort()  # no end of stream: the connection just goes
                    break
                try:
                    event, obj = await asyncio.wait_for(
                        queue.get(), timeout=min(0.05, max(deadline - loop.time(), 0.01))
                    )
                except asyncio.TimeoutError:
                    continue
                await response.write(json.dumps({"type": event, "object": obj}).encode() + b"\n")
            else:
                await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            unsubscribe()
        return response

    def drop_watches(self) -> None:
        """Cut every open watch connection without ending its stream, as a restarted
        API server or a load balancer's idle timeout does; new watches are served."""
        self._watch_drops += 1


# -- request parsing helpers ----------------------------------------------------


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(obj).encode(), status=status, content_type="application/json")


def _page_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def _success(rtype: ResourceType, name: str, uid: str | None = None) -> JsonObj:
    details: JsonObj = {"name": name, "group": rtype.group, "kind": rtype.plural}
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _split_api_path(parts: list[str]) -> tuple[str | None, str, list[str]]:
    """``/api/v1/...`` → ("", "v1", rest); ``/apis/g/v/...`` → ("g", "v", rest)."""
    if len(parts) >= 2 and parts[:2] == ["api", "v1"]:
        return "", "v1", parts[2:]
    if len(parts) >= 3 and parts[0] == "apis":
        return parts[1], parts[2], parts[3:]
    return None, "", []


def _target(group: str, version: str, rest: list[str]) -> Target:
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise _page_not_found()
    rtype = BY_PATH.get((group, version, rest[0]))
    if rtype is None or (namespace is not None and not rtype.namespaced):
        raise _page_not_found()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in rtype.subresources:
        raise _page_not_found()
    if rtype.namespaced and namespace is None and name is not None:
        raise _page_not_found()
    return Target(rtype, namespace, name, sub)


def _verb(request: web.Request, target: Target) -> str:
    method, named = request.method, target.name is not None
    if method == "GET":
        if named:
            return "get"
        return "watch" if request.query.get("watch") in ("true", "1") else "list"
    if target.rtype.namespaced and target.namespace is None:
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    verbs = {"POST": None if named else "create", "PUT": "update", "PATCH": "patch"}
    verbs["DELETE"] = "delete" if named else "deletecollection"
    verb = verbs.get(method)
    if verb is None or (verb in ("update", "patch") and not named):
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    return verb


async def _body(request: web.Request, *, optional: bool = False) -> Any:
    raw = await request.read()
    if not raw.strip():
        if optional:
            return None
        raise bad_request("the request body is empty")
    content_type = request.headers.get("Content-Type", "")
    if "protobuf" in content_type or "cbor" in content_type:
        # kubectl sends protobuf for some typed calls (e.g. `kubectl auth can-i`).
        raise ApiError(415, "UnsupportedMediaType", f"the fake API server reads JSON bodies only, not {content_type}")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


def _delete_query(query: Any) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if "gracePeriodSeconds" in query:
        options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
    if "orphanDependents" in query:
        options["orphanDependents"] = query["orphanDependents"] == "true"
    return options


def _log_container(pod: JsonObj, requested: str | None) -> str:
    names = [str(c.get("name", "")) for c in pod.get("spec", {}).get("containers", [])]
    name = pod["metadata"]["name"]
    if requested is None:
        if len(names) != 1:
            raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")
        return names[0]
    if requested not in names:
        raise bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def _waiting_reason(pod: JsonObj) -> str:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            return str(reason)
    return "ContainerCreating"


__all__ = ["DenyRule", "FakeApiServer", "Identity", "RecordedRequest"]
