"""Job ids: short, random, easy to read and type; the same on every backend."""

from __future__ import annotations

import secrets

ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no l/1/o/0
ID_LENGTH = 5


def new_job_id() -> str:
    """A short id a person can type: a letter, then digits and letters (``k3x9q``)."""
    first = secrets.choice(ID_ALPHABET[:24])
    return first + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH - 1))
