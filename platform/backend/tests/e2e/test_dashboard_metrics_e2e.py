"""The chart's dashboard and alerts against a real platform: the shared embedded platform (API,
worker with both metrics ports) runs a tiny training while a real Prometheus scrapes it under
the scrape jobs the chart's ServiceMonitors name, with the chart's alert rules loaded. Every
metric the dashboard and the alerts read is in the scrape, every dashboard query runs, every
rule evaluates."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from trainyard.cli.embedded import EmbeddedPlatform
from trainyard.datasets.synthetic_shapes import GeneratedDataset
from trainyard_testing.prometheus import PrometheusServer

from ..deploy.monitoring_files import (
    RULES_FILE,
    alert_rules,
    dashboard_queries,
    metric_names,
    queried_metrics,
)
from .helpers import TERMINAL, submit, wait_for

pytestmark = pytest.mark.xdist_group("e2e")

# Read by the dashboard, but with series only for jobs that hold GPUs (utilisation: while
# RUNNING; GPU-seconds: per project that ran any): the tiny training here runs on the CPU, so
# these are looked for among the families the API declares instead.
NEEDS_A_GPU = {"trainyard_run_gpu_utilization_ratio", "trainyard_project_gpu_seconds_total"}


def scrape_targets(platform: EmbeddedPlatform) -> dict[str, list[str]]:
    """Scrape job -> addresses of the shared platform (its worker has both metrics ports), as
    the chart's ServiceMonitors name the jobs."""
    env = platform.config.extra_env
    return {
        "trainyard-api": [urlsplit(platform.config.api_url).netloc],
        "trainyard-worker": [
            f"127.0.0.1:{env['TRAINYARD_METRICS_PORT']}",
            f"127.0.0.1:{env['TRAINYARD_TEMPORAL_METRICS_PORT']}",
        ],
    }


def declared_families(urls: list[str]) -> set[str]:
    """The metric families the /metrics answers at `urls` declare, samples or not."""
    families: set[str] = set()
    for url in urls:
        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 200, f"{url}: {answer.status_code}"
        for family in text_string_to_metric_families(answer.text):
            families.add(family.name)
            if family.type == "counter":
                # The parser drops a counter's _total from its family's name; queries keep it.
                families.add(f"{family.name}_total")
    return families


def test_the_dashboard_and_alerts_read_what_a_real_platform_exports(
    api: httpx.Client, platform: EmbeddedPlatform, shapes: GeneratedDataset
) -> None:
    targets = scrape_targets(platform)
    with PrometheusServer(targets, rule_files=[RULES_FILE]) as prometheus:
        job = submit(api, shapes.uri, epochs=1)
        ended = wait_for(api, job["id"], lambda j: j["state"] in TERMINAL)
        assert ended["state"] == "SUCCEEDED", ended
        # Scraped after the job ended: its end and its Temporal polls are in.
        prometheus.wait_for('trainyard_jobs_finished_total{job="trainyard-api"}', timeout=60)
        prometheus.wait_for('temporal_long_request{job="trainyard-worker"}', timeout=60)
        # The worker's own port is a target of its own, scraped on its own schedule: wait for
        # a scrape of it that saw the job end too.
        prometheus.wait_for('trainyard_attempts_ended_total{job="trainyard-worker"}', timeout=60)

        scraped = {
            sample["metric"]["__name__"]
            for sample in prometheus.query(
                'count by (__name__) ({__name__=~"trainyard_.+|temporal_.+"})'
            )
        }
        series = {
            name
            for query in dashboard_queries() + [r["expr"] for r in alert_rules()]
            for name in metric_names(query)
        }
        assert series - NEEDS_A_GPU - scraped == set()
        urls = [
            f"http://{address}/metrics" for addresses in targets.values() for address in addresses
        ]
        assert queried_metrics() - declared_families(urls) == set()

        # Every dashboard query runs (PrometheusServer.query fails the test on an error).
        for query in dashboard_queries():
            prometheus.query(query)
        # Every rule was evaluated on these series without an error.
        deadline = time.monotonic() + 30
        while True:
            groups = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"][
                "groups"
            ]
            rules = [rule for group in groups for rule in group["rules"]]
            # Never evaluated: Go's zero time.
            if rules and not any(r["lastEvaluation"].startswith("0001") for r in rules):
                break
            assert time.monotonic() < deadline, rules
            time.sleep(0.5)
        assert {rule["name"] for rule in rules} == {rule["alert"] for rule in alert_rules()}
        assert [
            (rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"
        ] == []
