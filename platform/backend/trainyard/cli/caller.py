"""Who the CLI calls the API as, and in which project: the one place that builds a request's
`Authorization` and `Trainyard-Project` headers, for the HTTP client (cli/client.py) and the
WebSocket follower (cli/stream.py) alike.

The credential, first found wins: `TRAINYARD_API_KEY` (automation), else what `trainyard login`
stored for this API URL, else none (auth_mode=local needs none). An OIDC access token is
refreshed with its refresh token when it is due, and once more when the API answers 401.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Generator, Iterator
from contextvars import ContextVar

import httpx
from pydantic import SecretStr

from trainyard.auth.projects import PROJECT_HEADER
from trainyard.cli.credentials import ApiKeyCredentials, CredentialStore, OidcCredentials
from trainyard.cli.device_login import refresh
from trainyard.cli.settings import CliSettings, get_cli_settings

RUN_LOGIN = "run `trainyard login`"


class Caller:
    def __init__(
        self,
        api_url: str,
        store: CredentialStore | None,
        *,
        api_key: SecretStr | None = None,
        project: str | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.store = store
        self.project = project
        self._api_key = api_key

    @property
    def uses_env_api_key(self) -> bool:
        return self._api_key is not None

    def headers(self) -> dict[str, str]:
        """The headers every request to the API carries (an OIDC token refreshed if due)."""
        headers: dict[str, str] = {}
        token = self._token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if self.project:
            headers[PROJECT_HEADER] = self.project
        return headers

    def headers_after_refusal(self) -> dict[str, str] | None:
        """After a 401: the headers with a freshly refreshed token, or None when there is
        nothing to refresh (an API key, no sign-in). Callers retry once, not in a loop."""
        stored = self._stored() if self._api_key is None else None
        if not isinstance(stored, OidcCredentials):
            return None
        self._refresh(stored)
        return self.headers()

    def _token(self) -> str | None:
        if self._api_key is not None:
            return self._api_key.get_secret_value()
        stored = self._stored()
        if isinstance(stored, ApiKeyCredentials):
            return stored.api_key.get_secret_value()
        if stored is None:
            return None
        if stored.refresh_after <= time.time() and stored.refresh_token is not None:
            stored = self._refresh(stored)
        return stored.access_token.get_secret_value()

    def _stored(self) -> OidcCredentials | ApiKeyCredentials | None:
        return self.store.get(self.api_url) if self.store is not None else None

    def _refresh(self, seen: OidcCredentials) -> OidcCredentials:
        store = self.store
        assert store is not None  # only stored credentials are refreshed
        with self._locked(store):
            # Another CLI may have refreshed while we waited (and, where the IdP rotates
            # refresh tokens, spent the one we hold): use its tokens.
            current = store.get(self.api_url)
            if isinstance(current, OidcCredentials) and current.access_token != seen.access_token:
                return current
            with httpx.Client() as http:
                fresh = refresh(http, seen)
            store.put(self.api_url, fresh)
            return fresh

    @staticmethod
    @contextlib.contextmanager
    def _locked(store: CredentialStore) -> Iterator[None]:
        lock_path = store.path.with_suffix(".lock")
        lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


class CallerAuth(httpx.Auth):
    """httpx's hook: the caller's headers on every request; one retry after a 401 with a
    refreshed token, when the request's body can be sent again (not a streamed upload)."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.caller.headers())
        response = yield request
        if response.status_code != 401 or not isinstance(request.stream, httpx.ByteStream):
            return
        retry = self.caller.headers_after_refusal()
        if retry is not None:
            request.headers.update(retry)
            yield request


def caller_for(settings: CliSettings, project: str | None = None) -> Caller:
    return Caller(
        settings.api_url,
        CredentialStore(settings.credentials_path),
        api_key=settings.api_key,
        project=project or settings.project,
    )


def choose_project(slug: str | None) -> None:
    """The global `--project` option of this invocation (None: TRAINYARD_PROJECT, else the
    caller's default project)."""
    _project_option.set(slug)


def current_caller() -> Caller:
    """The caller of this command: its `--project` option over TRAINYARD_PROJECT."""
    return caller_for(get_cli_settings(), _project_option.get())


# Set by the root command's callback on every invocation (cli/app.py).
_project_option: ContextVar[str | None] = ContextVar("trainyard_project", default=None)
