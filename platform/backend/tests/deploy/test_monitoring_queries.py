"""The PromQL of the chart's dashboard and alerts: it parses (promtool), it reads only metrics the
platform exports (those docs/operations.md lists, and the Temporal SDK's;
tests/e2e/test_dashboard_metrics_e2e.py finds each one in a real scrape), and the dashboard has
the panels an operator looks for."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from .monitoring_files import (
    dashboard,
    dashboard_queries,
    documented_metrics,
    metric_names,
    promtool,
    queried_metrics,
)

pytestmark = pytest.mark.xdist_group("helm_chart")

# The Temporal SDK's (its runtime's Prometheus exporter; counters carry no _total): the ones
# the dashboard and the alerts read, as a real worker exports them (tests/observability/).
TEMPORAL_SDK_METRICS = {
    "temporal_num_pollers",
    "temporal_worker_task_slots_available",
    "temporal_long_request",
}
# What an operator opens the dashboard for (issue 21), by panel title.
PANELS = {
    "Jobs by state",
    "Queue wait",
    "Callback ingest latency",
    "Callbacks by kind and status",
    "Stream clients",
    "Relay latency",
    "GPU utilisation by project",
    "GPU-hours by project",
    "Failures by reason",
    "Temporal pollers",
}


def test_metric_names_finds_the_selected_metrics_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (kind, le) (rate(a_seconds_bucket{code=~"5..", '
        'job="x"}[5m]))) > on () group_left b_total * 1e6 and sum(c:ratio offset 1h) by (le)'
        ' or absent(d{e="f(g)"})'
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c:ratio", "d"}


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses recording rules' expressions: one per query, Grafana's variables filled.
    queries = dashboard_queries()
    recorded = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(recorded))
    checked = subprocess.run(
        [promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(queries)} rules found" in checked.stdout


def test_the_dashboard_and_alerts_read_only_metrics_the_platform_exports() -> None:
    documented = documented_metrics()
    # The contract's names, as docs/operations.md lists them (a changed table fails here).
    assert len(documented) >= 17
    assert documented["trainyard_job_queue_wait_seconds"] == "histogram"
    queried = queried_metrics()
    assert queried - documented.keys() - TEMPORAL_SDK_METRICS == set()
    # Each Temporal name is one the worker's runtime exports, not a guess.
    assert {name for name in queried if name.startswith("temporal_")} == TEMPORAL_SDK_METRICS


def test_the_dashboard_has_the_panels_operators_look_for() -> None:
    board = dashboard()
    panels = [panel for panel in board["panels"] if panel["type"] != "row"]
    assert {panel["title"] for panel in panels} >= PANELS
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    # Every panel asks the data source the viewer picked, and says what it shows.
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"]
        assert panel["targets"]
    [datasource] = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
