"""Settings of the backend process (one class, env prefix TRAINYARD_)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trainyard.callbacks.tokens import SigningKeys
from trainyard.core.rate_limits import checked_rate_limits
from trainyard_workflows.contracts import DEFAULT_TASK_QUEUE
from trainyard_workflows.telemetry.logs import LogFormat

# Embedded defaults: they only protect a loopback backend on a developer machine, so they are
# refused as soon as the database is not SQLite (i.e. outside the embedded tier). The internal
# token matches the worker's default so a bare `trainyard-api` + `trainyard-worker` pair works.
EMBEDDED_INTERNAL_TOKEN = "embedded-internal-token"
EMBEDDED_CALLBACK_SECRET = "embedded-callback-secret"
EMBEDDED_SESSION_SECRET = "embedded-session-secret"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class BackendSettings(BaseSettings):
    """Configuration of the backend API; every field reads `TRAINYARD_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="TRAINYARD_", extra="forbid")

    data_dir: Path = Path(".trainyard")
    # Empty means SQLite at <data_dir>/trainyard.db (filled in by the validator below);
    # postgresql+asyncpg://user:password@host/db for the production tier.
    database_url: str = ""
    # Connections each API process keeps to PostgreSQL (SQLite ignores these).
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=20, ge=0)

    # Absent: the in-process event bus (one API process). redis://host:6379/0: events are
    # relayed across API replicas through Redis pub/sub.
    redis_url: str | None = None
    # Channel names are <prefix>:job:<job id>, so several deployments can share one Redis.
    redis_channel_prefix: str = Field(default="trainyard", min_length=1, max_length=64)
    # Bound on every Redis call: a hung Redis never stalls a callback for longer.
    redis_timeout_s: float = Field(default=1.0, gt=0)

    # MLflow tracking server the worker logs runs to (absent: jobs are not tracked), and the
    # address users open it at when that differs (a proxy, an ingress); links to a job's run
    # are built from the latter.
    mlflow_tracking_uri: str | None = None
    mlflow_ui_url: str | None = None

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    # Bound on every call to Temporal, so a request never hangs on an unreachable cluster.
    temporal_rpc_timeout_s: float = Field(default=10.0, gt=0)

    internal_token: SecretStr = SecretStr(EMBEDDED_INTERNAL_TOKEN)
    callback_secret: SecretStr = SecretStr(EMBEDDED_CALLBACK_SECRET)

    # --- Identity and access (docs/operations.md, "Signing in") ---------------------------
    # local: no sign-in; a request without a credential is the local user (`owner`), a
    #   platform admin. Accepted only while the API listens on a loopback address.
    # oidc: every request signs in: a bearer JWT from the IdP below, an API key, or the web
    #   UI's session cookie (the backend signs the browser in: code + PKCE).
    auth_mode: Literal["local", "oidc"] = "local"
    # The local user's name (auth_mode=local).
    owner: str = Field(default="local", min_length=1, max_length=128)
    oidc_issuer: str | None = None
    # The `aud` every token must carry (the API's client id at most IdPs).
    oidc_audience: str | None = None
    # The web UI's and CLI's client at the IdP (the secret only where the IdP wants one).
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    # The CLI's public client (device flow, no secret), told to `trainyard login` by
    # GET /v1/auth/config; unset: the CLI signs in with API keys only.
    oidc_cli_client_id: str | None = None
    # Asymmetric algorithms only: a token signed with a shared secret (or none) is refused.
    oidc_algorithms: list[
        Literal["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
    ] = [
        "RS256",
        "PS256",
        "ES256",
        "EdDSA",
    ]
    # The claim that lists the user's groups, and the roles a group gives:
    # {"ml-team-admins": "ml-team:admin", "ml-team": "ml-team:member"} (project slug:role).
    oidc_groups_claim: str | None = None
    oidc_group_roles: dict[str, str] = Field(default_factory=dict)
    # How long the IdP's signing keys are kept before they are fetched again (an unknown key
    # id fetches them at once, at most once per `oidc_jwks_min_refetch_s`).
    oidc_jwks_cache_s: float = Field(default=3600.0, gt=0)
    oidc_jwks_min_refetch_s: float = Field(default=10.0, ge=0)
    # Clock skew accepted on exp / nbf / iat.
    oidc_leeway_s: int = Field(default=30, ge=0, le=300)
    # Subjects (as issuer|subject or the email claim) who are platform admins.
    platform_admins: list[str] = Field(default_factory=list)
    # Signs the web UI's session cookie; derived from nothing, so set it outside the
    # embedded tier.
    session_secret: SecretStr = SecretStr(EMBEDDED_SESSION_SECRET)
    session_lifetime_s: int = Field(default=8 * 3600, ge=60)
    # Where users open the platform (https://trainyard.example.com). Its host is accepted in
    # the Host header, its origin may change state from a browser, and the IdP redirects the
    # web sign-in back to it.
    public_url: str | None = None
    # More Host names this API answers to (loopback names always are); any other Host is a
    # 403 (DNS rebinding).
    allowed_hosts: list[str] = Field(default_factory=list)

    # --- Bounded inputs (docs/operations.md, "Limits") -------------------------------------
    # Largest request body that is not a dataset upload (JSON); over it is 413 before parsing.
    max_json_body_bytes: int = Field(default=1024**2, ge=1)
    # Files one dataset may hold (an uploaded zip's entries, a registered folder's files).
    max_dataset_entries: int = Field(default=10_000, ge=1)
    # Largest uncompressed/compressed ratio of one zip entry of 1 MiB or more (zip bombs).
    max_compression_ratio: float = Field(default=100.0, gt=1)
    # Bytes a project's uploaded datasets may hold in storage together; None: unlimited.
    project_storage_quota_bytes: int | None = Field(default=50 * 1024**3, ge=1)
    # Folders below which file:// datasets may be registered or trained on; unset: the
    # user's home and data_dir in the embedded tier (SQLite), data_dir alone otherwise.
    dataset_roots: list[Path] | None = None

    # --- Rate limits (docs/operations.md, "Limits") -----------------------------------------
    # Per route, in the `limits` syntax ("30/minute", "5/second;100/hour") or "off"; a route
    # not named keeps its default (core/rate_limits.py): submit 30/minute, chat 30/minute,
    # upload 20/minute, counted per user (and API key) and per client address alike;
    # sign_in_failure 10/minute: refused credentials per client address, after which its
    # sign-ins are refused (429) before their credential is checked.
    rate_limits: dict[str, str] = Field(default_factory=dict, validate_default=True)

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits(cls, value: dict[str, str]) -> dict[str, str]:
        return checked_rate_limits(value)  # every route's limit; a malformed one stops start-up

    # --- Callback tokens (docs/trainer-contract.md, "Callback tokens") ----------------------
    # `callback_secret` signs trainer callback tokens under this key id. To rotate while
    # trainers run: move the old id and secret to `callback_previous_secrets`, set a new
    # secret under a new id, restart the API; drop the old pair once its jobs have ended.
    callback_key_id: str = "k1"
    # Older signing keys (key id -> secret): still accepted, never used to sign.
    callback_previous_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    # A job's deadline is its submission plus this; its callback tokens expire at the
    # deadline plus `callback_token_grace_s`, so a leaked token outlives no run for long.
    max_run_duration_s: int = Field(default=30 * 24 * 3600, ge=60)
    callback_token_grace_s: int = Field(default=3600, ge=0)

    max_epochs: int = Field(default=10_000, ge=1)
    max_gpus: int = Field(default=8, ge=0)
    max_batch: int = Field(default=1024, ge=1)
    heartbeat_timeout_s: float = Field(default=120.0, gt=0)
    # Attempts per job: one that ends without a result (killed, crashed, silent) is followed by
    # the next, resuming from the newest checkpoint, until this many were used.
    max_attempts: int = Field(default=3, ge=1, le=100)
    # Attempts ended from outside (preemption, eviction, node drain, an outside SIGTERM) do not
    # count against max_attempts; a job is failed after this many of them.
    max_interruptions: int = Field(default=10, ge=0, le=1000)
    # How often each API process looks for jobs whose workflow start or cancel was lost (Temporal
    # down, the process stopped between a commit and its call); also once at start-up.
    workflow_sweep_interval_s: float = Field(default=30.0, gt=0)
    # A job's own request starts its workflow; the sweep only takes jobs older than this.
    workflow_start_grace_s: float = Field(default=10.0, ge=0)

    # Events a slow WebSocket subscriber may lag behind before it is closed (it reconnects).
    stream_queue_size: int = Field(default=1000, ge=1)

    # The chat planner's language model: any OpenAI-compatible server (vLLM, Ollama, OpenAI).
    # Unset: the built-in grammar parser plans alone (it is also the fallback when the model
    # is down).
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(default=30.0, gt=0)

    # The built web app (platform/web/dist); empty: the checkout's build, if there is one.
    web_dir: Path | None = None

    # The state file of the embedded tier's supervisor (`trainyard up` sets it): /readyz shows
    # each component's restarts. Unset elsewhere, where Kubernetes or systemd supervise.
    supervision_state: Path | None = None

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    # --- The internal API's own port (core/listeners.py, docs/operations.md) ---------------
    # Set: the same process also listens here, and this port alone serves the worker's
    # /internal/* API (and the trainers' callbacks, and /healthz and /readyz); the public
    # port no longer does. Unset (the embedded tier): one port serves everything.
    internal_port: int | None = Field(default=None, ge=1, le=65535)
    # With internal_port set: whether the public port still takes the trainers' callbacks
    # (trainers in another cluster reach the platform only through the Ingress).
    callbacks_on_public_port: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # --- issue 22: budgets
    # A project over its monthly GPU-hours: `hold` keeps its GPU jobs QUEUED (the ledger's
    # budget hold) until the month turns or an admin raises the budget; `refuse` answers a
    # GPU submit with 422 on `gpus`. CPU jobs are never held by the budget.
    budget_exceeded: Literal["hold", "refuse"] = "hold"
    # A waiting job that capacity holds may stop running jobs of a strictly lower priority
    # (admission/preemption.py): they checkpoint, wait QUEUED and resume. `off`: never.
    preemption: Literal["lower_priority", "off"] = "lower_priority"

    # --- issue 21: A (metrics)

    # --- issue 21: C (tracing)
    # 1 heartbeat request in this many gets a sampled span (0: none), whatever the trainer's
    # sampled flag says: a long run's trace stays readable. Traces otherwise follow the
    # standard OTEL_* variables (docs/operations.md, "Traces").
    trace_heartbeat_every: int = Field(default=20, ge=0)

    # --- issue 21: M (trace store)
    # The MLflow experiment that holds the traces (`trainyard up` sets it to its
    # `trainyard-traces`); with `mlflow_link_base`, a job links to its trace in MLflow's UI
    # (observability/trace_links.py). Unset: traces go elsewhere, no link.
    trace_experiment_id: str | None = None

    # --- issue 21: E (logs)
    # `console`: readable lines (the embedded tier); `json`: one JSON object a line, for a log
    # shipper (trainyard_workflows/telemetry/logs.py). `log_level` applies to it too.
    log_format: LogFormat = "console"

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # The API may be started from any folder; a relative path would move with it.
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _database_and_secrets(self) -> BackendSettings:
        if self.callback_key_id in self.callback_previous_secrets:
            raise ValueError(
                f"TRAINYARD_CALLBACK_PREVIOUS_SECRETS names the current key id "
                f"{self.callback_key_id!r}: give the new secret a new TRAINYARD_CALLBACK_KEY_ID"
            )
        self.callback_keys  # noqa: B018 -- a malformed key id is a start-up error
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'trainyard.db'}"
        if not self.is_sqlite:
            for name, value, default in (
                ("TRAINYARD_INTERNAL_TOKEN", self.internal_token, EMBEDDED_INTERNAL_TOKEN),
                ("TRAINYARD_CALLBACK_SECRET", self.callback_secret, EMBEDDED_CALLBACK_SECRET),
            ):
                if value.get_secret_value() == default:
                    raise ValueError(
                        f"{name} must be set to a secret of your own when "
                        "TRAINYARD_DATABASE_URL is not SQLite (the embedded default is public)"
                    )
        if self.auth_mode == "local" and self.api_host not in LOOPBACK_HOSTS:
            raise ValueError(
                "TRAINYARD_AUTH_MODE=local (no sign-in) serves only a loopback address, but "
                f"TRAINYARD_API_HOST is {self.api_host}: set TRAINYARD_AUTH_MODE=oidc"
            )
        if self.auth_mode == "oidc":
            missing = [
                f"TRAINYARD_{name.upper()}"
                for name in ("oidc_issuer", "oidc_audience")
                if not getattr(self, name)
            ]
            if self.session_secret.get_secret_value() == EMBEDDED_SESSION_SECRET:
                missing.append("TRAINYARD_SESSION_SECRET (a secret of your own)")
            if missing:
                raise ValueError(f"TRAINYARD_AUTH_MODE=oidc needs {' and '.join(missing)}")
        return self

    @functools.cached_property
    def callback_keys(self) -> SigningKeys:
        """The keys callback tokens are signed and verified with (callbacks.tokens)."""
        return SigningKeys.of(
            self.callback_key_id,
            self.callback_secret.get_secret_value(),
            {
                key_id: key.get_secret_value()
                for key_id, key in self.callback_previous_secrets.items()
            },
        )

    @property
    def trusted_hosts(self) -> frozenset[str]:
        """Host names (no port) this API answers to."""
        hosts = {*LOOPBACK_HOSTS, *(host.lower() for host in self.allowed_hosts)}
        if self.public_url:
            hosts.add((urlsplit(self.public_url).hostname or "").lower())
        return frozenset(hosts - {""})

    @property
    def trusted_origins(self) -> frozenset[str]:
        """Origins (scheme://host[:port]) whose pages may change state: the public URL's and
        this API's own address under each trusted host name."""
        origins = {
            f"http://{f'[{host}]' if ':' in host else host}:{self.api_port}"
            for host in self.trusted_hosts
        }
        if self.public_url:
            parts = urlsplit(self.public_url)
            origins.add(f"{parts.scheme}://{parts.netloc}".lower())
        return frozenset(origins)

    @property
    def mlflow_link_base(self) -> str | None:
        """Where links to MLflow runs point: the UI URL; else the tracking URI only when it is
        a loopback one (the embedded tier: the browser runs on the same machine). An in-cluster
        tracking URI is no address for a browser, and links never point at MLflow unless the
        operator chose the address users open (an authenticating proxy: docs/operations.md)."""
        if self.mlflow_ui_url:
            return self.mlflow_ui_url.rstrip("/")
        tracking = self.mlflow_tracking_uri
        if tracking and urlsplit(tracking).hostname in LOOPBACK_HOSTS:
            return tracking.rstrip("/")
        return None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
