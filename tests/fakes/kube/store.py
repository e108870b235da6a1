"""The fake API server's object store: Kubernetes write semantics over plain dicts.

Everything the HTTP layer and the fake kubelet change goes through here, so the
rules hold whoever writes:

* server-set metadata on create (uid, resourceVersion, creationTimestamp,
  namespace, generation, generateName), a single resourceVersion counter bumped
  on every write, ``generation`` bumped when ``spec`` changes;
* ``status`` is ignored by create/replace/patch of the main resource and only
  changed through the ``status`` subresource, which cannot change anything else;
* defaulting and validation (``admission.py``) with 422 ``Invalid`` errors;
* deletion with ``propagationPolicy``: Background and Foreground delete objects
  whose ``ownerReferences`` name the deleted uid, Orphan strips those references.
  Garbage collection happens synchronously within the delete call (Kubernetes
  does it asynchronously, within a second or so).
* pods being run by a kubelet are deleted gracefully: they get
  ``deletionTimestamp`` and stay until the kubelet calls :meth:`Store.remove`
  after the process has ended, as in Kubernetes.
* a history of the last :attr:`Store.history_limit` change events, as etcd
  keeps its revisions until compaction: a watch from a resourceVersion replays
  the changes after it, one from before the kept history is ``410 Expired``;
  :meth:`Store.compact` drops the history now. :meth:`Store.insert` (seeding)
  writes no event and no history, so a watch never hears of seeded objects
  (a list does).

Stored objects are never mutated in place: each write stores a fresh dict, so a
reader holding a reference sees a consistent snapshot (list responses are
serialised from such references without copying).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import json
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from . import patching
from .admission import FieldError, apply_defaults, validate
from .resources import POD, STORED, ResourceType
from .selection import SelectorError, fields_match, labels_match, parse_field_selector, parse_label_selector

JsonObj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
#: Called with ("ADDED" | "MODIFIED" | "DELETED", resource type, a copy of the object).
Listener = Callable[[str, ResourceType, JsonObj], None]

PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet


class ApiError(Exception):
    """An error the server reports as a ``Status`` body with an HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: JsonObj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> JsonObj:
        body: JsonObj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(rtype: ResourceType, name: str) -> JsonObj:
    return {"name": name, "group": rtype.group, "kind": rtype.plural} if name else {"kind": rtype.plural}


def not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rtype.qualified} "{name}" not found', _details(rtype, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(rtype: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
    shown = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    causes = [{"reason": e.reason, "message": e.detail, "field": e.field} for e in errors]
    details = {"name": name, "group": rtype.group, "kind": rtype.kind, "causes": causes}
    return ApiError(422, "Invalid", f'{rtype.qualified_kind} "{name}" is invalid: {shown}', details)


