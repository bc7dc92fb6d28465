"""The environment of each process of the embedded tier, built from an allow-list.

A child is given the few variables any program needs (PATH, HOME, the locale, ...) and those of
its own configuration, never a copy of the shell's environment: a secret the user exported for
something else (a cloud key, an LLM key, the OIDC client secret) or one the platform created
(`<data_dir>/secrets.json`) reaches only the processes that use it (docs/operations.md, "Which
process holds which secret"):

* the API: everything of the platform's configuration (`TRAINYARD_*`, storage, MLflow client);
  it issues callback tokens and signs sessions, so it holds every platform secret;
* the worker: its own settings (`WorkerSettings`, `StorageSettings`) and the storage and MLflow
  client variables; the internal token, not the callback signing secret (the API issues the
  callback tokens: internal/service.py `start_attempt`);
* the MLflow and Temporal servers: nothing of the platform. The embedded MLflow stores its
  artifacts in a local folder, so it needs no storage credentials either.

The API and the worker also get the user's `OTEL_*` variables (the worker hands the exporter's
on to its trainers), and under them the embedded trace store's (cli/trace_store.py): where a
user configured trace export, theirs wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from trainyard_workflows.settings import WorkerSettings
from trainyard_workflows.storage import StorageSettings

# What any program expects to find: where programs are, who and where the user is, the locale,
# the time zone, the temporary folder.
BASE_VARIABLES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM"}
)
BASE_PREFIXES = ("LC_",)
# How a Python process reaches other hosts (the worker: Temporal, MLflow, S3; the API: an IdP,
# an LLM) and how the interpreter is set up. Not given to the two servers, which only listen.
CLIENT_VARIABLES = frozenset(
    {
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONWARNINGS",
        "VIRTUAL_ENV",
    }
)
# A storage client (boto3) and an MLflow client read these.
STORAGE_AND_TRACKING_PREFIXES = ("AWS_", "MLFLOW_")
# OpenTelemetry's standard configuration (where spans go, sampling, resource attributes).
TELEMETRY_PREFIX = "OTEL_"

WORKER_VARIABLES = frozenset(
    f"TRAINYARD_{name.upper()}"
    for settings in (WorkerSettings, StorageSettings)
    for name in settings.model_fields
)


def _picked(
    environ: Mapping[str, str], names: Iterable[str], prefixes: tuple[str, ...] = ()
) -> dict[str, str]:
    allowed = frozenset(names)
    return {
        name: value
        for name, value in environ.items()
        if name in allowed or (prefixes and name.startswith(prefixes))
    }


def base_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `environ` that any program needs and that hold no secret."""
    return _picked(environ, BASE_VARIABLES, BASE_PREFIXES)


def api_env(
    environ: Mapping[str, str], platform: Mapping[str, str], traces: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The API's environment: the base, `traces` (the embedded trace store's variables,
    cli/trace_store.py), client set-up, every `TRAINYARD_*` and `OTEL_*` variable (the
    platform's whole configuration), the storage and MLflow clients', then `platform`."""
    return {
        **base_env(environ),
        **(traces or {}),
        **_picked(
            environ,
            CLIENT_VARIABLES,
            ("TRAINYARD_", TELEMETRY_PREFIX, *STORAGE_AND_TRACKING_PREFIXES),
        ),
        **platform,
        "PYTHONUNBUFFERED": "1",
    }


def worker_env(
    environ: Mapping[str, str], platform: Mapping[str, str], traces: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The worker's environment: the base, the `OTEL_*` ones of `traces`, client set-up, the
    storage, MLflow and OpenTelemetry clients', and of `environ` and `platform` only the
    `TRAINYARD_*` variables its settings read."""
    return {
        **base_env(environ),
        **_picked(traces or {}, (), (TELEMETRY_PREFIX,)),
        **_picked(
            environ,
            CLIENT_VARIABLES | WORKER_VARIABLES,
            (TELEMETRY_PREFIX, *STORAGE_AND_TRACKING_PREFIXES),
        ),
        **_picked(platform, WORKER_VARIABLES),
        "PYTHONUNBUFFERED": "1",
    }
