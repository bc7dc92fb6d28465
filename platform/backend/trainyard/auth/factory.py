"""The authenticator of one API process, for its auth mode (the only place that knows it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from trainyard.auth.authenticate import Authenticator
from trainyard.auth.oidc import OidcTokenVerifier
from trainyard.core.db import Database
from trainyard.core.rate_limits import RateLimiter
from trainyard.core.settings import BackendSettings


@asynccontextmanager
async def open_authenticator(
    settings: BackendSettings, db: Database, limiter: RateLimiter
) -> AsyncIterator[Authenticator]:
    if settings.auth_mode == "local":
        authenticator = Authenticator(settings, db, None, limiter)
        await authenticator.prepare()
        yield authenticator
        return
    # The IdP's discovery document and keys: bounded, so a slow IdP never hangs a request.
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield Authenticator(settings, db, OidcTokenVerifier(settings, http), limiter)
