"""`trainyard login`, `logout` and `whoami`: signing the CLI in to one API URL.

`login` asks the API how to sign in (`GET /v1/auth/config`, public), then runs the device flow
at the IdP it names; `login --api-key` stores an API key read from stdin or a hidden prompt
(never from argv: `ps` shows argv to every user). What is stored, and where: cli/credentials.py.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import httpx
import typer
from pydantic import SecretStr
from rich.table import Table

from trainyard.auth.api_keys import looks_like_api_key
from trainyard.cli.caller import Caller
from trainyard.cli.client import PlatformClient, PlatformError
from trainyard.cli.credentials import ApiKeyCredentials, CredentialStore, OidcCredentials
from trainyard.cli.device_login import DeviceCode, discover, revoke, sign_in_with_device
from trainyard.cli.platform_calls import console, err_console, fail, platform_client
from trainyard.cli.settings import get_cli_settings


def login(
    api_key: Annotated[
        bool,
        typer.Option(
            "--api-key",
            help="store an API key instead, read from stdin or a hidden prompt (never argv)",
        ),
    ] = False,
) -> None:
    """Sign in to the platform at TRAINYARD_API_URL (the device flow at its IdP)."""
    settings = get_cli_settings()
    store = CredentialStore(settings.credentials_path)
    if api_key:
        _store_api_key(settings.api_url, store, _read_api_key())
        return
    # No credential of ours on this request: the config is public, and a stale token must not
    # stand between the user and signing in again.
    anonymous = Caller(settings.api_url, None)
    try:
        with PlatformClient(anonymous, settings.request_timeout_s) as client:
            config: dict[str, Any] = client.auth_config()
    except PlatformError as exc:
        fail(str(exc))
    if config["auth_mode"] == "local":
        # A sign-in kept from another platform once at this URL would only be refused here.
        store.forget(settings.api_url)
        console.print(
            f"{settings.api_url} signs nobody in (auth mode local): there is nothing to sign "
            "in to; requests carry no credential"
        )
        return
    if not config.get("cli_client_id") or not config.get("issuer"):
        fail(
            f"{settings.api_url} has no CLI client at its IdP (TRAINYARD_OIDC_CLI_CLIENT_ID): "
            "sign in with an API key, `trainyard login --api-key`"
        )
    try:
        with httpx.Client() as http:
            idp = discover(http, config["issuer"])
            credentials = sign_in_with_device(
                http, idp, config["cli_client_id"], list(config.get("scopes") or []), _show_code
            )
    except PlatformError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err_console.print("sign-in abandoned")
        raise typer.Exit(130) from None
    store.put(settings.api_url, credentials)
    _greet(Caller(settings.api_url, store))


def logout() -> None:
    """Forget the sign-in of TRAINYARD_API_URL (and revoke its refresh token at the IdP)."""
    settings = get_cli_settings()
    store = CredentialStore(settings.credentials_path)
    try:
        removed = store.forget(settings.api_url)
    except PlatformError as exc:
        fail(str(exc))
    if removed is None:
        console.print(f"not signed in to {settings.api_url}")
    else:
        if isinstance(removed, OidcCredentials):
            try:
                with httpx.Client() as http:
                    revoke(http, removed)
            except PlatformError as exc:
                # The local copy is gone either way; the token expires at the IdP in time.
                err_console.print(f"[yellow]warning:[/] {exc}")
        console.print(f"signed out of {settings.api_url}")
    if settings.api_key is not None:
        console.print("TRAINYARD_API_KEY is set: requests still carry that key")


def whoami(
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """Who the platform takes you for, and your projects with your role in each."""
    try:
        with platform_client() as client:
            me: dict[str, Any] = client.me()
            project = client.caller.project
    except PlatformError as exc:
        fail(str(exc))
    if output == "json":
        console.print_json(json.dumps(me))
        return
    user = me["user"]
    label = user.get("email") or user.get("name") or user["id"]
    admin = " (platform admin)" if user.get("platform_admin") else ""
    console.print(f"[bold]{label}[/]{admin} signed in with {me['credential']}")
    table = Table("project", "name", "role")
    for item in me["projects"]:
        marks = []
        if item["slug"] == me.get("default_project"):
            marks.append("default")
        if item["slug"] == project:
            marks.append("--project")
        slug = f"{item['slug']} ({', '.join(marks)})" if marks else item["slug"]
        table.add_row(slug, item["name"], item["role"])
    console.print(table)


def _read_api_key() -> SecretStr:
    # A pipe (`pass show trainyard | trainyard login --api-key`) or a prompt that echoes nothing.
    typed = typer.prompt("API key", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    key = str(typed).strip()
    if not looks_like_api_key(key):
        fail("that is not a Trainyard API key (they begin tyk_)")
    return SecretStr(key)


def _store_api_key(api_url: str, store: CredentialStore, key: SecretStr) -> None:
    # Checked before it is stored: a mistyped key fails here, not on the next command.
    probe = Caller(api_url, store, api_key=key)
    try:
        with PlatformClient(probe, get_cli_settings().request_timeout_s) as client:
            client.me()
    except PlatformError as exc:
        fail(f"the key was not accepted: {exc}")
    store.put(api_url, ApiKeyCredentials(api_key=key))
    _greet(Caller(api_url, store))


def _show_code(code: DeviceCode) -> None:
    console.print(
        f"To sign in, open [bold]{code.verification_uri}[/] and enter the code "
        f"[bold cyan]{code.user_code}[/]",
        soft_wrap=True,
    )
    if code.verification_uri_complete:
        console.print(f"(or open {code.verification_uri_complete})", soft_wrap=True)
    console.print(f"[dim]waiting for the approval (the code expires in {code.expires_in_s:.0f} s)")


def _greet(caller: Caller) -> None:
    try:
        with PlatformClient(caller, get_cli_settings().request_timeout_s) as client:
            me: dict[str, Any] = client.me()
    except PlatformError as exc:
        fail(f"signed in, but the platform refused the sign-in: {exc}")
    user = me["user"]
    label = user.get("email") or user.get("name") or user["id"]
    console.print(f"signed in to {caller.api_url} as [bold]{label}[/] ({me['credential']})")
