"""charts/trainyard's alerts under the real promtool: the rules file checks; each alert's unit
tests (promtool/trainyard-alerts.test.yaml) see it fire when it should and stay silent when it
should not, and fail once its threshold moves; the chart ships that very file, each threshold
replaced by its value (metrics.prometheusRule.thresholds)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from .monitoring_files import PROMTOOL_TESTS, RULES_FILE, alert_rules, promtool, rules
from .rendered_chart import CHART_DIR, render, values_file
from .test_helm_chart import overlay

pytestmark = pytest.mark.xdist_group("helm_chart")

RULES_ON: dict[str, Any] = {"metrics": {"prometheusRule": {"enabled": True}}}
# The number an alert's expression ends with, after a comparison: its threshold.
THRESHOLD = re.compile(r"(?:>|<|==|!=)=?\s*([0-9][0-9.]*)\s*$")


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def rendered_rules(chart: helm.Chart, values: dict[str, Any]) -> dict[str, Any]:
    """The spec of the PrometheusRule the chart renders with `values` (over minimal.yaml)."""
    rendered = render(chart, overlay(overlay(values_file("minimal"), RULES_ON), values))
    [rule] = rendered.of_kind("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    spec: dict[str, Any] = rule["spec"]
    return spec


def unit_tests_beside(rule_file: dict[str, Any], directory: Path) -> Path:
    """promtool/trainyard-alerts.test.yaml beside `rule_file`, in `directory`, each expected
    alert given its rule's description: fixed text, written once, in the rules file."""
    (directory / "trainyard-alerts.yaml").write_text(yaml.safe_dump(rule_file, sort_keys=False))
    descriptions = {rule["alert"]: rule["annotations"]["description"] for rule in alert_rules()}
    tests = yaml.safe_load(PROMTOOL_TESTS.read_text())
    for test in tests["tests"]:
        for case in test["alert_rule_test"]:
            for alert in case["exp_alerts"]:
                alert["exp_annotations"]["description"] = descriptions[case["alertname"]]
    path = directory / PROMTOOL_TESTS.name
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    return path


def thresholds(rule_file: dict[str, Any]) -> dict[str, str]:
    """alert -> the number its expression ends with, for the alerts that end with one."""
    found = {rule["alert"]: THRESHOLD.search(rule["expr"]) for rule in alert_rules(rule_file)}
    return {alert: match.group(1) for alert, match in found.items() if match}


def test_promtool_accepts_the_shipped_rules_file() -> None:
    checked = run_promtool("check", "rules", RULES_FILE)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_each_alert_fires_and_stays_silent_as_its_promtool_unit_tests_expect(
    tmp_path: Path,
) -> None:
    tested = run_promtool("test", "rules", unit_tests_beside(rules(), tmp_path))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_case_that_fires_and_one_that_stays_silent() -> None:
    tests = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for alert in [rule["alert"] for rule in alert_rules()]:
        outcomes = [bool(case["exp_alerts"]) for case in cases if case["alertname"] == alert]
        assert True in outcomes, f"no unit test sees {alert} fire"
        assert False in outcomes, f"no unit test sees {alert} stay silent"


def test_the_chart_ships_the_rules_file_with_the_default_thresholds(chart: helm.Chart) -> None:
    shipped = rendered_rules(chart, {})
    # Replacing the threshold drops a block scalar's final newline, and nothing else.
    for rule in alert_rules(shipped):
        rule["expr"] = rule["expr"].rstrip()
    expected = rules()
    for rule in alert_rules(expected):
        rule["expr"] = rule["expr"].rstrip()
    assert shipped == expected


def test_the_values_default_thresholds_are_the_rules_files() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    configured = values["metrics"]["prometheusRule"]["thresholds"]
    assert {alert: str(value) for alert, value in configured.items()} == thresholds(rules())


def test_thresholds_from_the_values_replace_the_files_and_promtool_accepts_them(
    chart: helm.Chart, tmp_path: Path
) -> None:
    changed = {
        "TrainyardRunningJobWithoutHeartbeats": 900,
        "TrainyardCallbackErrors": 0.2,
        "TrainyardQueueWaitHigh": 7200,
        "TrainyardReconcilerRemovals": 3,
    }
    shipped = rendered_rules(chart, {"metrics": {"prometheusRule": {"thresholds": changed}}})
    assert thresholds(shipped) == {alert: str(value) for alert, value in changed.items()}
    # Only the thresholds changed.
    originals = {rule["alert"]: rule for rule in alert_rules()}
    for rule in alert_rules(shipped):
        original = originals[rule["alert"]]
        assert THRESHOLD.sub("", rule["expr"]) == THRESHOLD.sub("", original["expr"])
        assert {**rule, "expr": ""} == {**original, "expr": ""}
    path = tmp_path / "rendered-alerts.yaml"
    path.write_text(yaml.safe_dump(shipped))
    checked = run_promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("alert", "moved"),
    [
        ("TrainyardRunningJobWithoutHeartbeats", 3600),
        ("TrainyardCallbackErrors", 0.5),
        ("TrainyardQueueWaitHigh", 7200),
        ("TrainyardReconcilerRemovals", 10),
    ],
)
def test_the_unit_tests_fail_once_an_alerts_threshold_moves(
    chart: helm.Chart, tmp_path: Path, alert: str, moved: float
) -> None:
    # The cases that see the alert fire stand on the shipped threshold: raised, it stays
    # silent there, and promtool says so for that alert.
    shipped = rendered_rules(chart, {"metrics": {"prometheusRule": {"thresholds": {alert: moved}}}})
    tested = run_promtool("test", "rules", unit_tests_beside(shipped, tmp_path))
    assert tested.returncode != 0
    failed = set(re.findall(r"alertname: (\w+),", tested.stdout + tested.stderr))
    assert failed == {alert}


def test_an_alert_that_does_not_end_with_its_threshold_fails_the_render(tmp_path: Path) -> None:
    copy = tmp_path / "trainyard"
    shutil.copytree(CHART_DIR, copy)
    file = copy / "rules" / RULES_FILE.name
    text = file.read_text()
    queue_wait = "      ) > 1800\n"
    assert text.count(queue_wait) == 1
    file.write_text(text.replace(queue_wait, "      ) > 1800 and on () vector(1)\n"))
    with helm.Chart.load(copy) as edited, pytest.raises(helm.HelmRenderError) as refused:
        render(edited, overlay(values_file("minimal"), RULES_ON))
    assert "the expression of TrainyardQueueWaitHigh does not end with its threshold" in str(
        refused.value
    )
