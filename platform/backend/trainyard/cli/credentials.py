"""Where `trainyard login` keeps what it signed in with: one JSON file per user,
`$XDG_CONFIG_HOME/trainyard/credentials.json` (else `~/.config/trainyard/...`), mode 0600 in a
0700 folder, with one entry per API URL:

    {"version": 1, "apis": {"https://trainyard.example.com": {"kind": "oidc", ...},
                            "http://127.0.0.1:8000": {"kind": "api_key", "api_key": "tyk_..."}}}

Every write replaces the file atomically (a new 0600 file renamed over the old one), so a crash
or a second CLI never leaves a torn file. Tokens are `SecretStr`: a repr, a log line or a
traceback shows stars, never a token.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_serializer

from trainyard.cli.errors import PlatformError

FILE_MODE = 0o600
DIR_MODE = 0o700


class CredentialsUnreadable(PlatformError):
    """The credentials file exists but is not ours to read or not what we wrote."""


class OidcCredentials(BaseModel):
    """Tokens from the IdP, and what is needed to refresh and revoke them without asking the
    API again."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["oidc"] = "oidc"
    issuer: str
    client_id: str
    token_endpoint: str
    revocation_endpoint: str | None = None
    access_token: SecretStr
    refresh_token: SecretStr | None = None
    # Epoch seconds: when the access token expires, and when the CLI refreshes it (a little
    # earlier, so it does not expire on its way to the API).
    expires_at: float
    refresh_after: float

    @field_serializer("access_token", "refresh_token", when_used="json")
    def _reveal(self, value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None


class ApiKeyCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["api_key"] = "api_key"
    api_key: SecretStr

    @field_serializer("api_key", when_used="json")
    def _reveal(self, value: SecretStr) -> str:
        return value.get_secret_value()


Credentials = Annotated[OidcCredentials | ApiKeyCredentials, Field(discriminator="kind")]


class CredentialsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    apis: dict[str, Credentials] = Field(default_factory=dict)


def api_key_of(api_url: str) -> str:
    """The entry an API URL is stored under (`https://x/` and `https://x` are one API)."""
    return api_url.rstrip("/")


class CredentialStore:
    """The credentials file of one user."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, api_url: str) -> OidcCredentials | ApiKeyCredentials | None:
        return self._read().apis.get(api_key_of(api_url))

    def put(self, api_url: str, credentials: OidcCredentials | ApiKeyCredentials) -> None:
        stored = self._read()
        stored.apis[api_key_of(api_url)] = credentials
        self._write(stored)

    def forget(self, api_url: str) -> OidcCredentials | ApiKeyCredentials | None:
        """Remove the entry of `api_url`; the file goes when it was the last one."""
        stored = self._read()
        removed = stored.apis.pop(api_key_of(api_url), None)
        if removed is None:
            return None
        if stored.apis:
            self._write(stored)
        else:
            self.path.unlink(missing_ok=True)
        return removed

    def _read(self) -> CredentialsFile:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return CredentialsFile()
        except OSError as exc:
            raise CredentialsUnreadable(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            return CredentialsFile.model_validate_json(text)
        except ValidationError:
            # Not the validation error itself: its input excerpt would be a token.
            raise CredentialsUnreadable(
                f"{self.path} is not a credentials file of this CLI: delete it and run "
                "`trainyard login`"
            ) from None

    def _write(self, stored: CredentialsFile) -> None:
        folder = self.path.parent
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        # An existing folder keeps its mode unless we tighten it: only its owner lists it.
        os.chmod(folder, DIR_MODE)
        # mkstemp opens O_EXCL with mode 0600: the tokens are never readable by others, not
        # even for the moment between the write and the rename.
        fd, temp = tempfile.mkstemp(prefix=".credentials-", suffix=".json", dir=folder)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(stored.model_dump(mode="json"), out, indent=2)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, FILE_MODE)
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
