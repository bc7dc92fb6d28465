"""Reading sample values out of a /metrics text (the tests' side of the exposition)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One /metrics answer, parsed: `value(name, **labels)` is the sample's value (0 when
    the series does not exist yet, as a counter that never moved)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(
            value
            for sample, sample_labels, value in self._samples
            if sample == name and labels.items() <= sample_labels.items()
        )

    def series(self, name: str) -> list[dict[str, str]]:
        return [labels for sample, labels, _ in self._samples if sample == name]


async def scrape(api: httpx.AsyncClient) -> Scrape:
    answer = await api.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(answer.text)
