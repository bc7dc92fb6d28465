"""The environment a trainer hands the processes it starts for data-parallel training.

The rule every trainer follows (docs/trainer-contract.md, "Data-parallel training"): exactly one
process reports to the backend and talks to object storage, and no other process is given a
secret it does not need — not the callback token, not the storage keys, not any other token.
A secret in a worker's environment leaks into everything that worker starts or dumps (data
loader processes, crash reports, a framework's integrations), so it is withheld at the start.

* `worker_env` is the environment to start workers with: this one less every `is_secret`
  variable and the trace exporter's settings (plus the variables the caller adds): workers keep
  ``TRACEPARENT`` (their log lines name the trace) but export no span of their own, the
  attempt's ``trainer.attempt`` span is the reporting process's (trainer_kit/tracing.py).
* `withheld_from_environ` takes the secrets out of this process's own environment for a while,
  for a framework that starts its workers itself with the inherited environment (Ultralytics);
  the callback client and the storage client built before keep theirs in memory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping

from trainer_kit.tracing import EXPORTER_VARIABLE_PREFIX

# Credentials by name: the contract's token, the standard AWS keys, the hubs' tokens.
SECRET_VARIABLES = frozenset(
    {
        "TRAINYARD_CALLBACK_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "ULTRALYTICS_API_KEY",
    }
)
# And by shape, so a token the platform adds later (an internal one) is withheld without a change
# here: a worker that needs no secret loses nothing by the overreach.
_SECRET_SUFFIXES = (
    "_TOKEN",
    "_SECRET",
    "_SECRET_KEY",
    "_SECRET_ACCESS_KEY",
    "_PASSWORD",
    "_API_KEY",
    "_CREDENTIALS",
)
# The OTLP exporters' headers (OTEL_EXPORTER_OTLP_[TRACES_]HEADERS) often carry an API key.
_SECRET_HEADERS = (EXPORTER_VARIABLE_PREFIX, "_HEADERS")


def is_secret(name: str) -> bool:
    """Whether the variable ``name`` holds a credential no training worker may be given."""
    upper = name.upper()
    if upper.startswith(_SECRET_HEADERS[0]) and upper.endswith(_SECRET_HEADERS[1]):
        return True
    return upper in SECRET_VARIABLES or upper.endswith(_SECRET_SUFFIXES)


def secrets_in(environ: Mapping[str, str]) -> dict[str, str]:
    """The secret variables of ``environ``."""
    return {name: value for name, value in environ.items() if is_secret(name)}


def worker_env(environ: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``environ`` (default: this process's) without its secrets and the trace exporter's
    settings, plus ``extra``."""
    env = os.environ if environ is None else environ
    kept = {
        k: v
        for k, v in env.items()
        if not is_secret(k) and not k.upper().startswith(EXPORTER_VARIABLE_PREFIX)
    }
    return {**kept, **extra}


@contextlib.contextmanager
def withheld_from_environ(environ: MutableMapping[str, str] | None = None) -> Iterator[None]:
    """Remove the secrets from this process's environment while the block runs (the processes
    it starts inherit none), and put them back afterwards."""
    env = os.environ if environ is None else environ
    secrets = secrets_in(env)
    for name in secrets:
        del env[name]
    try:
        yield
    finally:
        env.update(secrets)
