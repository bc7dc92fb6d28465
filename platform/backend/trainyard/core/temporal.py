"""A lazy connection to Temporal.

The backend must start (and answer /healthz, list jobs, take callbacks) while Temporal is
still starting or briefly down, so the client is made on first use and a failed attempt is
retried on the next use instead of being remembered.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError

from trainyard.core.errors import ServiceUnavailable
from trainyard_workflows.telemetry.tracing import temporal_interceptors


class TemporalUnavailable(ServiceUnavailable):
    code = "temporal_unavailable"


class TemporalGateway:
    """Hands out one shared `Client`, connecting (again) when there is none yet."""

    def __init__(self, address: str, namespace: str, rpc_timeout_s: float) -> None:
        self.address = address
        self.namespace = namespace
        self.rpc_timeout = timedelta(seconds=rpc_timeout_s)
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        """The connected client; raises TemporalUnavailable (503) if Temporal cannot be reached."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await Client.connect(
                        self.address,
                        namespace=self.namespace,
                        connect_timeout=self.rpc_timeout,
                        # Workflow starts carry the caller's trace (the job's submit span).
                        interceptors=temporal_interceptors(),
                    )
                except (RuntimeError, OSError, RPCError) as exc:
                    raise self.unavailable(exc) from exc
            return self._client

    async def check(self) -> None:
        """Raise TemporalUnavailable unless the server answers a health check now."""
        client = await self.client()
        try:
            healthy = await client.service_client.check_health(timeout=self.rpc_timeout)
        except (RuntimeError, OSError, RPCError) as exc:
            raise self.unavailable(exc) from exc
        if not healthy:
            raise self.unavailable(RuntimeError("the workflow service reports it is not serving"))

    def unavailable(self, cause: BaseException) -> TemporalUnavailable:
        return TemporalUnavailable(
            f"Temporal is unreachable at {self.address} (namespace {self.namespace!r}): {cause}. "
            "Start it (`trainyard up` starts a dev server) or fix TRAINYARD_TEMPORAL_ADDRESS."
        )
