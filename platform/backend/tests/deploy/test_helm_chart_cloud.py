"""charts/trainyard: the values a managed cloud tier needs (terraform/examples/aws feeds them): a
Redis URL with its password from a Secret, IRSA annotations on the trainer ServiceAccounts, and
the production tier's required keys named once in values.schema.json. Fixtures: conftest.py."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import helm_python as helm
import pytest
import yaml

from trainyard.core.settings import BackendSettings

from .rendered_chart import CHART_DIR, FULLNAME, RenderedChart, render
from .test_helm_chart import SIGN_IN, overlay

pytestmark = pytest.mark.xdist_group("helm_chart")

REDIS_SECRET = {"name": "trainyard-redis", "key": "url"}
ROLE = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/trainyard-trainer"}


def production_keys() -> list[str]:
    """The dotted paths values.schema.json lists under x-trainyard-production."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    keys: list[str] = schema["x-trainyard-production"]
    return keys


def backend_env(rendered: RenderedChart) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in rendered.container("backend")["env"]}


def test_a_redis_secret_replaces_the_plain_url_in_the_apis_config(
    chart: helm.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = render(chart, overlay(SIGN_IN, {"secrets": {"redisUrl": REDIS_SECRET}}))
    # The URL (with the auth token) reaches the API from the Secret, and the config holds no
    # second, password-less one that could win.
    assert "TRAINYARD_REDIS_URL" not in rendered.config("backend")
    entry = backend_env(rendered)["TRAINYARD_REDIS_URL"]
    assert entry == {"name": "TRAINYARD_REDIS_URL", "valueFrom": {"secretKeyRef": REDIS_SECRET}}
    # The worker never talks to Redis: it gets neither.
    worker_env = {entry["name"] for entry in rendered.container("worker")["env"]}
    assert "TRAINYARD_REDIS_URL" not in worker_env | rendered.config("worker").keys()
    # The API starts with it: the variable is one BackendSettings reads.
    with monkeypatch.context() as patch:
        for key in [key for key in os.environ if key.startswith("TRAINYARD_")]:
            patch.delenv(key)
        for key, value in rendered.config("backend").items():
            patch.setenv(key, value)
        patch.setenv("TRAINYARD_DATABASE_URL", "postgresql+asyncpg://trainyard@db:5432/trainyard")
        for name in backend_env(rendered).keys() - {"TRAINYARD_DATABASE_URL"}:
            patch.setenv(name, "rediss://:token@redis:6379/0" if "REDIS" in name else "stand-in")
        settings = BackendSettings()
    assert settings.redis_url == "rediss://:token@redis:6379/0"


def test_without_a_redis_secret_the_plain_url_stays_in_the_config(chart: helm.Chart) -> None:
    rendered = render(chart, SIGN_IN)
    assert rendered.config("backend")["TRAINYARD_REDIS_URL"] == rendered.values["redis"]["url"]
    assert "TRAINYARD_REDIS_URL" not in backend_env(rendered)


def test_trainer_service_accounts_in_every_training_namespace_carry_the_annotations(
    chart: helm.Chart,
) -> None:
    values = {
        "training": {
            "projectNamespaces": {"vision": "trainyard-vision"},
            "serviceAccount": {"annotations": ROLE},
        }
    }
    rendered = render(chart, overlay(SIGN_IN, values))
    trainers = [
        account
        for account in rendered.of_kind("ServiceAccount")
        if account["metadata"]["name"] == f"{FULLNAME}-trainer"
    ]
    assert [sa["metadata"]["namespace"] for sa in trainers] == rendered.training_namespaces
    assert len(trainers) == 2
    for account in trainers:
        assert account["metadata"]["annotations"] == ROLE
        # IRSA's webhook projects its own token: the account's API token stays unmounted.
        assert account["automountServiceAccountToken"] is False
    # The platform's own accounts keep their own annotations (none here).
    for component in ("backend", "worker"):
        account = rendered.get("ServiceAccount", f"{FULLNAME}-{component}")
        assert "annotations" not in account["metadata"]


def test_trainer_service_accounts_carry_no_annotations_by_default(chart: helm.Chart) -> None:
    rendered = render(chart, SIGN_IN)
    trainers = [
        sa
        for sa in rendered.of_kind("ServiceAccount")
        if sa["metadata"]["name"].endswith("-trainer")
    ]
    assert trainers != []
    assert all("annotations" not in sa["metadata"] for sa in trainers)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        pytest.param(
            {"secrets": {"redisUrl": {"name": "trainyard-redis", "key": ""}}},
            "at '/secrets/redisUrl/key'",
            id="redis-secret-without-key",
        ),
        pytest.param(
            {"secrets": {"redisUrl": {"name": "r", "key": "url", "value": "rediss://:t@r"}}},
            "at '/secrets/redisUrl': additional properties 'value' not allowed",
            id="literal-redis-url",
        ),
        pytest.param(
            {"training": {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": 1}}}},
            "at '/training/serviceAccount/annotations/eks.amazonaws.com~1role-arn'",
            id="non-string-annotation",
        ),
    ],
)
def test_the_schema_refuses_bad_cloud_values(
    chart: helm.Chart, values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(problem)):
        render(chart, overlay(SIGN_IN, values))


def schema_node(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The schema of one dotted values path, following object properties and $refs."""
    node = schema
    for part in path.split("."):
        node = node["properties"][part]
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].removeprefix("#/definitions/")]
    return node


@pytest.mark.parametrize("path", production_keys())
def test_each_production_key_is_a_value_of_the_chart(path: str) -> None:
    # A renamed or removed value must not leave a stale entry behind in the production list.
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    node: Any = defaults
    for part in path.split("."):
        assert isinstance(node, dict), f"{path}: {part} is below a non-mapping"
        assert part in node, f"{path}: no default in values.yaml"
        node = node[part]
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert schema_node(schema, path), path


def test_the_production_list_names_each_key_once_and_no_key_inside_another() -> None:
    keys = production_keys()
    assert len(keys) == len(set(keys))
    nested = [(a, b) for a in keys for b in keys if b.startswith(f"{a}.")]
    assert nested == []


def test_worker_capacity_values_reach_the_workers_settings(chart: helm.Chart) -> None:
    """GPU node groups that scale to zero leave nothing to discover: the chart hands the worker
    what they may grow to; unset, the worker discovers the nodes (no variable at all)."""
    values = overlay(SIGN_IN, {"worker": {"capacity": {"gpus": 12, "gpusPerNode": 4}}})
    config = render(chart, values).config("worker")
    assert (config["TRAINYARD_GPUS"], config["TRAINYARD_GPUS_PER_NODE"]) == ("12", "4")

    default = render(chart, SIGN_IN).config("worker")
    assert "TRAINYARD_GPUS" not in default
    assert "TRAINYARD_GPUS_PER_NODE" not in default
