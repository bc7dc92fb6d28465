"""Rate limits on the routes that start costly work, and on failed sign-ins.

Each limited route counts its requests twice, per caller (the signed-in user, and the API key
when one was used) and per client address; over either limit is a 429 with `Retry-After`
(seconds). Refused credentials are counted per client address; once an address is over its
`sign_in_failure` limit, every credential it sends is refused (429) before it is checked.

Counts are kept by the `limits` library: in Redis when TRAINYARD_REDIS_URL is set, so every
API replica shares them (decision 014), in this process's memory otherwise (the embedded
tier's one process).

Strategy: a moving window. A fixed window lets a caller spend its budget at the end of one
window and again at the start of the next (twice the rate within a second, twice the guesses
for a brute force); a moving window counts exactly the hits of the last period and knows when
the oldest one leaves it, which is the Retry-After. Its cost, one stored timestamp per hit, is
bounded by the limit itself.

A storage outage fails open: the request goes on unlimited and a warning is logged; the
storage is tried again after `OUTAGE_RETRY_S`, so an outage costs no request more than one
bounded Redis call. A limiter must not take down the API it protects.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal, get_args

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

from trainyard.core.errors import ErrorBody, TrainyardError

logger = logging.getLogger(__name__)

# The routes a request is counted on (deps.RateLimited), and every name a limit is set for.
LimitedRoute = Literal["submit", "chat", "upload"]
LIMITED_ROUTES: tuple[str, ...] = (*get_args(LimitedRoute), "sign_in_failure")
# submit: POST /v1/jobs and POST /v1/chat/{id}/start; chat: POST /v1/chat and /v1/chat/stream;
# upload: POST /v1/datasets (uploads and registrations); sign_in_failure: refused credentials.
DEFAULT_RATE_LIMITS: Mapping[str, str] = {
    "submit": "30/minute",
    "chat": "30/minute",
    "upload": "20/minute",
    "sign_in_failure": "10/minute",
}
OFF = "off"
OUTAGE_RETRY_S = 10.0
# Addresses remembered as having failed a sign-in (see RateLimiter.check_sign_in).
_MAX_SUSPECTS = 100_000

RATE_LIMITED_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorBody,
        "description": "Too many requests (per caller or per client address): try again later",
        "headers": {
            "Retry-After": {
                "description": "seconds until the next request may succeed",
                "schema": {"type": "integer"},
            }
        },
    }
}


def checked_rate_limits(configured: Mapping[str, str]) -> dict[str, str]:
    """Every route's limit: its default unless `configured` names it ("off" turns it off).
    ValueError naming TRAINYARD_RATE_LIMITS for an unknown route or a malformed limit."""
    unknown = sorted(set(configured) - set(LIMITED_ROUTES))
    if unknown:
        raise ValueError(
            f"TRAINYARD_RATE_LIMITS names no such route: {', '.join(unknown)} "
            f"(the routes: {', '.join(LIMITED_ROUTES)})"
        )
    merged: dict[str, str] = dict(DEFAULT_RATE_LIMITS)
    for route, raw in configured.items():
        value = raw.strip()
        if value.lower() == OFF:
            merged[route] = OFF
            continue
        try:
            items = parse_many(value)
        except ValueError:
            items = []
        if not items or any(item.amount < 1 for item in items):
            raise ValueError(
                f"TRAINYARD_RATE_LIMITS[{route!r}] = {raw!r} is not a rate limit: write "
                "e.g. '30/minute', '5/second;100/hour', or 'off'"
            )
        merged[route] = value
    return merged


class TooManyRequests(TrainyardError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}


class TooManyFailedSignIns(TooManyRequests):
    code = "too_many_failed_sign_ins"

    def __init__(self, retry_after_s: int, *, first: bool) -> None:
        super().__init__(
            f"too many failed sign-ins from this address: try again in {retry_after_s} s",
            retry_after_s,
        )
        # The first refusal of this block in this process: the one worth an audit entry.
        self.first = first


class RateLimiter:
    """The limits of one API process, counted in `storage` (shared by its replicas when it
    is Redis)."""

    def __init__(self, storage: Storage, configured: Mapping[str, str]) -> None:
        self._strategy = MovingWindowRateLimiter(storage)
        self._limits: dict[str, tuple[RateLimitItem, ...]] = {
            route: () if value == OFF else tuple(parse_many(value))
            for route, value in checked_rate_limits(configured).items()
        }
        self._down_until = 0.0  # monotonic: the storage is not asked before then
        # Address -> (monotonic time its last failure leaves the longest window, whether its
        # block was already reported). Only these addresses are looked up before a sign-in.
        self._suspects: dict[str, tuple[float, bool]] = {}

    async def hit(self, route: LimitedRoute, caller: str, address: str) -> None:
        """Count one request of `caller` (a user, or a user's API key) from `address` on
        `route`; TooManyRequests (429) when either is over the route's limit."""
        items = self._limits[route]
        if not items or not self._storage_up():
            return
        try:
            retry_after_s = 0
            for item in items:
                for who in (("caller", caller), ("address", address)):
                    if not await self._strategy.hit(item, route, *who):
                        retry_after_s = max(
                            retry_after_s, await self._retry_after(item, route, *who)
                        )
        except StorageError as error:
            self._storage_failed(error)
            return
        if retry_after_s:
            raise TooManyRequests(
                f"too many requests ({route}): try again in {retry_after_s} s", retry_after_s
            )

    async def check_sign_in(self, address: str) -> None:
        """Before a credential from `address` is checked: TooManyFailedSignIns (429) when the
        address is over its limit of failed sign-ins.

        Only an address this process saw fail within the longest window is looked up, so a
        request from a clean address costs no storage call. With several replicas, one that
        has not yet seen the address fail lets one more attempt through (which it then counts
        and remembers): at most one extra guess per replica and window."""
        items = self._limits["sign_in_failure"]
        suspect = self._suspects.get(address)
        if not items or suspect is None or not self._storage_up():
            return
        until, reported = suspect
        if until < time.monotonic():
            del self._suspects[address]
            return
        try:
            retry_after_s = 0
            for item in items:
                if not await self._strategy.test(item, "sign_in_failure", address):
                    retry_after_s = max(
                        retry_after_s, await self._retry_after(item, "sign_in_failure", address)
                    )
        except StorageError as error:
            self._storage_failed(error)
            return
        if retry_after_s:
            self._suspects[address] = (until, True)
            raise TooManyFailedSignIns(retry_after_s, first=not reported)

    async def count_sign_in_failure(self, address: str) -> None:
        """Count a credential from `address` that was refused."""
        items = self._limits["sign_in_failure"]
        if not items:
            return
        if len(self._suspects) >= _MAX_SUSPECTS:
            self._forget_expired_suspects()
        longest = max(item.get_expiry() for item in items)
        self._suspects[address] = (time.monotonic() + longest, False)
        if not self._storage_up():
            return
        try:
            for item in items:
                await self._strategy.hit(item, "sign_in_failure", address)
        except StorageError as error:
            self._storage_failed(error)

    async def _retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        stats = await self._strategy.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def _forget_expired_suspects(self) -> None:
        now = time.monotonic()
        self._suspects = {a: s for a, s in self._suspects.items() if s[0] >= now}
        if len(self._suspects) >= _MAX_SUSPECTS:
            # A flood from more addresses than this: each is still counted in the storage,
            # only the lookup before a sign-in is skipped for the forgotten ones.
            self._suspects.clear()

    def _storage_up(self) -> bool:
        if self._down_until == 0.0:
            return True
        if time.monotonic() < self._down_until:
            return False
        self._down_until = 0.0
        logger.info("rate limits: trying their storage again")
        return True

    def _storage_failed(self, error: StorageError) -> None:
        # Fail open: an unreachable Redis must not refuse every submission or sign-in.
        self._down_until = time.monotonic() + OUTAGE_RETRY_S
        logger.warning(
            "rate limits are off for %.0f s: their storage cannot be reached (%s: %s)",
            OUTAGE_RETRY_S,
            type(error.storage_error).__name__,
            error.storage_error,
        )


def _limits_redis_uri(redis_url: str) -> str:
    # The `limits` library names its async Redis storage by scheme: async+redis://,
    # async+rediss://, async+redis+unix://.
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


@asynccontextmanager
async def open_rate_limiter(
    limits: Mapping[str, str], redis_url: str | None, key_prefix: str, timeout_s: float
) -> AsyncIterator[RateLimiter]:
    """The limiter of one API process: counts in Redis at `redis_url` (keys under
    `key_prefix`, every call bounded by `timeout_s`), else in memory."""
    if redis_url is None:
        yield RateLimiter(MemoryStorage(wrap_exceptions=True), limits)
        return
    # Our own pool, so the connections are closed with the process's runtime.
    pool = ConnectionPool.from_url(
        redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    storage = RedisStorage(
        _limits_redis_uri(redis_url),
        wrap_exceptions=True,
        implementation="redispy",
        key_prefix=f"{key_prefix}:ratelimit",
        # A documented parameter of RedisStorage that its `**options` annotation leaves out.
        connection_pool=pool,  # type: ignore[arg-type]
    )
    try:
        yield RateLimiter(storage, limits)
    finally:
        await pool.aclose()
