"""Render charts/trainyard offline with Helm's own engine (helm-python-sdk) and index the
manifests, so the chart tests read like assertions about Kubernetes objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

# tests/deploy/ -> tests/ -> backend/ -> platform/ -> the repository root
REPO_ROOT = Path(__file__).resolve().parents[4]
CHART_DIR = REPO_ROOT / "charts" / "trainyard"
VALUES_DIR = Path(__file__).parent / "values"
# The example values files, plus the ones `make kind-up` installs with (charts/kind/).
KIND_DIR = REPO_ROOT / "charts" / "kind"
VALUES_PATHS = {path.stem: path for path in VALUES_DIR.glob("*.yaml")} | {
    "kind": KIND_DIR / "values.yaml"
}
VALUES_FILES = sorted(VALUES_PATHS)

RELEASE = "ty"
NAMESPACE = "trainyard"
FULLNAME = f"{RELEASE}-trainyard"
# The newest Kubernetes kubernetes-validate ships schemas for (and Helm lints against).
KUBE_VERSION = "1.37.0"
# Kueue's objects (kueue.enabled): custom resources, without schemas in kubernetes-validate.
KUEUE_API_VERSION = "kueue.x-k8s.io/v1beta2"

Manifest = dict[str, Any]


def values_file(name: str) -> dict[str, Any]:
    """One of the values files (values/<name>.yaml, or `kind`), by name."""
    loaded = yaml.safe_load(VALUES_PATHS[name].read_text())
    assert isinstance(loaded, dict), f"{VALUES_PATHS[name]} is not a mapping"
    return loaded


@dataclass(frozen=True)
class RenderedChart:
    """The chart rendered with one values file."""

    # The chart's defaults overlaid with the values file: what the templates saw.
    values: dict[str, Any]
    manifests: list[Manifest]
    app_version: str

    @property
    def training_namespace(self) -> str:
        """Where trainer Jobs run: training.namespace, else "<release>-training"."""
        return str(self.values["training"]["namespace"] or f"{RELEASE}-training")

    @property
    def training_namespaces(self) -> list[str]:
        """Every namespace trainer Jobs may run in: the default one, then the projects' (in the
        order of their slugs, as Helm ranges over a map), each once."""
        projects = sorted(self.values["training"]["projectNamespaces"].items())
        return list(dict.fromkeys([self.training_namespace, *(ns for _, ns in projects)]))

    def of_kind(self, kind: str) -> list[Manifest]:
        return [manifest for manifest in self.manifests if manifest["kind"] == kind]

    def find(self, kind: str, name: str) -> Manifest | None:
        found = [m for m in self.of_kind(kind) if m["metadata"]["name"] == name]
        assert len(found) <= 1, f"{len(found)} {kind}s named {name}"
        return found[0] if found else None

    def get(self, kind: str, name: str) -> Manifest:
        found = self.find(kind, name)
        assert found is not None, f"no {kind} named {name} among {self.names()}"
        return found

    def names(self) -> list[str]:
        return [f"{m['kind']}/{m['metadata']['name']}" for m in self.manifests]

    def deployment(self, component: str) -> Manifest:
        return self.get("Deployment", f"{FULLNAME}-{component}")

    def pod_spec(self, component: str) -> dict[str, Any]:
        spec: dict[str, Any] = self.deployment(component)["spec"]["template"]["spec"]
        return spec

    def container(self, component: str) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.pod_spec(component)["containers"]
        assert len(containers) == 1, f"{component} runs {len(containers)} containers"
        return containers[0]

    def config(self, component: str) -> dict[str, str]:
        data: dict[str, str] = self.get("ConfigMap", f"{FULLNAME}-{component}")["data"]
        return data


def render(chart: helm.Chart, values: dict[str, Any]) -> RenderedChart:
    """Render as `helm install ty charts/trainyard -n trainyard -f <values>` would."""
    templates = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    manifests: list[Manifest] = [
        document
        for path, text in sorted(templates.items())
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]
    return RenderedChart(
        values=chart.merge_values(values),
        manifests=manifests,
        app_version=str(chart.metadata["appVersion"]),
    )


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector selects an object carrying `labels`."""
    return all(labels.get(key) == value for key, value in selector.items())
