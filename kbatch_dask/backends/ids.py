"""Job ids: short, random, easy to read and type; the same on every backend."""

from __future__ import annotations

ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no l/1/o/0
ID_LENGTH = 5


def new_job_id() -> str:
    """A short id a person can type: a letter, then digits and letters (``k3x9q``)."""
    from random import SystemRandom  # secrets.choice, without the import of hmac and OpenSSL that secrets brings

    choice = SystemRandom().choice
    return choice(ID_ALPHABET[:24]) + "".join(choice(ID_ALPHABET) for _ in range(ID_LENGTH - 1))
