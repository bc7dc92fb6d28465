"""Callback tokens: `<purpose>.<job_id>.<attempt>.<expires>.<key id>.<signature>`.

The signature is an HMAC-SHA256, under the signing key named by `key id`, of every other
part, so none can be changed: the purpose (a token made for one use is refused for any
other), the job and attempt it speaks for, and its expiry (Unix seconds: the job's deadline
plus a grace, docs/trainer-contract.md). The key id lets the secret be rotated while trainers
run: the backend signs with its current key and still accepts the previous ones it is given.

Deterministic on purpose: re-issuing the token of the same attempt (an activity retry) gives
the same token, and verifying needs no storage. A newer attempt makes older tokens stale
because the job's current attempt moves on (checked by the callbacks service).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

# The one purpose the backend accepts on the trainer callbacks.
CALLBACK = "callback"

_PURPOSE = re.compile(r"[a-z][a-z0-9-]{0,31}")
_JOB_ID = re.compile(r"job_[A-Za-z0-9_-]{1,60}")
_ATTEMPT = re.compile(r"[1-9][0-9]{0,8}")
_EXPIRES = re.compile(r"[1-9][0-9]{0,11}")
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")


class InvalidToken(Exception):
    """The token was not issued by this backend for this use, or no longer holds."""


@dataclass(frozen=True)
class TokenClaims:
    job_id: str
    attempt: int
    expires_at: int = 0
    key_id: str = ""


@dataclass(frozen=True)
class SigningKeys:
    """The key new tokens are signed with, and every key a token may still be signed with."""

    current_id: str
    accepted: Mapping[str, bytes]

    @classmethod
    def of(
        cls, current_id: str, current: str, previous: Mapping[str, str] | None = None
    ) -> SigningKeys:
        for key_id in (current_id, *(previous or {})):
            if not KEY_ID.fullmatch(key_id):
                raise ValueError(f"callback key id {key_id!r} is not 1-16 of [A-Za-z0-9_-]")
        accepted = {key_id: secret.encode() for key_id, secret in (previous or {}).items()}
        accepted[current_id] = current.encode()
        return cls(current_id=current_id, accepted=accepted)


def _signature(key: bytes, signed: str) -> str:
    digest = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(
    keys: SigningKeys, job_id: str, attempt: int, expires_at: int, purpose: str = CALLBACK
) -> str:
    """The `purpose` token of `attempt` of `job_id`, valid until `expires_at` (Unix seconds)."""
    if (
        not _JOB_ID.fullmatch(job_id)
        or attempt < 1
        or not _EXPIRES.fullmatch(str(expires_at))
        or not _PURPOSE.fullmatch(purpose)
    ):
        raise ValueError(f"cannot issue a {purpose!r} token for {job_id!r} attempt {attempt}")
    signed = f"{purpose}.{job_id}.{attempt}.{expires_at}.{keys.current_id}"
    return f"{signed}.{_signature(keys.accepted[keys.current_id], signed)}"


def verify(
    keys: SigningKeys, token: str, purpose: str = CALLBACK, now: float | None = None
) -> TokenClaims:
    """The job and attempt a genuine, unexpired `purpose` token is for; InvalidToken else."""
    parts = token.split(".")
    if len(parts) != 6:
        raise InvalidToken("malformed token")
    token_purpose, job_id, raw_attempt, raw_expires, key_id, signature = parts
    if (
        not _JOB_ID.fullmatch(job_id)
        or not _ATTEMPT.fullmatch(raw_attempt)
        or not _EXPIRES.fullmatch(raw_expires)
    ):
        raise InvalidToken("malformed token")
    key = keys.accepted.get(key_id)
    if key is None:
        raise InvalidToken("signed with a key this backend no longer accepts")
    signed = token[: len(token) - len(signature) - 1]
    if not hmac.compare_digest(_signature(key, signed).encode(), signature.encode()):
        raise InvalidToken("bad signature")
    # Checked after the signature, so these answers tell nothing about forged tokens.
    if token_purpose != purpose:
        raise InvalidToken(f"a {token_purpose!r} token, not a {purpose!r} token")
    expires_at = int(raw_expires)
    if (time.time() if now is None else now) >= expires_at:
        raise InvalidToken("expired")
    return TokenClaims(
        job_id=job_id, attempt=int(raw_attempt), expires_at=expires_at, key_id=key_id
    )
