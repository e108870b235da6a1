"""Function payloads and their results, shipped with cloudpickle.

A payload is ``{"fn", "args", "kwargs", "python", "cloudpickle"}``; the
versions it was pickled with are checked before unpickling, because a payload
pickled by one Python or cloudpickle and loaded by another fails in ways that
name neither. Results are ``{"ok": True, "value": ...}`` or ``{"ok": False,
"error": exc, "traceback": text}``.
"""

from __future__ import annotations

import io
import marshal
import pickle
import platform
import sys
import traceback
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from kbatch_dask.errors import BadInput, PayloadMismatch, RemoteTraceback

HEADER_PROTOCOL = 4  # the header is plain pickle, readable by any Python >= 3.8
_DYNAMIC_CODE = "<dynamic-code>"  # cloudpickle's file name for the code it ships by value


def _versions() -> dict[str, str]:
    import cloudpickle

    return {"python": platform.python_version(), "cloudpickle": cloudpickle.__version__}


def pack_function(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
    """Pickle a call; functions from ``__main__`` (scripts, notebooks) go by value.

    Raises :class:`BadInput` naming what could not be pickled.

    >>> data = pack_function(max, (1, 2), {})
    >>> call = unpack_function(data)
    >>> call.fn(*call.args)
    2
    """
    import cloudpickle

    if not callable(fn):
        raise BadInput(f"submit_with_cluster: {fn!r} is not callable")
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    by_value = module is not None and module.__name__ not in ("__main__", "builtins") and _is_local(module)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        body = _dumps_keeping_file_names((fn, tuple(args), dict(kwargs)))
    except Exception as exc:
        raise BadInput(f"cannot ship {_describe_call(fn)} to the job: {type(exc).__name__}: {exc}") from None
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
    buf = io.BytesIO()
    pickle.dump(_versions(), buf, protocol=HEADER_PROTOCOL)
    buf.write(body)
    return buf.getvalue()


def _dumps_keeping_file_names(obj: Any) -> bytes:
    """cloudpickle, but the functions it ships by value keep the file they were written in.

    cloudpickle names their code's file ``<dynamic-code>``, so that a traceback from
    inside the job shows that instead of the user's file, and none of its lines. Code
    objects go as ``marshal`` has them, whole: marshal's format is Python's own, and the
    payload's header already requires the job's Python to be the same.
    """
    import cloudpickle

    class KeepingFileNames(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle has no types
        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, types.CodeType):
                return marshal.loads, (marshal.dumps(obj),)
            return super().reducer_override(obj)

    buf = io.BytesIO()
    KeepingFileNames(buf).dump(obj)
    return buf.getvalue()


def _is_local(module: Any) -> bool:
    """A module next to the user's code rather than an installed package: ship it by value,
    since the job's Python may not be able to import it."""
    path = getattr(module, "__file__", None) or ""
    return bool(path) and "site-packages" not in path and "dist-packages" not in path and "/lib/python" not in path


def _describe_call(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}(...)"


class Call(NamedTuple):
    """A function call loaded from a payload."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    # Where the code the payload shipped by value was written: (function name, line) -> file.
    files: Mapping[tuple[str, int], str]


def unpack_function(data: bytes) -> Call:
    """Unpickle a call, first checking the versions it was pickled with."""
    buf = io.BytesIO(data)
    header = pickle.load(buf)
    here = _versions()
    if header != here:
        raise PayloadMismatch(
            f"the function was pickled with Python {header.get('python')} and cloudpickle "
            f"{header.get('cloudpickle')}, but the job has Python {here['python']} and cloudpickle "
            f"{here['cloudpickle']}; use a job image with the same versions as your session"
        )
    unpickler = _CodeRecordingUnpickler(buf)
    fn, args, kwargs = unpickler.load()
    return Call(fn, args, kwargs, _where_written(unpickler.code))


class _CodeRecordingUnpickler(pickle.Unpickler):
    """Unpickles a payload (cloudpickle's ``loads`` is plain pickle's) and keeps the code
    objects it carried, as :func:`_dumps_keeping_file_names` wrote them."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.code: list[types.CodeType] = []

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("marshal", "loads"):
            return self._load_code
        return super().find_class(module, name)

    def _load_code(self, data: bytes) -> types.CodeType:
        code: types.CodeType = marshal.loads(data)
        self.code.append(code)
        return code


def _where_written(code: Sequence[types.CodeType]) -> dict[tuple[str, int], str]:
    """(function name, line) -> file, for the given code and the code nested in it."""
    found: dict[tuple[str, int], set[str]] = {}
    pending = list(code)
    while pending:
        each = pending.pop()
        pending.extend(c for c in each.co_consts if isinstance(c, types.CodeType))
        for _, _, line in each.co_lines():
            if line is not None:
                found.setdefault((each.co_name, line), set()).add(each.co_filename)
    # A name and line written in two files cannot tell which one a frame ran.
    return {key: files.pop() for key, files in found.items() if len(files) == 1}


def format_exception(error: BaseException, tb: types.TracebackType | None, files: Mapping[tuple[str, int], str]) -> str:
    """The traceback of ``error`` from ``tb``, with the frames that ran on Dask workers
    named by the file the payload's code was written in.

    The job's Python ships the user's functions to its workers with cloudpickle, which
    names their code's file ``<dynamic-code>``; the traceback a worker sends back keeps
    each frame's function name and line, which ``files`` maps back to the real file.
    """
    shown = traceback.TracebackException(type(error), error, tb)
    pending, seen = [shown], set()
    while pending:
        each = pending.pop()
        if id(each) in seen:
            continue
        seen.add(id(each))
        each.stack = traceback.StackSummary.from_list([_named(frame, files) for frame in each.stack])
        pending.extend(e for e in (each.__cause__, each.__context__) if e is not None)
        pending.extend(getattr(each, "exceptions", None) or ())  # an exception group's members
    return "".join(shown.format())


def _named(frame: traceback.FrameSummary, files: Mapping[tuple[str, int], str]) -> traceback.FrameSummary:
    filename = files.get((frame.name, frame.lineno or 0)) if frame.filename == _DYNAMIC_CODE else None
    if filename is None:
        return frame
    return traceback.FrameSummary(filename, frame.lineno, frame.name, locals=frame.locals)


def pack_result(value: Any) -> bytes:
    import cloudpickle

    try:
        return bytes(cloudpickle.dumps({"ok": True, "value": value}))
    except Exception as exc:
        error = TypeError(f"the function's return value could not be pickled: {type(exc).__name__}: {exc}")
        return pack_error(error, "")


def pack_error(error: BaseException, tb_text: str | None = None) -> bytes:
    import cloudpickle

    text = tb_text if tb_text is not None else "".join(traceback.format_exception(error))
    try:
        return bytes(cloudpickle.dumps({"ok": False, "error": error, "traceback": text}))
    except Exception:
        # An exception type that cannot be pickled still reports its text.
        fallback = RuntimeError(f"{type(error).__module__}.{type(error).__qualname__}: {error}")
        return bytes(cloudpickle.dumps({"ok": False, "error": fallback, "traceback": text}))


def unpack_result(data: bytes) -> Any:
    """The value, or the remote exception re-raised with its traceback attached."""
    import cloudpickle

    result = cloudpickle.loads(data)
    if result["ok"]:
        return result["value"]
    # The job's frames are in the attached text; an exception type that pickles its
    # traceback (tblib's, which distributed installs) would show them a second time.
    error = result["error"].with_traceback(None)
    raise error from RemoteTraceback(result["traceback"])
