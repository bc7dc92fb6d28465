"""GET /metrics: the Prometheus text exposition of this API process.

Served on the internal port when TRAINYARD_INTERNAL_PORT is set (never on the public port,
core/listeners.py), on the single loopback port otherwise; like the probes it asks for no
credentials: what may reach that port decides who may scrape it.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import REGISTRY, CollectorRegistry, Metric, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from trainyard.core.listeners import METRICS_PATH
from trainyard.observability.scrape import database_metrics
from trainyard.runtime import runtime_of

router = APIRouter(tags=["operations"])


class _Snapshot(Collector):
    """Families already read (the database is asked asynchronously, collectors cannot be)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


@router.get(METRICS_PATH, response_class=Response)
async def metrics(request: Request) -> Response:
    """This process's metrics and the platform's, read from the database now."""
    async with runtime_of(request).db.session() as session:
        families = await database_metrics(session)
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_Snapshot(families))
    body = generate_latest(REGISTRY) + generate_latest(snapshot)
    # The classic text format that generate_latest writes, which every Prometheus reads.
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
