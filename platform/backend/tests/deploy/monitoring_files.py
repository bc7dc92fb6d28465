"""The chart's monitoring files (the alert rules, the Grafana dashboard) and the metric names
their PromQL reads, for the tests that hold them to the metrics the platform exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from trainyard_testing.prometheus import find_tool

from .rendered_chart import CHART_DIR, REPO_ROOT

RULES_FILE = CHART_DIR / "rules" / "trainyard-alerts.yaml"
DASHBOARD_FILE = CHART_DIR / "dashboards" / "trainyard.json"
PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "trainyard-alerts.test.yaml"
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"

# A row of the metrics table in docs/operations.md ("Metrics"): | `name` | type labels | ... |
_METRIC_ROW = re.compile(r"^\| `(trainyard_\w+)` \| (counter|gauge|histogram)\b", re.MULTILINE)
# Grafana's variables, replaced by what Grafana would put there, so the queries are PromQL.
_GRAFANA_VARIABLES = {
    "$__rate_interval": "2m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
}
_KEYWORDS = frozenset(
    {"and", "or", "unless", "atan2", "bool", "offset", "group_left", "group_right", "inf", "nan"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# An identifier not inside a number (1e6) and not a function or aggregation (followed by "(").
_NAME = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?!\s*\(|[\w:])")


def promtool() -> str:
    """promtool; the test fails naming Debian's `prometheus` package when it is missing."""
    return find_tool("promtool")


def rules() -> dict[str, Any]:
    loaded = yaml.safe_load(RULES_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def alert_rules(rule_file: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every alerting rule of a rules file (the shipped one by default)."""
    groups = (rule_file or rules())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def dashboard_queries(board: dict[str, Any] | None = None) -> list[str]:
    """The PromQL of every panel target and query variable, Grafana's variables filled in."""
    board = board if board is not None else dashboard()
    queries = [
        target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(metric, label) is Grafana's, not PromQL: its metric is the query.
            found = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["query"]["query"])
            assert found is not None, variable
            queries.append(found.group(1))
    for variable, value in _GRAFANA_VARIABLES.items():
        queries = [query.replace(variable, value) for query in queries]
    return queries


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (bare names; strings, label matchers,
    ranges, grouping labels, functions and keywords left out)."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _NAME.findall(text) if name not in _KEYWORDS}


def documented_metrics() -> dict[str, str]:
    """The platform's own metrics (name -> counter, gauge or histogram), as the operators'
    documentation lists them: the contract the dashboard and the alerts are held to."""
    return dict(_METRIC_ROW.findall(OPERATIONS_DOC.read_text()))


def exported_name(name: str) -> str:
    """The metric a series name belongs to: a histogram's _bucket/_sum/_count series are its."""
    histograms = {metric for metric, kind in documented_metrics().items() if kind == "histogram"}
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in histograms:
            return name.removesuffix(suffix)
    return name


def queried_metrics() -> set[str]:
    """Every metric the dashboard and the alerts read (a histogram by its own name)."""
    queries = dashboard_queries() + [rule["expr"] for rule in alert_rules()]
    return {exported_name(name) for query in queries for name in metric_names(query)}
