"""Which heartbeats are traced: 1 in N, counted where they arrive.

A long run sends thousands of heartbeats. The callbacks router asks `HEARTBEAT_REQUESTS`
before it makes a heartbeat's server span, so the N - 1 that are not traced cost one counter
step and nothing of OpenTelemetry's (no context extracted, no ids, no sampler call).
`observability.tracing` sets N from `trace_heartbeat_every` when it instruments the API.
"""

from __future__ import annotations

import itertools
import threading


class OneIn:
    """Says yes to the 1st call, the (N+1)th, the (2N+1)th...; never with N = 0."""

    def __init__(self, every: int) -> None:
        self._lock = threading.Lock()  # asked on the event loop and in worker threads
        self.sample_every(every)

    def sample_every(self, every: int) -> None:
        """From now on, 1 in `every` (counting again from the next call)."""
        with self._lock:
            self._every = every
            self._count = itertools.count()

    @property
    def every(self) -> int:
        return self._every

    def keep(self) -> bool:
        with self._lock:
            return self._every > 0 and next(self._count) % self._every == 0


# The heartbeat requests whose server span is made (and with it their ingest's spans).
HEARTBEAT_REQUESTS = OneIn(0)
