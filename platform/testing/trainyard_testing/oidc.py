"""A real OpenID Provider for the tests: panva's oidc-provider (platform/testing/oidc/provider.mjs)
run with Node, and the browser a user would hold, driven over HTTP.

    provider = OidcProvider(tmp_dir)        # or the session fixture `oidc_provider`
    provider.start()
    tokens = await provider.token_for("alice", groups=["ml-team"])  # code + PKCE, as a browser
    await provider.approve_device_code(user_code, "alice")  # the device flow's browser half
    provider.rotate_keys()  # new signing key, same issuer; the old key is gone
    provider.forge(provider.claims("alice"))  # a token signed with the provider's own key

The provider keeps everything in memory: a restart (`rotate_keys`) forgets sessions, grants and
refresh tokens, as a real IdP's key rotation does not; tests that need them get new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin

import httpx

from trainyard.cli.embedded import free_local_port
from trainyard_testing.credential_leaks import exclude_from_scan, remember_credential
from trainyard_testing.html_forms import only_form, submit
from trainyard_testing.oidc_accounts import (
    DEFAULT_ACCOUNTS,
    Account,
    TokenSet,
    new_signing_key,
)
from trainyard_testing.oidc_browser import OidcProviderError, authorize, sign_jwt, token_request

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc"
START_S = 30
# Loopback redirect of the CLI client: the provider accepts it on any port (RFC 8252), and no
# one listens there, the harness reads the code off the redirect.
CLI_REDIRECT_URI = "http://127.0.0.1:9/callback"
DEFAULT_SCOPE = "openid email profile groups api"


__all__ = [
    "DEFAULT_ACCOUNTS",
    "Account",
    "OidcProvider",
    "OidcProviderError",
    "TokenSet",
    "new_signing_key",
]


def find_node() -> str:
    """`node` (>= 20) and the provider's npm install, or an error saying how to get them."""
    node = shutil.which("node")
    if node is None:
        raise OidcProviderError(
            "node (Node.js >= 20) is not on PATH: the OIDC tests run a real OpenID Provider "
            "(npm package oidc-provider); install Node.js, then `make oidc-provider`"
        )
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        raise OidcProviderError(
            f"the npm package oidc-provider is not installed in {PROVIDER_DIR}: run "
            "`make oidc-provider` (npm ci there)"
        )
    return node


