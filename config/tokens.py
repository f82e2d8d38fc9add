"""Bearer secrets (a firm's personal link, an API token) are stored only as digests."""

from __future__ import annotations

import hashlib


def hash_token(token: str) -> str:
    # A 128-bit random token needs no stretching: a plain digest cannot be brute-forced.
    return hashlib.sha256(token.encode()).hexdigest()
