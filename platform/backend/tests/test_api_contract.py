"""The public API is exactly what its OpenAPI documents: schemathesis sends generated requests
(valid and invalid) to every operation, on both tiers, and checks that no answer is a 5xx, that
every status is documented and that every body matches its documented schema.

The app is served as the WebSocket tests serve it (uvicorn in a thread, its own event loop,
lifespan run and ended) because schemathesis calls it synchronously; one server per tier serves
every operation's cases. Submissions reach the session's Temporal dev server on a task queue no
worker polls, as in the other API tests, so nothing is trained. The job stream is a WebSocket
and so not in the OpenAPI (test_stream.py covers it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from temporalio.testing import WorkflowEnvironment

from trainyard.main import create_app

from .conftest import (
    REDIS_URL,
    LiveServer,
    empty_postgres_database,
    make_settings,
    run_aside,
    run_server,
)

# Generated cases per operation and phase (explicit examples, boundary coverage, then random
# fuzzing): enough to reach every bound, few enough for about a minute on 2 cores.
_EXAMPLES_PER_OPERATION = 20
_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# The OpenAPI as `GET /openapi.json` serves it; building the app reads nothing and starts
# nothing (its lifespan does), so the document can be read at collection time.
_OPENAPI = create_app(
    make_settings(Path("/nonexistent/trainyard-contract"), "127.0.0.1:7233")
).openapi()
schema = schemathesis.openapi.from_dict(_OPENAPI)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def contract_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    temporal_env: WorkflowEnvironment,
) -> Iterator[LiveServer]:
    """The app on one tier, served for every operation's cases."""
    data_dir = tmp_path_factory.mktemp("contract") / "data"
    tier: dict[str, object] = {}
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database")
        run_aside(empty_postgres_database(url))
        tier = {"database_url": url, "redis_url": REDIS_URL}
    address = temporal_env.client.service_client.config.target_host
    with run_server(create_app(make_settings(data_dir, address, **tier))) as server:
        yield server


@schema.parametrize()
@settings(
    max_examples=_EXAMPLES_PER_OPERATION,
    deadline=None,
    # One server serves every case of a tier: that is what the fixture is for.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], contract_server: LiveServer
) -> None:
    case.call_and_validate(base_url=contract_server.http_url, checks=_CHECKS, timeout=30)


def test_every_error_answer_is_documented_with_the_one_error_body() -> None:
    """Generated clients parse what is sent: `ErrorBody`, not FastAPI's validation list."""
    schemas = _OPENAPI["components"]["schemas"]
    documented = {
        (method, path, status): response["content"]["application/json"]["schema"]
        for path, operations in _OPENAPI["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if status >= "400"
    }

    assert "HTTPValidationError" not in schemas
    assert set(schemas["ErrorBody"]["required"]) == {"detail", "code"}
    assert documented, "no error answer is documented"
    assert {
        key: schema
        for key, schema in documented.items()
        if schema != {"$ref": "#/components/schemas/ErrorBody"}
    } == {}
    assert ("get", "/v1/jobs", "422") in documented