def now_iso() -> str:
    """Kubernetes timestamps: RFC 3339, UTC, whole seconds."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: JsonObj) -> JsonObj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


class Store:
    """In-memory objects keyed by resource, namespace and name, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._objects: dict[str, dict[Key, JsonObj]] = {plural: {} for plural in STORED}
        self._owned: dict[str, set[tuple[str, Key]]] = {}  # owner uid -> dependents
        self._foreground: set[tuple[str, Key]] = set()  # owners waiting for dependents to go
        self._rv = 0
        self._listeners: list[Listener] = []
        self._pending: list[tuple[str, ResourceType, JsonObj]] = []
        self._depth = 0
        self._history: list[tuple[int, str, ResourceType, JsonObj]] = []  # (resourceVersion, event, type, object)
        self._floor = 0  # the oldest resourceVersion a watch may start from
        #: How many change events are kept for watches resuming from a resourceVersion.
        self.history_limit = 10_000
        #: True while a kubelet runs pods: pod deletion then waits for it (graceful).
        self.graceful_pod_deletion = False

    # -- events ---------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every write (under the store lock: keep it quick)."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    @contextmanager
    def _write(self) -> Iterator[None]:
        """Group writes; listeners hear about them in order once the outermost write ends."""
        with self._lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    pending, self._pending = self._pending, []
                    for event in pending:
                        for listener in list(self._listeners):
                            listener(*event)

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def compact(self) -> None:
        """Forget the change history, as etcd's compaction does: a watch from any
        resourceVersion older than the current one is ``410 Expired``."""
        with self._lock:
            self._history.clear()
            self._floor = self._rv

    def changes(self, rtype: ResourceType, name: str) -> list[tuple[str, JsonObj]]:
        """The kept change events of objects named ``name`` of ``rtype``, oldest
        first: what a watch from the start of the history would have told."""
        with self._lock:
            kept = list(self._history)
        return [(event, obj) for _, event, kind, obj in kept if kind is rtype and obj["metadata"]["name"] == name]

    def _remember(self, event: str, rtype: ResourceType, obj: JsonObj) -> None:
        self._pending.append((event, rtype, obj))
        self._history.append((self._rv, event, rtype, obj))
        if len(self._history) > self.history_limit:
            dropped = self._history[: len(self._history) - self.history_limit]
            del self._history[: len(dropped)]
            self._floor = dropped[-1][0]

    # -- reads ----------------------------------------------------------------

    def find(self, rtype: ResourceType, namespace: str, name: str) -> JsonObj | None:
        """A copy of the object, or None."""
        with self._lock:
            obj = self._objects[rtype.plural].get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def get(self, rtype: ResourceType, namespace: str, name: str) -> JsonObj:
        obj = self.find(rtype, namespace, name)
        if obj is None:
            raise not_found(rtype, name)
        return obj

    def select(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[JsonObj]:
        """Matching objects in key order. They are shared snapshots: do not mutate them."""
        try:
            labels = parse_label_selector(label_selector or "")
            fields = parse_field_selector(field_selector or "", rtype.plural)
        except SelectorError as exc:
            raise bad_request(str(exc)) from None
        with self._lock:
            objects = self._objects[rtype.plural]
            keys = sorted(k for k in objects if namespace is None or k[0] == namespace)
            return [
                objects[k]
                for k in keys
                if labels_match(labels, _meta(objects[k]).get("labels")) and fields_match(fields, objects[k])
            ]

    def page(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
    ) -> tuple[list[JsonObj], JsonObj]:
        """One page of matching objects (shared snapshots) and the list's metadata."""
        with self._lock:
            items = self.select(rtype, namespace, label_selector, field_selector)
            rv = self.resource_version
        if continue_token:
            rv, start = _decode_continue(continue_token)
            items = [o for o in items if (_meta(o).get("namespace", ""), _meta(o)["name"]) > start]
        meta: JsonObj = {"resourceVersion": rv}
        if limit and len(items) > limit:
            last = _meta(items[limit - 1])
            meta["continue"] = _encode_continue(rv, (last.get("namespace", ""), last["name"]))
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return items, meta

    def watch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str,
        field_selector: str,
        deliver: Callable[[str, JsonObj], None],
        *,
        since: str = "",
    ) -> tuple[list[tuple[str, JsonObj]], Callable[[], None]]:
        """Subscribe to matching changes, and return the events to send first: with
        ``since`` "" or "0" the current objects as ADDED, else the kept changes after
        resourceVersion ``since`` (``410 Expired`` when it is older than the history).

        Snapshot and subscription happen under one lock, so no change falls between.
        """
        try:
            labels = parse_label_selector(label_selector or "")
            fields = parse_field_selector(field_selector or "", rtype.plural)
        except SelectorError as exc:
            raise bad_request(str(exc)) from None

        def matches(changed: ResourceType, obj: JsonObj) -> bool:
            meta = _meta(obj)
            if changed is not rtype or namespace not in (None, meta.get("namespace")):
                return False
            return labels_match(labels, meta.get("labels")) and fields_match(fields, obj)

        def filtered(event: str, changed: ResourceType, obj: JsonObj) -> None:
            if matches(changed, obj):
                deliver(event, obj)

        with self._lock:
            if since in ("", "0"):
                first = [("ADDED", obj) for obj in self.select(rtype, namespace, label_selector, field_selector)]
            else:
                if not since.isdigit():
                    raise bad_request(f'invalid resource version "{since}"')
                if int(since) < self._floor:
                    raise ApiError(410, "Expired", f"too old resource version: {since} ({self._floor})")
                first = [(e, obj) for rv, e, changed, obj in self._history if rv > int(since) and matches(changed, obj)]
            return first, self.subscribe(filtered)

    # -- writes ---------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str, body: JsonObj, *, dry_run: bool = False) -> JsonObj:
        """Create like POST: server-set metadata, defaults, validation, 409 on a taken name."""
        obj = copy.deepcopy(body)
        if not isinstance(obj, dict):
            raise bad_request("the request body must be a JSON object")
        meta = obj.setdefault("metadata", {})
        if rtype.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        with self._write():
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._generate_name(rtype, namespace, meta["generateName"])
            name = meta.get("name", "")
            if (namespace, name) in self._objects[rtype.plural]:
                raise ApiError(
                    409, "AlreadyExists", f'{rtype.qualified} "{name}" already exists', _details(rtype, name)
                )
            obj["kind"], obj["apiVersion"] = rtype.kind, rtype.api_version
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso(), generation=1)
            for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(key, None)
            if rtype.has_status:
                obj["status"] = {"phase": "Pending"} if rtype is POD else {}
            apply_defaults(rtype.plural, obj)
            errors = validate(rtype.plural, obj, None)
            if errors:
                raise invalid(rtype, name, errors)
            if not dry_run:
                self._save(rtype, obj, "ADDED")
            return copy.deepcopy(obj)

    def replace(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: JsonObj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> JsonObj:
        """Update like PUT (on the object or its ``status`` subresource)."""
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        with self._write():
            return self._update(rtype, namespace, name, copy.deepcopy(body), subresource, dry_run)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> JsonObj:
        """Update like PATCH with one of :data:`PATCH_TYPES`."""
        with self._write():
            current = self.get(rtype, namespace, name)
            try:
                if patch_type == "application/json-patch+json":
                    if not isinstance(patch, list):
                        raise bad_request("a JSON patch must be a list of operations")
                    candidate = patching.json_patch(current, patch)
                else:
                    if not isinstance(patch, dict):
                        raise bad_request("a merge patch must be a JSON object")
                    candidate = patching.merge_patch(current, patch)
            except patching.PatchError as exc:
                message = f"the server rejected our request due to an error in our request: {exc}"
                raise ApiError(422, "Invalid", message) from None
            return self._update(rtype, namespace, name, candidate, subresource, dry_run)

    def mutate_status(
        self, rtype: ResourceType, namespace: str, name: str, change: Callable[[JsonObj], None]
    ) -> JsonObj | None:
        """Change an object's status through the status path (for the fake kubelet).

        ``change`` edits a copy of the object's ``status`` in place. Returns the new
        object, or None when the object is gone.
        """
        with self._write():
            current = self.find(rtype, namespace, name)
            if current is None:
                return None
            status = current.setdefault("status", {})
            change(status)
            return self._update(rtype, namespace, name, current, "status", False)

    def _update(
        self, rtype: ResourceType, namespace: str, name: str, candidate: JsonObj, subresource: str | None, dry_run: bool
    ) -> JsonObj:
        old = self._objects[rtype.plural].get((namespace, name))
        if old is None:
            raise not_found(rtype, name)
        meta = candidate.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        rv = meta.get("resourceVersion")
        if rv and rv != _meta(old)["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {rtype.qualified} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                _details(rtype, name),
            )
        if subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = candidate.get("status") or {}
        else:
            new = self._main_update(rtype, old, candidate)
        if dry_run:
            return new
        meta = _meta(new)
        if meta.get("deletionTimestamp") and _meta(old).get("finalizers") and not meta.get("finalizers"):
            self._remove(rtype, new, "Background")  # the last finalizer went: deletion completes
        else:
            self._save(rtype, new, "MODIFIED")
        return copy.deepcopy(new)

    def _main_update(self, rtype: ResourceType, old: JsonObj, new: JsonObj) -> JsonObj:
        """The object as PUT/PATCH leaves it: server fields kept, status untouched."""
        old_meta, meta = _meta(old), new["metadata"]
        for key in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if key in old_meta:
                meta[key] = old_meta[key]
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
            if key in old_meta:
                meta[key] = old_meta[key]
        new["kind"], new["apiVersion"] = rtype.kind, rtype.api_version
        if rtype.has_status:
            new["status"] = copy.deepcopy(old.get("status", {}))
        apply_defaults(rtype.plural, new)
        errors = validate(rtype.plural, new, old)
        if errors:
            raise invalid(rtype, meta["name"], errors)
        if new.get("spec") != old.get("spec"):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return new

    def delete(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str | None = None,
        grace_seconds: int | None = None,
        preconditions: JsonObj | None = None,
        dry_run: bool = False,
    ) -> tuple[JsonObj, bool]:
        """Delete like DELETE. Returns the object and whether it is gone already."""
        policy = propagation or rtype.default_propagation
        if policy not in ("Background", "Foreground", "Orphan"):
            raise bad_request(f'unsupported propagationPolicy "{policy}"')
        with self._write():
            obj = self._objects[rtype.plural].get((namespace, name))
            if obj is None:
                raise not_found(rtype, name)
            self._check_preconditions(rtype, obj, preconditions or {})
            if dry_run:
                return copy.deepcopy(obj), False
            meta = _meta(obj)
            if meta.get("deletionTimestamp"):
                if rtype is POD and grace_seconds == 0:
                    self._remove(rtype, obj, policy)
                    return copy.deepcopy(obj), True
                return copy.deepcopy(obj), False
            if policy == "Foreground":
                return self._delete_foreground(rtype, obj)
            if rtype is POD and self._terminates_gracefully(obj, grace_seconds):
                grace = grace_seconds
                if grace is None:
                    grace = obj["spec"].get("terminationGracePeriodSeconds", 30)
                return self._mark_deleted(rtype, obj, grace=grace), False
            if meta.get("finalizers"):
                return self._mark_deleted(rtype, obj, grace=0), False
            self._remove(rtype, obj, policy)
            return copy.deepcopy(obj), True

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: str,
        *,
        label_selector: str = "",
        field_selector: str = "",
        propagation: str | None = None,
    ) -> int:
        """Delete every matching object; returns how many were matched."""
        with self._write():
            matched = self.select(rtype, namespace, label_selector, field_selector)
            for obj in matched:
                # An earlier deletion's garbage collection may have removed it already.
                with contextlib.suppress(ApiError):
                    self.delete(rtype, namespace, _meta(obj)["name"], propagation=propagation)
            return len(matched)

    def remove(self, rtype: ResourceType, namespace: str, name: str) -> bool:
        """Remove an object now (a kubelet confirming a pod has terminated)."""
        with self._write():
            obj = self._objects[rtype.plural].get((namespace, name))
            if obj is None:
                return False
            self._remove(rtype, obj, "Background")
            return True

    def insert(self, rtype: ResourceType, obj: JsonObj) -> None:
        """Store a complete object as is, without validation or events (seeding)."""
        with self._lock:
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_iso())
            meta.setdefault("generation", 1)
            obj.setdefault("kind", rtype.kind)
            obj.setdefault("apiVersion", rtype.api_version)
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            key = (meta.get("namespace", ""), meta["name"])
            self._index_owners(rtype, key, self._objects[rtype.plural].get(key), obj)
            self._objects[rtype.plural][key] = obj

    # -- internals ------------------------------------------------------------

    def _save(self, rtype: ResourceType, obj: JsonObj, event: str) -> None:
        self._rv += 1
        meta = _meta(obj)
        meta["resourceVersion"] = str(self._rv)
        key = (meta.get("namespace", ""), meta["name"])
        self._index_owners(rtype, key, self._objects[rtype.plural].get(key), obj)
        self._objects[rtype.plural][key] = obj
        self._remember(event, rtype, copy.deepcopy(obj))

    def _index_owners(self, rtype: ResourceType, key: Key, old: JsonObj | None, new: JsonObj | None) -> None:
        for obj, add in ((old, False), (new, True)):
            for ref in _meta(obj or {}).get("ownerReferences") or []:
                dependents = self._owned.setdefault(str(ref.get("uid")), set())
                if add:
                    dependents.add((rtype.plural, key))
                else:
                    dependents.discard((rtype.plural, key))

    def _remove(self, rtype: ResourceType, obj: JsonObj, policy: str) -> None:
        meta = _meta(obj)
        key = (meta.get("namespace", ""), meta["name"])
        del self._objects[rtype.plural][key]
        self._index_owners(rtype, key, obj, None)
        self._foreground.discard((rtype.plural, key))
        self._rv += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._remember("DELETED", rtype, gone)
        self._collect_dependents(meta["uid"], orphan=policy == "Orphan")
        self._finish_foreground_deletions()

    def _collect_dependents(self, uid: str, *, orphan: bool) -> None:
        """Garbage collection: delete (or orphan) what ``uid`` owned."""
        for plural, (namespace, name) in sorted(self._owned.pop(uid, set())):
            dep_type = STORED[plural]
            dependent = self._objects[plural].get((namespace, name))
            if dependent is None:
                continue
            if orphan:
                updated = copy.deepcopy(dependent)
                refs = [r for r in updated["metadata"].get("ownerReferences", []) if r.get("uid") != uid]
                updated["metadata"]["ownerReferences"] = refs
                if not refs:
                    del updated["metadata"]["ownerReferences"]
                self._save(dep_type, updated, "MODIFIED")
            else:
                self.delete(dep_type, namespace, name, propagation="Background")

    def _delete_foreground(self, rtype: ResourceType, obj: JsonObj) -> tuple[JsonObj, bool]:
        marked = self._mark_deleted(rtype, obj, grace=0, finalizer="foregroundDeletion")
        key = (marked["metadata"].get("namespace", ""), marked["metadata"]["name"])
        self._foreground.add((rtype.plural, key))
        for plural, (namespace, name) in sorted(self._owned.get(marked["metadata"]["uid"], set())):
            if (namespace, name) in self._objects[plural]:
                self.delete(STORED[plural], namespace, name, propagation="Background")
        self._finish_foreground_deletions()
        return marked, (rtype.plural, key) not in self._foreground

    def _finish_foreground_deletions(self) -> None:
        """Remove foreground-deleted owners whose dependents are all gone."""
        for plural, key in sorted(self._foreground):
            obj = self._objects[plural].get(key)
            if obj is None:
                self._foreground.discard((plural, key))
            elif not self._owned.get(_meta(obj)["uid"]):
                self._remove(STORED[plural], obj, "Background")

    def _mark_deleted(self, rtype: ResourceType, obj: JsonObj, *, grace: int, finalizer: str | None = None) -> JsonObj:
        marked = copy.deepcopy(obj)
        meta = marked["metadata"]
        meta["deletionTimestamp"] = _in_seconds(grace)
        meta["deletionGracePeriodSeconds"] = grace
        if finalizer:
            meta["finalizers"] = [*meta.get("finalizers", []), finalizer]
        self._save(rtype, marked, "MODIFIED")
        return copy.deepcopy(marked)

    def _terminates_gracefully(self, pod: JsonObj, grace_seconds: int | None) -> bool:
        """As Kubernetes: unscheduled and finished pods, or grace 0, go at once."""
        if not self.graceful_pod_deletion or grace_seconds == 0:
            return False
        if not pod.get("spec", {}).get("nodeName"):
            return False
        return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")

    @staticmethod
    def _check_preconditions(rtype: ResourceType, obj: JsonObj, preconditions: JsonObj) -> None:
        meta = _meta(obj)
        for key in ("uid", "resourceVersion"):
            wanted = preconditions.get(key)
            if wanted and wanted != meta.get(key):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rtype.qualified} "{meta["name"]}": Precondition failed: '
                    f"{key}: {wanted}, {key}: {meta.get(key)}",
                    _details(rtype, meta["name"]),
                )

    def _generate_name(self, rtype: ResourceType, namespace: str, prefix: str) -> str:
        prefix = prefix[:58]
        for _ in range(100):
            name = prefix + "".join(random.choices(_NAME_ALPHABET, k=5))
            if (namespace, name) not in self._objects[rtype.plural]:
                return name
        raise ApiError(409, "AlreadyExists", f"could not generate a unique name from {prefix!r}")


def _in_seconds(seconds: int) -> str:
    moment = datetime.now(timezone.utc).timestamp() + seconds
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode_continue(rv: str, start: Key) -> str:
    raw = json.dumps({"rv": rv, "start": list(start)}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[str, Key]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (binascii.Error, ValueError, KeyError, IndexError, TypeError):
        raise bad_request("continue key is not valid: the token is malformed") from None
