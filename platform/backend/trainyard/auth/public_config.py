"""`GET /v1/auth/config`: how to sign in to this platform, for clients that have no credential
yet (the CLI asks it before `trainyard login`). Public by design: it names the IdP and the CLI's
public client, never a secret."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from trainyard.deps import Settings

router = APIRouter(prefix="/v1/auth", tags=["auth"])

# What the CLI asks the IdP for: who the user is, and a refresh token (offline_access) so a
# short-lived access token does not mean signing in again.
CLI_SCOPES = ("openid", "profile", "email", "offline_access")


class AuthConfigRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth_mode: Literal["local", "oidc"] = Field(
        description="local: no sign-in (the embedded tier); oidc: every request signs in"
    )
    issuer: str | None = Field(description="the OpenID Provider (its discovery document)")
    audience: str | None = Field(description="the `aud` the API's access tokens carry")
    cli_client_id: str | None = Field(
        description="the CLI's public client at the IdP (device flow); none: API keys only"
    )
    scopes: list[str] = Field(description="the scopes the CLI asks for")


@router.get("/config", response_model=AuthConfigRead)
async def auth_config(settings: Settings) -> AuthConfigRead:
    """How to sign in (no credential needed)."""
    oidc = settings.auth_mode == "oidc"
    return AuthConfigRead(
        auth_mode=settings.auth_mode,
        issuer=settings.oidc_issuer if oidc else None,
        audience=settings.oidc_audience if oidc else None,
        cli_client_id=settings.oidc_cli_client_id if oidc else None,
        scopes=list(CLI_SCOPES) if oidc else [],
    )
