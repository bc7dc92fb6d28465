"""A real tiny training on the embedded platform, scraped by a real Prometheus: the job's
series, read back through PromQL, from the API's /metrics and the worker's (and the Temporal
SDK's) endpoints; promtool lints both of ours after the run."""

from __future__ import annotations

import httpx
import pytest

from trainyard.cli.embedded import EmbeddedPlatform
from trainyard.datasets.synthetic_shapes import GeneratedDataset
from trainyard_testing.prometheus import PrometheusServer, promtool_check_metrics, values

from ..observability.metrics_text import Scrape
from .helpers import read_stream, states_of, submit

pytestmark = pytest.mark.xdist_group("e2e")

# Long enough for a scrape after the job's end, whatever the scrape's phase.
SCRAPED_S = 30


def _counter(scrape: Scrape, name: str, **labels: str) -> float:
    return scrape.value(name, **labels)


def test_a_tiny_training_shows_in_prometheus_through_the_api_and_the_worker(
    api: httpx.Client, platform: EmbeddedPlatform, shapes: GeneratedDataset
) -> None:
    env = platform.config.extra_env
    worker = f"127.0.0.1:{env['TRAINYARD_METRICS_PORT']}"
    temporal_sdk = f"127.0.0.1:{env['TRAINYARD_TEMPORAL_METRICS_PORT']}"
    api_target = platform.config.api_url.removeprefix("http://")
    # Other e2e tests share the platform: this job's series are what moved after `before`.
    before = Scrape(api.get("/metrics").text)
    worker_before = Scrape(httpx.get(f"http://{worker}/metrics").text)

    with PrometheusServer(
        {"trainyard-api": [api_target], "trainyard-worker": [worker], "temporal": [temporal_sdk]}
    ) as prometheus:
        job = submit(api, shapes.uri, epochs=1)
        events, _ = read_stream(api, job["id"])  # followed live: the relay is measured too
        assert states_of(events)[-1] == "SUCCEEDED"

        def at_least(query: str, value: float) -> None:
            prometheus.wait_for(
                query, SCRAPED_S, until=lambda result: bool(result) and values(result)[0] >= value
            )

        submitted = _counter(before, "trainyard_job_submissions_total", framework="ultralytics")
        at_least('trainyard_job_submissions_total{framework="ultralytics"}', submitted + 1)
        at_least('max by () (trainyard_jobs{state="SUCCEEDED",framework="ultralytics"})', 1)
        waits = _counter(before, "trainyard_job_queue_wait_seconds_count", framework="ultralytics")
        at_least('trainyard_job_queue_wait_seconds_count{framework="ultralytics"}', waits + 1)
        finished = _counter(
            before, "trainyard_jobs_finished_total", state="SUCCEEDED", reason="succeeded"
        )
        at_least(
            'sum(trainyard_jobs_finished_total{state="SUCCEEDED",reason="succeeded"})',
            finished + 1,
        )
        beats = _counter(before, "trainyard_callbacks_total", kind="heartbeat", code="202")
        at_least('trainyard_callbacks_total{kind="heartbeat",code="202"}', beats + 1)
        done = _counter(before, "trainyard_callbacks_total", kind="done", code="202")
        at_least('trainyard_callbacks_total{kind="done",code="202"}', done + 1)
        relayed = _counter(before, "trainyard_stream_relay_latency_seconds_count")
        at_least("trainyard_stream_relay_latency_seconds_count", relayed + 1)

        launches = _counter(worker_before, "trainyard_trainer_launch_duration_seconds_count")
        at_least(
            'trainyard_trainer_launch_duration_seconds_count{launcher="subprocess"}',
            launches + 1,
        )
        validated = _counter(
            worker_before, "trainyard_dataset_validation_duration_seconds_count", outcome="ok"
        )
        at_least(
            'sum(trainyard_dataset_validation_duration_seconds_count{outcome="ok"})',
            validated + 1,
        )
        ended = _counter(
            worker_before, "trainyard_attempts_ended_total", outcome="final", reason="succeeded"
        )
        at_least('trainyard_attempts_ended_total{outcome="final",reason="succeeded"}', ended + 1)
        # The Temporal SDK's own metrics, from the worker's runtime.
        at_least('count({job="temporal", __name__=~"temporal_.+"})', 1)
        assert values(prometheus.query('up{job=~"trainyard-api|trainyard-worker"}')) == [1, 1]

    promtool_check_metrics(api.get("/metrics").text)
    promtool_check_metrics(httpx.get(f"http://{worker}/metrics").text)
