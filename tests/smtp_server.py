"""A real SMTP server on 127.0.0.1 (aiosmtpd, in a thread of its own) that keeps
what it is sent: the messages, parsed, and the logins it was offered. It can
answer the first messages with a temporary failure (``451``) to exercise retries."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"


@dataclass
class Inbox:
    port: int = 0
    username: str | None = None  # with a password: the one login the server takes
    password: str | None = None
    refuse_first: int = 0  # answer this many messages "451 try again later"
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self.refuse_first > 0:
                self.refuse_first -= 1
                return "451 4.3.0 try again later"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self.messages.append(message)
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        with self._lock:
            self.logins.append((login, password))
        return AuthResult(success=(login, password) == (self.username, self.password), handled=False)

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]

    def about(self, job_id: str) -> list[EmailMessage]:
        """The messages whose subject names the job."""
        with self._lock:
            return [m for m in self.messages if f"kbatch job {job_id} " in str(m["Subject"])]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def running(inbox: Inbox) -> Iterator[Inbox]:
    """Serve ``inbox`` on a free loopback port until the block ends."""
    inbox.port = _free_port()
    with warnings.catch_warnings():
        # AUTH without TLS on loopback: aiosmtpd warns that this is unsafe, as it is off loopback.
        warnings.simplefilter("ignore")
        controller = Controller(
            inbox,
            hostname=HOST,
            port=inbox.port,
            authenticator=inbox.authenticate if inbox.username else None,
            auth_require_tls=False,
        )
        controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
