"""Callback tokens: `<job_id>.<attempt>.<signature>`, the signature an HMAC-SHA256 of
`<job_id>:<attempt>` under the backend's callback secret.

Deterministic on purpose: re-issuing the token of the same attempt (an activity retry) gives
the same token, and verifying needs no storage. A newer attempt makes older tokens stale
because the job's current attempt moves on (checked by the callbacks service).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

_JOB_ID = re.compile(r"job_[A-Za-z0-9_-]{1,60}")
_ATTEMPT = re.compile(r"[1-9][0-9]{0,8}")


class InvalidToken(Exception):
    """The token was not issued by this backend (or is not a token at all)."""


@dataclass(frozen=True)
class TokenClaims:
    job_id: str
    attempt: int


def _signature(secret: str, job_id: str, attempt: int) -> str:
    digest = hmac.new(secret.encode(), f"{job_id}:{attempt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(secret: str, job_id: str, attempt: int) -> str:
    """The callback token of `attempt` of `job_id`."""
    if not _JOB_ID.fullmatch(job_id) or attempt < 1:
        raise ValueError(f"cannot issue a token for {job_id!r} attempt {attempt}")
    return f"{job_id}.{attempt}.{_signature(secret, job_id, attempt)}"


def verify(secret: str, token: str) -> TokenClaims:
    """The job and attempt a genuine token is for; InvalidToken for anything else."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("malformed token")
    job_id, raw_attempt, signature = parts
    if not _JOB_ID.fullmatch(job_id) or not _ATTEMPT.fullmatch(raw_attempt):
        raise InvalidToken("malformed token")
    attempt = int(raw_attempt)
    expected = _signature(secret, job_id, attempt)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise InvalidToken("bad signature")
    return TokenClaims(job_id=job_id, attempt=attempt)
