"""charts/trainyard's monitoring: the metrics ports (the API's internal port, the worker's two),
reachable by Prometheus only and never through the Ingress; the optional ServiceMonitors,
PrometheusRule (test_alert_rules.py runs it under promtool) and Grafana dashboard ConfigMap,
each rendered, linted and validated on its own and together."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from .monitoring_files import alert_rules, dashboard, dashboard_queries
from .rendered_chart import (
    CHART_DIR,
    FULLNAME,
    KUBE_VERSION,
    NAMESPACE,
    RenderedChart,
    render,
    selects,
    values_file,
)
from .test_helm_chart import SIGN_IN, overlay

pytestmark = pytest.mark.xdist_group("helm_chart")

# prometheus-operator's kinds: no Kubernetes schema for them (test_alert_rules.py has promtool
# check the PrometheusRule; the ServiceMonitors are checked against the Services below).
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
TOGGLES = ("serviceMonitor", "prometheusRule", "grafanaDashboard")
# What each toggle adds to a release.
ADDED = {
    "serviceMonitor": {f"ServiceMonitor/{FULLNAME}-backend", f"ServiceMonitor/{FULLNAME}-worker"},
    "prometheusRule": {f"PrometheusRule/{FULLNAME}"},
    "grafanaDashboard": {f"ConfigMap/{FULLNAME}-dashboard"},
}
# The scrape jobs the ServiceMonitors name, by component: the alerts and the dashboard read them.
SCRAPE_JOBS = {"backend": "trainyard-api", "worker": "trainyard-worker"}
METRICS_PORTS = ("metrics", "temporal-metrics")


def with_toggles(*toggles: str, **extra: Any) -> dict[str, Any]:
    """minimal.yaml with the named metrics.* toggles on (and `extra` under metrics)."""
    metrics: dict[str, Any] = {toggle: {"enabled": True} for toggle in toggles}
    return overlay(values_file("minimal"), {"metrics": overlay(metrics, extra)})


@pytest.fixture(scope="module")
def everything(chart: helm.Chart) -> RenderedChart:
    return render(chart, with_toggles(*TOGGLES))


def scraper_peer(values: dict[str, Any]) -> dict[str, Any]:
    scraper = values["metrics"]["scraper"]
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": scraper["namespaceLabels"]}}
    if scraper["podLabels"]:
        peer["podSelector"] = {"matchLabels": scraper["podLabels"]}
    return peer


def test_monitoring_objects_are_off_unless_asked_for(rendered: RenderedChart) -> None:
    names = set(rendered.names())
    assert not set().union(*ADDED.values()) & names
    assert f"Service/{FULLNAME}-worker-metrics" in names


@pytest.mark.parametrize("toggles", [*[(toggle,) for toggle in TOGGLES], TOGGLES])
def test_each_monitoring_toggle_renders_lints_and_validates(
    chart: helm.Chart, toggles: tuple[str, ...]
) -> None:
    values = with_toggles(*toggles)
    report = helm.lint(
        CHART_DIR, values, strict=True, namespace=NAMESPACE, kube_version=KUBE_VERSION
    )
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    rendered = render(chart, values)
    baseline = set(render(chart, values_file("minimal")).names())
    assert set(rendered.names()) - baseline == set().union(*(ADDED[t] for t in toggles))
    for manifest in rendered.manifests:
        if manifest["kind"] in OPERATOR_KINDS:
            assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
            assert manifest.keys() == {"apiVersion", "kind", "metadata", "spec"}
        else:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)


def test_service_monitors_scrape_every_metrics_port_under_the_jobs_the_alerts_read(
    everything: RenderedChart,
) -> None:
    services = everything.of_kind("Service")
    monitors = everything.of_kind("ServiceMonitor")
    assert len(monitors) == len(SCRAPE_JOBS)
    scraped: dict[str, set[int]] = {}
    for monitor in monitors:
        component = monitor["metadata"]["labels"]["app.kubernetes.io/component"]
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        selected = [
            s for s in services if selects(spec["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        container_ports = {
            port["name"]: port["containerPort"] for port in everything.container(component)["ports"]
        }
        for endpoint in spec["endpoints"]:
            assert endpoint["path"] == "/metrics"
            assert (
                endpoint["interval"] == everything.values["metrics"]["serviceMonitor"]["interval"]
            )
            assert endpoint["relabelings"] == [
                {"action": "replace", "targetLabel": "job", "replacement": SCRAPE_JOBS[component]}
            ]
            # Exactly one selected Service has the port; it leads to the container's port.
            [target] = [
                port["targetPort"]
                for service in selected
                for port in service["spec"]["ports"]
                if port["name"] == endpoint["port"]
            ]
            scraped.setdefault(component, set()).add(container_ports[target])
    backend = everything.config("backend")
    worker = everything.config("worker")
    assert scraped == {
        "backend": {int(backend["TRAINYARD_INTERNAL_PORT"])},
        "worker": {
            int(worker["TRAINYARD_METRICS_PORT"]),
            int(worker["TRAINYARD_TEMPORAL_METRICS_PORT"]),
        },
    }
    # The job names the alerts and the dashboard select are the ones scraped.
    queries = [rule["expr"] for rule in alert_rules()] + dashboard_queries()
    read = {job for query in queries for job in re.findall(r'\bjob="([^"]+)"', query)}
    assert read
    assert read <= set(SCRAPE_JOBS.values())


def test_service_monitors_carry_the_labels_prometheus_selects_them_by(chart: helm.Chart) -> None:
    rendered = render(
        chart, with_toggles("serviceMonitor", serviceMonitor={"labels": {"release": "kps"}})
    )
    for monitor in rendered.of_kind("ServiceMonitor"):
        assert monitor["metadata"]["labels"]["release"] == "kps"


def test_the_dashboard_config_map_carries_the_sidecar_label_and_the_dashboard(
    everything: RenderedChart, chart: helm.Chart
) -> None:
    config_map = everything.get("ConfigMap", f"{FULLNAME}-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == NAMESPACE
    [(key, text)] = config_map["data"].items()
    assert key.endswith(".json")
    assert json.loads(text) == dashboard()
    # Another Grafana: its own label, namespace and folder annotation.
    other = render(
        chart,
        overlay(
            with_toggles("grafanaDashboard"),
            {
                "metrics": {
                    "grafanaDashboard": {
                        "labels": {"grafana_dashboard": None, "dashboards": "trainyard"},
                        "annotations": {"grafana_folder": "Training"},
                        "namespace": "grafana",
                    }
                }
            },
        ),
    ).get("ConfigMap", f"{FULLNAME}-dashboard")
    metadata = other["metadata"]
    assert metadata["namespace"] == "grafana"
    assert metadata["labels"]["dashboards"] == "trainyard"
    assert "grafana_dashboard" not in metadata["labels"]
    assert metadata["annotations"] == {"grafana_folder": "Training"}


def test_metrics_ports_admit_only_prometheus_and_no_ingress_routes_to_them(
    rendered: RenderedChart,
) -> None:
    values = rendered.values
    peer = scraper_peer(values)
    if values["backend"]["networkPolicy"]["enabled"]:
        policy = rendered.get("NetworkPolicy", f"{FULLNAME}-backend")["spec"]
        scrape = policy["ingress"][-1]
        assert scrape == {"from": [peer], "ports": [{"port": "internal", "protocol": "TCP"}]}
    if values["worker"]["networkPolicy"]["enabled"]:
        policy = rendered.get("NetworkPolicy", f"{FULLNAME}-worker")["spec"]
        ports = [{"port": name, "protocol": "TCP"} for name in METRICS_PORTS]
        assert policy["ingress"] == [{"from": [peer], "ports": ports}]
    service = rendered.get("Service", f"{FULLNAME}-worker-metrics")["spec"]
    assert service["type"] == "ClusterIP"
    assert [port["targetPort"] for port in service["ports"]] == list(METRICS_PORTS)
    assert selects(
        service["selector"], rendered.deployment("worker")["spec"]["selector"]["matchLabels"]
    )
    # The Ingress reaches only Services whose ports lead to the API's public port.
    for ingress in rendered.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                routed = rendered.get("Service", path["backend"]["service"]["name"])
                assert [port["targetPort"] for port in routed["spec"]["ports"]] == ["http"]


def test_prometheus_without_pod_labels_is_admitted_by_its_namespace_alone(
    chart: helm.Chart,
) -> None:
    rendered = render(
        chart,
        overlay(
            values_file("minimal"),
            # Helm merges maps into the defaults: null removes a default key.
            {
                "metrics": {
                    "scraper": {
                        "namespaceLabels": {"kubernetes.io/metadata.name": None, "team": "sre"},
                        "podLabels": {"app.kubernetes.io/name": None},
                    }
                }
            },
        ),
    )
    peer = {"namespaceSelector": {"matchLabels": {"team": "sre"}}}
    worker = rendered.get("NetworkPolicy", f"{FULLNAME}-worker")["spec"]
    assert worker["ingress"][0]["from"] == [peer]
    backend = rendered.get("NetworkPolicy", f"{FULLNAME}-backend")["spec"]
    assert backend["ingress"][-1]["from"] == [peer]


def test_the_worker_serves_metrics_on_all_interfaces_and_both_processes_log_json(
    rendered: RenderedChart,
) -> None:
    worker = rendered.config("worker")
    metrics = rendered.values["metrics"]["worker"]
    assert worker["TRAINYARD_METRICS_HOST"] == "0.0.0.0"
    assert worker["TRAINYARD_METRICS_PORT"] == str(metrics["port"])
    assert worker["TRAINYARD_TEMPORAL_METRICS_PORT"] == str(metrics["temporalPort"])
    for component in ("backend", "worker"):
        assert rendered.config(component)["TRAINYARD_LOG_FORMAT"] == "json"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        pytest.param(
            {"metrics": {"prometheusRule": {"thresholds": {"TrainyardSomethingElse": 1}}}},
            "additional properties 'TrainyardSomethingElse' not allowed",
            id="unknown-alert",
        ),
        pytest.param(
            {"metrics": {"prometheusRule": {"thresholds": {"TrainyardCallbackErrors": 5}}}},
            "at '/metrics/prometheusRule/thresholds/TrainyardCallbackErrors'",
            id="ratio-over-one",
        ),
        pytest.param(
            {"metrics": {"grafanaDashboard": {"labels": {"grafana_dashboard": None}}}},
            "at '/metrics/grafanaDashboard/labels'",
            id="dashboard-without-label",
        ),
        pytest.param(
            {"metrics": {"scraper": {"namespaceLabels": {"kubernetes.io/metadata.name": None}}}},
            "at '/metrics/scraper/namespaceLabels'",
            id="any-namespace-scrapes",
        ),
        pytest.param(
            {"metrics": {"serviceMonitor": {"interval": "half a minute"}}},
            "at '/metrics/serviceMonitor/interval'",
            id="bad-interval",
        ),
    ],
)
def test_monitoring_values_the_schema_refuses_fail_the_render(
    chart: helm.Chart, values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(problem)):
        render(chart, overlay(SIGN_IN, values))


def test_one_port_for_both_worker_metrics_fails_the_render(chart: helm.Chart) -> None:
    values = {"metrics": {"worker": {"port": 9464, "temporalPort": 9464}}}
    with pytest.raises(
        helm.HelmRenderError, match=re.escape("metrics.worker.port and metrics.worker.temporalPort")
    ):
        render(chart, overlay(SIGN_IN, values))


def test_traces_go_where_tracing_values_say_and_trainers_may_reach_the_collector(
    chart: helm.Chart,
) -> None:
    collector = {
        "to": [{"namespaceSelector": {"matchLabels": {"name": "observability"}}}],
        "ports": [{"port": 4318, "protocol": "TCP"}],
    }
    tracing = {
        "otlpEndpoint": "http://otel-collector.observability:4318",
        "env": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"},
        "heartbeatEvery": 50,
        "trainerEgress": [collector],
    }
    untraced = render(chart, values_file("minimal"))
    traced = render(chart, overlay(values_file("minimal"), {"tracing": tracing}))

    for component in ("backend", "worker"):
        config = traced.get("ConfigMap", f"{FULLNAME}-{component}")["data"]
        assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == tracing["otlpEndpoint"]
        assert config["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        # Unset by default: no span leaves the pods.
        default = untraced.get("ConfigMap", f"{FULLNAME}-{component}")["data"]
        assert not [name for name in default if name.startswith("OTEL_")]
    backend = traced.get("ConfigMap", f"{FULLNAME}-backend")["data"]
    assert backend["TRAINYARD_TRACE_HEARTBEAT_EVERY"] == "50"
    trainer = traced.get("NetworkPolicy", f"{FULLNAME}-trainer")["spec"]["egress"]
    assert trainer[-1] == collector
    assert collector not in untraced.get("NetworkPolicy", f"{FULLNAME}-trainer")["spec"]["egress"]


@pytest.mark.parametrize(
    ("tracing", "problem"),
    [
        ({"otlpEndpoint": "collector:4318"}, "at '/tracing/otlpEndpoint'"),
        ({"env": {"PATH": "/x"}}, "'PATH' does not match pattern '^OTEL_"),
        ({"heartbeatEvery": -1}, "at '/tracing/heartbeatEvery'"),
    ],
    ids=["endpoint-without-scheme", "not-an-otel-variable", "negative-sampling"],
)
def test_the_schema_refuses_bad_tracing_values(
    chart: helm.Chart, tracing: dict[str, Any], problem: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(problem)):
        render(chart, overlay(SIGN_IN, {"tracing": tracing}))
