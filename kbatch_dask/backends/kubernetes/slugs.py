"""Kubernetes-safe names for any user name, kubespawner-style.

A name that is already a safe DNS-1123 label (lowercase letters, digits and
single dashes) is kept as it is; any other name is turned into one and gets a
hash of the original appended after ``---``. Kept names never contain ``--``,
so a changed name can never collide with a kept one.
"""

from __future__ import annotations

import hashlib
import re

# Labels and object names of one DNS label are at most 63 characters.
DNS_LABEL_MAX = 63
HASH_LENGTH = 8
_SAFE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_UNSAFE_RUN = re.compile(r"[^a-z0-9]+")


def is_dns_label(text: str) -> bool:
    """True for a valid DNS-1123 label (``[a-z0-9]([-a-z0-9]*[a-z0-9])?``, at most 63 characters).

    >>> is_dns_label("alice"), is_dns_label("Alice"), is_dns_label("-a")
    (True, False, False)
    """
    return len(text) <= DNS_LABEL_MAX and bool(_SAFE.match(text))


def safe_slug(name: str, max_length: int = 40) -> str:
    """A DNS-1123 label for ``name``, unique per name, at most ``max_length`` characters.

    >>> safe_slug("alice"), safe_slug("Alice@example.com")
    ('alice', 'alice-example-com---cdbc73c2')
    """
    if "--" not in name and len(name) <= max_length and _SAFE.match(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:HASH_LENGTH]
    stem = _UNSAFE_RUN.sub("-", name.lower()).strip("-")
    stem = stem[: max_length - HASH_LENGTH - 3].strip("-")
    return f"{stem}---{digest}" if stem else f"x---{digest}"
