"""One HTTP/1.1 request over a socket, for a gateway at an ``http://`` address.

What ``urllib.request`` sends and reads for the gateway's JSON API, without its
import: ``urllib.request`` brings ``http.client``, ``email`` and ``ssl``, ~25 ms of
a ``kqueue`` that lists a cluster (~0.1 s in all). Where urllib would do more
than send the request straight to the server, it still does: an ``https``
address, an ``http_proxy`` in the environment (:func:`direct`), and a redirect
(:data:`REDIRECT`, which the caller sends again through urllib).

>>> direct("http://127.0.0.1:8000/api/health", {})
True
>>> direct("https://hub.example.org/services/dask-gateway", {})
False
>>> direct("http://gw:8000", {"HTTP_PROXY": "http://proxy:3128"})
False
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

if TYPE_CHECKING:  # imported by the request: a command that asks no gateway does without it
    from _socket import socket as _Socket

REDIRECT = frozenset({301, 302, 303, 307, 308})  # urllib follows these; the caller asks it to
USER_AGENT = "Python-urllib/3"  # what urllib says it is, less its minor version


class Answer(NamedTuple):
    status: int
    reason: str
    body: bytes


def direct(url: str, environ: Mapping[str, str] = os.environ) -> bool:
    """True when urllib would send a request for ``url`` straight to its server: a
    plain ``http`` address, no ``http_proxy`` (any case; urllib reads each)."""
    if not url.startswith("http://"):
        return False
    return not any(name.lower() == "http_proxy" and value for name, value in environ.items())


def request(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None = None, timeout: float = 10.0
) -> Answer:
    """Send one request and read its whole answer (``Connection: close``).

    Raises OSError when the server cannot be reached or stops answering within
    ``timeout`` (for each read, as urllib's timeout), ValueError for an answer
    that is not HTTP.
    """
    parts = urlsplit(url)
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Accept-Encoding: identity",
             f"User-Agent: {USER_AGENT}", "Connection: close"]  # fmt: skip
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
    sock = _connected(parts.hostname, parts.port or 80, timeout)
    try:
        sock.sendall(message)
        chunks: list[bytes] = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    finally:
        sock.close()
    return parse(b"".join(chunks))


def _connected(host: str, port: int, timeout: float) -> _Socket:
    """A socket connected to ``host``. An address such as 127.0.0.1, the embedded
    gateway's, is connected with the ``_socket`` extension module itself, without
    ``getaddrinfo`` (its first call in a process costs more than the request) and
    without the ``socket`` module, whose enums take longer to make than the request
    does (3-4 ms); a host name, through ``socket.create_connection``."""
    import _socket

    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
        except OSError:
            continue
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock
    import socket

    return socket.create_connection((host, port), timeout=timeout)


def parse(raw: bytes) -> Answer:
    """An HTTP/1.1 answer read to its end.

    >>> parse(b"HTTP/1.1 404 Not Found\\r\\nContent-Length: 2\\r\\n\\r\\n{}")
    Answer(status=404, reason='Not Found', body=b'{}')
    >>> chunks = b"3\\r\\nabc\\r\\n1\\r\\nd\\r\\n0\\r\\n\\r\\n"
    >>> parse(b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n" + chunks).body
    b'abcd'
    """
    head, sep, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, status_reason = status_line.partition(" ")
    code, _, reason = status_reason.partition(" ")
    if not sep or not version.startswith("HTTP/") or not code.isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    fields = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = _unchunked(rest)
    elif "content-length" in fields:
        length = int(fields["content-length"])
        if len(rest) < length:
            raise ValueError(f"the answer ended after {len(rest)} of its {length} bytes")
        body = rest[:length]
    else:
        body = rest
    return Answer(int(code), reason, body)


def _unchunked(data: bytes) -> bytes:
    out: list[bytes] = []
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            raise ValueError("the chunked answer ended early")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        if len(data) < size + 2:
            raise ValueError("the chunked answer ended early")
        out.append(data[:size])
        data = data[size + 2 :]
