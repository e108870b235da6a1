"""The errors kbatch-dask raises, one tree users can catch.

::

    KbatchError                  base class; the CLI prints "Error: <message>", exit 1
    ├── BadInput                 bad option, size, time, directive or script; exit 2
    │   ├── Refused              the service's policy refused the job (image, a limit); exit 2
    │   └── Conflict             the job's state does not allow it (hold a running job); exit 2
    ├── JobNotFound              no job with that id
    ├── GatewayError             the Dask-Gateway refused a request (status)
    │   └── GatewayUnreachable   ... or could not be reached (worth retrying)
    ├── HubError                 JupyterHub refused a request or could not be reached (status)
    ├── BackendError             the backend (local state, Kubernetes API, the service) failed
    │   └── KubeError            the Kubernetes API refused a request or could not be reached (status)
    ├── PayloadMismatch          a function was pickled with another Python or cloudpickle than the job has
    └── RemoteTraceback          the traceback of an error inside the job, as text (the
                                 ``__cause__`` of the re-raised error, never raised itself)

    KbatchWarning                a submission worked, with a risk the user should know
                                 about (e.g. the job uses the session's hub token)

``status`` is the HTTP status of a refusal, and None when there was no answer.
"""

from __future__ import annotations


class KbatchError(Exception):
    """Base class of every error kbatch-dask raises on purpose."""

    exit_code = 1


class BadInput(KbatchError, ValueError):
    """User input that cannot be accepted; the message says what is allowed."""

    exit_code = 2


class Refused(BadInput):
    """The kbatch-dask service's policy refused a submission; the message names
    the image or the limit (``limit``: its setting, e.g. ``max-cpus``, for the
    service's metrics)."""

    def __init__(self, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.limit = limit


class Conflict(BadInput):
    """What was asked does not fit the job's state now (``kbatch hold`` of a job
    that runs or has ended; the result of a job whose driver did not upload it);
    the service answers it with 409."""


class JobNotFound(KbatchError, LookupError):
    """No job with the given id is known to the backend."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r} (see `kbatch queue --all` for known jobs)")
        self.job_id = job_id


class GatewayError(KbatchError):
    """The Dask-Gateway could not be reached or refused a request (``status``:
    the HTTP status of a refusal, when there was one)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GatewayUnreachable(GatewayError):
    """The Dask-Gateway did not answer (connection refused, timeout, 5xx)."""


class HubError(KbatchError):
    """JupyterHub refused a request (``status`` is its HTTP status) or could not
    be reached (``status`` None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BackendError(KbatchError):
    """The backend could not carry out a request."""


class KubeError(BackendError):
    """The Kubernetes API refused a request (``status`` is its HTTP status) or
    could not be reached (``status`` None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PayloadMismatch(KbatchError):
    """The payload was pickled with another Python or cloudpickle than the job has."""


class RemoteTraceback(KbatchError):
    """The traceback of an exception raised inside the job, as text.

    Attached as the ``__cause__`` of the re-raised exception (as
    ``concurrent.futures`` does for process pools), so it prints with it.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\nTraceback inside the job:\n{self.text}"


class KbatchWarning(UserWarning):
    """Something worked, with a risk worth one line: the CLI prints it as
    ``Warning: <message>``; the Python API issues it with :func:`warnings.warn`."""
