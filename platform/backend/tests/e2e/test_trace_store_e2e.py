"""A job's one trace, read back from where the embedded tier keeps traces: the local MLflow
server (decision 015). The real `trainyard up` processes export there by themselves (the API,
the worker, and the trainer it launches), and the job's `trace_url` opens that trace."""

from __future__ import annotations

import time

import httpx
import pytest

from trainyard.cli.embedded import EmbeddedPlatform
from trainyard.datasets.synthetic_shapes import GeneratedDataset
from trainyard_testing.mlflow_traces import StoredSpan, stored_spans

from .helpers import TERMINAL, submit, wait_for

pytestmark = pytest.mark.xdist_group("e2e")

# One span of each process and hop: the API, Temporal, the worker's launcher, the trainer.
HOPS = (
    "POST /v1/jobs",
    "StartWorkflow:TrainingWorkflow",
    "RunActivity:validate_dataset",
    "RunActivity:launch_trainer",
    "launch trainer",
    "trainer.attempt",
    "callback done",
    "POST /v1/jobs/{job_id}/done",
)


def _one(spans: list[StoredSpan], name: str) -> StoredSpan:
    matching = [span for span in spans if span.name == name]
    assert len(matching) == 1, (name, sorted(span.name for span in spans))
    return matching[0]


def test_a_jobs_trace_reaches_the_local_mlflow_from_every_process(
    api: httpx.Client, platform: EmbeddedPlatform, shapes: GeneratedDataset
) -> None:
    job = submit(api, shapes.uri, epochs=1)
    ended = wait_for(api, job["id"], lambda j: j["state"] in TERMINAL)
    assert ended["state"] == "SUCCEEDED", ended
    trace_id = ended["trace_id"]
    assert trace_id is not None
    assert ended["trace_url"].startswith(platform.config.mlflow_url)
    assert f"tr-{trace_id}" in ended["trace_url"]

    wanted = set(HOPS)
    deadline = time.monotonic() + 60  # the trainer's spans come at its exit, others in batches
    while True:
        spans = stored_spans(platform.config.mlflow_url, trace_id, at_least=len(HOPS))
        missing = wanted - {span.name for span in spans}
        if not missing:
            break
        assert time.monotonic() < deadline, f"not in MLflow: {sorted(missing)}"
        time.sleep(1)

    attempt = _one(spans, "trainer.attempt")
    assert attempt.parent_id == _one(spans, "launch trainer").span_id
    assert _one(spans, "callback done").parent_id == attempt.span_id
    assert _one(spans, "POST /v1/jobs/{job_id}/done").parent_id == (
        _one(spans, "callback done").span_id
    )
