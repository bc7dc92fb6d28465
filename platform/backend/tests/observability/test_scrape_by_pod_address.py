"""Prometheus in a cluster scrapes each API pod by its address: the Host header of a scrape is
"<pod IP>:<internal port>", which no allowed-hosts list can name in advance. The chart's
ServiceMonitor depends on /metrics answering it on the internal port."""

from __future__ import annotations

from pathlib import Path

import httpx

from ..test_internal_port import serve_on_two_ports


def test_metrics_on_the_internal_port_answer_a_scrape_addressed_to_the_pod(
    tmp_path: Path, temporal_address: str
) -> None:
    with serve_on_two_ports(tmp_path, temporal_address) as ports:
        port = ports.internal.rsplit(":", 1)[1]
        scraped = httpx.get(ports.internal + "/metrics", headers={"Host": f"10.244.1.7:{port}"})
        # The rest of the internal port keeps its Host check.
        internal = httpx.get(ports.internal + "/readyz", headers={"Host": f"10.244.1.7:{port}"})

    assert scraped.status_code == 200, scraped.text
    assert "trainyard_jobs" in scraped.text
    assert (internal.status_code, internal.json()["code"]) == (403, "untrusted_host")