class OidcProvider:
    """One oidc-provider process on 127.0.0.1 and a user's browser, as HTTP.

    Clients: `cli_client_id` (public: device flow, code + PKCE to a loopback redirect) and
    `web_client_id` / `web_client_secret` (confidential: code + PKCE to `web_redirect_uris`).
    More confidential clients can be registered at run time (`register_client`). Access tokens
    for the API are RS256 JWTs with `aud` = `audience` and the claims sub, email, name and
    `groups_claim`.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        audience: str = "trainyard-api",
        resource: str = "urn:trainyard:api",
        accounts: Mapping[str, Account] = DEFAULT_ACCOUNTS,
        web_redirect_uris: Sequence[str] = ("http://127.0.0.1:8000/api/auth/callback",),
        groups_claim: str = "groups",
        access_token_ttl_s: int = 600,
    ) -> None:
        self.workdir = workdir
        self.audience = audience
        self.resource = resource
        self.groups_claim = groups_claim
        self.access_token_ttl_s = access_token_ttl_s
        self.cli_client_id = "trainyard-cli"
        self.web_client_id = "trainyard-web"
        self.web_client_secret = secrets.token_urlsafe(32)
        remember_credential(self.web_client_secret, "OIDC client secret")
        self.web_redirect_uris = list(web_redirect_uris)
        self.accounts: dict[str, Account] = dict(accounts)
        # Current key first. Private keys: tests forge tokens with them.
        self.signing_keys: list[dict[str, Any]] = [new_signing_key()]
        self.port = free_local_port()
        self._admin_token = secrets.token_urlsafe(32)
        self._process: subprocess.Popen[bytes] | None = None
        self._discovery: dict[str, Any] | None = None
        # token_for may change a user's groups first: one sign-in at a time.
        self._sign_in = asyncio.Lock()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "oidc-provider.log"

    @property
    def discovery(self) -> dict[str, Any]:
        """The provider's /.well-known/openid-configuration."""
        if self._discovery is None:
            raise OidcProviderError("the OIDC provider is not started")
        return self._discovery

    # --- process ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the provider and return once its discovery document answers."""
        node = find_node()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The IdP's own log: it sees every token it issues, as a real IdP's does.
        exclude_from_scan(self.log_path)
        keys_file = self.workdir / "oidc-keys.json"
        config_file = self.workdir / "oidc-config.json"
        # Private keys and the client secret: readable by this user only.
        for path, content in (
            (keys_file, {"keys": self.signing_keys}),
            (config_file, self._config(keys_file)),
        ):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(content, out)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [node, str(PROVIDER_DIR / "provider.mjs"), str(config_file)],
                cwd=PROVIDER_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._discovery = self._wait_until_ready()

    def stop(self) -> None:
        """Stop the provider (and wait for it)."""
        process, self._process = self._process, None
        self._discovery = None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def rotate_keys(self) -> dict[str, Any]:
        """Replace the signing key by a new one (new kid) and restart on the same port and
        issuer; the old key is no longer published. Returns the new private JWK."""
        key = new_signing_key()
        self.signing_keys = [key]
        self.stop()
        self.start()
        return key

    def _config(self, keys_file: Path) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "port": self.port,
            "jwks_file": str(keys_file),
            "accounts": {sub: account.as_json() for sub, account in self.accounts.items()},
            "audience": self.audience,
            "resource": self.resource,
            "api_scopes": ["api"],
            "groups_claim": self.groups_claim,
            "access_token_ttl_s": self.access_token_ttl_s,
            "cli_client": {"client_id": self.cli_client_id},
            "web_client": {
                "client_id": self.web_client_id,
                "client_secret": self.web_client_secret,
                "redirect_uris": self.web_redirect_uris,
            },
            "admin_token": self._admin_token,
        }

    def _wait_until_ready(self) -> dict[str, Any]:
        url = f"{self.issuer}/.well-known/openid-configuration"
        deadline = time.monotonic() + START_S
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise OidcProviderError(
                    f"the OIDC provider (node {PROVIDER_DIR / 'provider.mjs'}) exited with "
                    f"{self._process.returncode}: {self._log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(url, timeout=2)
                if answer.status_code == 200:
                    document: dict[str, Any] = answer.json()
                    return document
            if time.monotonic() > deadline:
                self.stop()
                raise OidcProviderError(
                    f"the OIDC provider never answered {url} in {START_S} s: {self._log_tail()}"
                )
            time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    # --- directory and clients ---------------------------------------------------------------

    async def set_account(self, subject: str, account: Account) -> None:
        """Add or change a user of the directory (it holds for tokens issued from now on)."""
        self.accounts[subject] = account
        async with httpx.AsyncClient(base_url=self.issuer) as http:
            answer = await http.put(
                f"/_test/accounts/{subject}",
                json=account.as_json(),
                headers={"Authorization": f"Bearer {self._admin_token}"},
            )
        answer.raise_for_status()

    async def register_client(self, redirect_uris: Sequence[str]) -> tuple[str, str]:
        """A new confidential client (code + PKCE to `redirect_uris`) through the provider's
        dynamic client registration; returns (client id, client secret). Forgotten on restart."""
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                self.discovery["registration_endpoint"],
                json={
                    "redirect_uris": list(redirect_uris),
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "client_secret_basic",
                },
                headers={"Authorization": f"Bearer {self._admin_token}"},
            )
        if answer.status_code != 201:
            raise OidcProviderError(f"client registration refused: {answer.text}")
        client = answer.json()
        remember_credential(client["client_secret"], "OIDC client secret")
        return str(client["client_id"]), str(client["client_secret"])

    # --- tokens -------------------------------------------------------------------------------

    async def token_for(
        self,
        subject: str,
        *,
        groups: Sequence[str] | None = None,
        scope: str = DEFAULT_SCOPE,
        client: Literal["cli", "web"] = "cli",
    ) -> TokenSet:
        """Sign `subject` in as a browser would (authorization code + PKCE through the login
        form) and redeem the code. `groups` are the user's groups for this sign-in only (the
        directory is put back afterwards); an unknown subject joins the directory."""
        async with self._sign_in:
            known = self.accounts.get(subject)
            if known is None:
                known = Account(f"{subject}@example.test", subject.title())
                await self.set_account(subject, known)
            if groups is not None and tuple(groups) != known.groups:
                await self.set_account(subject, Account(known.email, known.name, tuple(groups)))
                try:
                    return await self._sign_in_and_redeem(subject, scope, client)
                finally:
                    await self.set_account(subject, known)
            return await self._sign_in_and_redeem(subject, scope, client)

    async def _sign_in_and_redeem(
        self, subject: str, scope: str, client: Literal["cli", "web"]
    ) -> TokenSet:
        if client == "cli":
            client_id, secret, redirect_uri = self.cli_client_id, None, CLI_REDIRECT_URI
        else:
            client_id, secret = self.web_client_id, self.web_client_secret
            redirect_uri = self.web_redirect_uris[0]
        code, verifier = await authorize(self.discovery, subject, client_id, redirect_uri, scope)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        auth = None
        if secret is None:
            form["client_id"] = client_id
        else:
            auth = httpx.BasicAuth(client_id, secret)
        return await token_request(self.discovery, form, auth)

    async def refresh(self, refresh_token: str) -> TokenSet:
        """Redeem a refresh token of the CLI client."""
        return await token_request(
            self.discovery,
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.cli_client_id,
            },
            None,
        )

    async def start_device_flow(self, scope: str = DEFAULT_SCOPE) -> dict[str, Any]:
        """What `trainyard login` asks first: the device authorization answer (device_code,
        user_code, verification_uri, interval...) for the CLI client."""
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                self.discovery["device_authorization_endpoint"],
                data={"client_id": self.cli_client_id, "scope": scope},
            )
        if answer.status_code != 200:
            raise OidcProviderError(f"device authorization refused: {answer.text}")
        body: dict[str, Any] = answer.json()
        return body

    async def approve_device_code(self, user_code: str, subject: str) -> None:
        """What the user does in a browser for the device flow: open the verification page,
        enter the code, confirm, sign in as `subject`."""
        async with httpx.AsyncClient(timeout=10) as http:
            # The verification page (the `verification_uri` the device authorization answers).
            page = await http.get(f"{self.issuer}/device")
            for _ in range(10):
                if page.is_redirect:
                    page = await http.get(urljoin(str(page.url), page.headers["location"]))
                    continue
                if 'id="device-success"' in page.text:
                    return
                form = only_form(page)
                if "user_code" in form.fields and not form.fields["user_code"]:
                    form.fields["user_code"] = user_code
                if "login" in form.fields:
                    form.fields["login"] = subject
                page = await submit(http, page, form)
        raise OidcProviderError(f"the device sign-in did not end: {page.text[-500:]}")

    def forge(
        self,
        claims: Mapping[str, Any],
        *,
        key: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        algorithm: str = "RS256",
    ) -> str:
        """A JWT signed with the provider's current key (or `key`, a private JWK), its kid in
        the header unless `headers` says otherwise: for tokens the provider would not issue."""
        return sign_jwt(claims, key or self.signing_keys[0], headers=headers, algorithm=algorithm)

    def claims(self, subject: str, **overrides: Any) -> dict[str, Any]:
        """The claims of a valid API access token for `subject`, issued now (for `forge`)."""
        now = int(time.time())
        return {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "exp": now + self.access_token_ttl_s,
            "scope": "api",
            "client_id": self.cli_client_id,
            **overrides,
        }
