"""The chart, and its renderings with each values file, shared by a test module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import helm_python as helm
import pytest

from .rendered_chart import CHART_DIR, VALUES_FILES, RenderedChart, render, values_file


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="module", params=VALUES_FILES)
def rendered(request: pytest.FixtureRequest, chart: helm.Chart) -> RenderedChart:
    """The chart rendered with each file in values/ in turn."""
    return render(chart, values_file(request.param))


@pytest.fixture(scope="module")
def production(chart: helm.Chart) -> RenderedChart:
    return render(chart, values_file("production"))


@pytest.fixture(scope="module")
def project_namespaces(chart: helm.Chart) -> RenderedChart:
    return render(chart, values_file("project-namespaces"))


@pytest.fixture(scope="module")
def callbacks_via_ingress(chart: helm.Chart) -> RenderedChart:
    return render(chart, values_file("callbacks-via-ingress"))
