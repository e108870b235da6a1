"""``--mail-type`` and ``--mail-user``: which of a job's events are mailed, and to whom.

Slurm's meanings: ``BEGIN`` when the job starts running, ``END`` when it ends
(however), ``FAIL`` when it ends failing (``FAILED``, ``TIMEOUT``, ``OOM``,
``LOST``), ``ALL`` all three, ``NONE`` none. The kbatch-dask service sends the
mail (docs/service.md, "Mail"); the other backends say at submit that they send none.
"""

from __future__ import annotations

import re

from kbatch_dask.errors import BadInput, KbatchWarning

MAIL_TYPES = ("BEGIN", "END", "FAIL")
_ALLOWED = "BEGIN, END, FAIL, ALL or NONE, comma-separated"
# One address as SMTP takes it (RFC 5321's local@domain, without quoting or comments);
# a name, a list or a header's worth of text are refused rather than guessed at.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
MAX_ADDRESS_LEN = 254


def parse_mail_type(text: str) -> tuple[str, ...]:
    """The events asked for, in :data:`MAIL_TYPES` order (``()``: none).

    >>> parse_mail_type("end,fail"), parse_mail_type("ALL"), parse_mail_type("NONE")
    (('END', 'FAIL'), ('BEGIN', 'END', 'FAIL'), ())
    """
    words = [w.strip().upper() for w in str(text).split(",")]
    unknown = [w for w in words if w not in (*MAIL_TYPES, "ALL", "NONE")]
    if unknown or not all(words):
        raise BadInput(f"--mail-type {text!r}: expected {_ALLOWED}")
    if "NONE" in words and len(words) > 1:
        raise BadInput(f"--mail-type {text!r}: NONE goes alone")
    asked = set(MAIL_TYPES) if "ALL" in words else set(words) - {"NONE"}
    return tuple(t for t in MAIL_TYPES if t in asked)


def check_address(text: str) -> str:
    """One mail address (``--mail-user``, or the admin's template filled in).

    >>> check_address(" alice@example.org ")
    'alice@example.org'
    """
    address = str(text).strip()
    if len(address) > MAX_ADDRESS_LEN or not _ADDRESS.fullmatch(address):
        raise BadInput(f"--mail-user {text!r}: expected one address like alice@example.org")
    return address


def unsent(mail_type: tuple[str, ...], backend: str) -> KbatchWarning | None:
    """The submit warning of a backend that sends no mail, for a job that asks for some."""
    if not mail_type:
        return None
    return KbatchWarning(
        f"--mail-type {','.join(mail_type)}: the {backend} backend sends no mail; "
        "the kbatch-dask service does (--backend hub)"
    )
