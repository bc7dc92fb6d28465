"""Heartbeats, events and the keep-alive thread's life cycle: what every trainer's progress
reporter shares.

`HeartbeatReporter` keeps the attempt's progress (completed epochs of the total, the last
epoch's metrics, the ETA) and sends it: `HeartbeatReporter.heartbeat` and
`HeartbeatReporter.event` queue the callback with the values of that moment on the attempt's
`Outbox` (trainer_kit/outbox.py), whose thread delivers them in order, so training never waits
on the backend: epoch heartbeats (with metrics) and events are never dropped, keep-alives
coalesce (the newest pending one is kept) and ``log`` events are dropped, and counted, while
the queue is full. A refusal (401/403/409) stops training at its next batch boundary through the
`StopFlag`; once one is known, both raise `CallbackRefused`. Other delivery failures are logged.
`HeartbeatReporter.start` sends the first heartbeat (epoch 0 with no metrics, or a resumed
checkpoint's epoch with that epoch's metrics) and starts a daemon thread running the subclass's
``_keepalive`` loop, which sends a keep-alive heartbeat (last completed epoch, no metrics)
whenever none went out for ``keepalive_s`` seconds and nothing is waiting to be delivered;
`HeartbeatReporter.close` stops it and delivers what is queued (call it before ``done``). A
reporter without a client (a rank that does not report) sends nothing.

Every heartbeat carries the trainer's ``system`` metrics (trainer_kit/system_metrics.py),
sampled when it is sent, on the outbox's thread: the training loop never waits on psutil or
NVML, and a keep-alive replaced by a newer one before it went out loses no window. The loop
feeds `HeartbeatReporter.throughput` for samples/s and the data wait.

How epochs are recorded and what else the keep-alive thread does (follow worker processes,
publish their checkpoints) is each trainer's own (its trainer/progress.py).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from trainer_kit.callbacks import CallbackClient, CallbackRefused, clean_metrics
from trainer_kit.control import StopFlag
from trainer_kit.fingerprint import FingerprintError, announced
from trainer_kit.outbox import Outbox
from trainer_kit.system_metrics import SystemSampler, ThroughputMeter

log = logging.getLogger("trainyard.trainer.progress")

CHECKPOINT_SAVED = "checkpoint_saved"


class HeartbeatReporter:
    """Sends heartbeats and events for one attempt; subclasses implement ``_keepalive``."""

    def __init__(
        self,
        client: CallbackClient | None,
        stop: StopFlag,
        *,
        epochs: int,
        keepalive_s: float,
        clock: Callable[[], float] = time.monotonic,
        system: SystemSampler | None = None,
    ) -> None:
        """``system``: the sampler of the heartbeats' system metrics (default: this process
        tree and every GPU CUDA shows it; a trainer passes its ``TRAINYARD_GPUS``)."""
        self._client = client
        if system is None and client is not None:
            system = SystemSampler()
        self._system = system
        # What the training loop feeds (a reporter that sends nothing still takes it).
        self.throughput: ThroughputMeter = system.meter if system else ThroughputMeter()
        self._stop = stop
        self._keepalive_s = keepalive_s
        self._clock = clock
        self._started_at = clock()
        self._outbox = Outbox(stop, dropped_notice=self._dropped_notice)
        self._state_lock = threading.Lock()  # guards the fields below
        self._epochs = epochs
        self._epoch = 0  # completed epochs
        self._start_epoch = 0  # completed before this attempt trained (a resume)
        self._metrics: dict[str, float] = {}
        self._eta_at: tuple[float, float] | None = None  # (clock, eta_s) at the last epoch end
        self._last_beat_at = -math.inf
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        with self._state_lock:
            return self._epoch

    @property
    def metrics(self) -> dict[str, float]:
        """Metrics of the last completed epoch."""
        with self._state_lock:
            return dict(self._metrics)

    def elapsed_s(self) -> float:
        return self._clock() - self._started_at

    def _eta_s(self, now: float) -> float | None:
        if self._eta_at is None:
            return None
        at, eta = self._eta_at
        return max(eta - (now - at), 0.0)

    def _beat_due(self) -> bool:
        """No heartbeat went out for ``keepalive_s`` seconds, and none is waiting to: while
        the backend is slow to answer, a queue of keep-alives would tell it nothing new."""
        with self._state_lock:
            quiet = self._clock() - self._last_beat_at >= self._keepalive_s
        return quiet and self._outbox.idle

    # -- callbacks --------------------------------------------------------------------------

    def heartbeat(self, *, with_metrics: bool) -> None:
        """Queue a heartbeat of the current state; raises `CallbackRefused` once one is known."""
        if self._client is None:
            return
        self._raise_if_refused()
        now = self._clock()
        with self._state_lock:
            self._last_beat_at = now
            send = partial(
                self._send_heartbeat,
                epoch=self._epoch,
                epochs=self._epochs,
                metrics=dict(self._metrics) if with_metrics else {},
                elapsed_s=now - self._started_at,
                eta_s=self._eta_s(now),
            )
        # An epoch's heartbeat carries its metrics (its point in the charts): never dropped.
        self._outbox.submit("heartbeat", send, "always" if with_metrics else "latest")

    def _send_heartbeat(self, **beat: Any) -> None:
        """The outbox's delivery of a heartbeat, with the system metrics of this moment."""
        assert self._client is not None  # nothing is queued without a client
        self._client.heartbeat(**beat, system=self._system_metrics())

    def _system_metrics(self) -> dict[str, Any] | None:
        if self._system is None:
            return None
        try:
            return self._system.sample()
        except Exception:  # never lose a heartbeat over its system metrics
            log.exception("system metrics not sampled")
            return None

    def event(self, type_: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        """Queue an event; raises `CallbackRefused` once one is known."""
        if self._client is None:
            return
        self._raise_if_refused()
        copied = dict(data) if data is not None else None  # as it is now, not when sent
        if type_ == CHECKPOINT_SAVED and copied is not None and isinstance(copied.get("path"), str):
            # What the next attempt will check the checkpoint against before loading it.
            try:
                copied.update(announced(copied["path"]).announced())
            except (FingerprintError, OSError) as exc:
                # Sent all the same: the platform refuses it (422), and no attempt resumes
                # from a checkpoint it cannot verify.
                log.warning("checkpoint %s not fingerprinted: %s", copied["path"], exc)
        send = partial(self._client.event, type_, message, copied)
        self._outbox.submit(f"event {type_}", send, "droppable" if type_ == "log" else "always")

    def _dropped_notice(self, count: int) -> Callable[[], None]:
        """The ``warning`` event saying how many ``log`` events the full queue dropped."""
        assert self._client is not None  # nothing is queued without a client
        message = f"{count} log event(s) dropped while the platform did not answer"
        return partial(self._client.event, "warning", message, {"dropped_log_events": count})

    def _raise_if_refused(self) -> None:
        refusal = self._stop.refused or (self._client.refused if self._client else None)
        if refusal is not None:
            raise refusal

    def checkpoint_restored(self, source: str, epoch: int) -> None:
        """The ``checkpoint_restored`` event: this attempt resumes after ``epoch`` completed
        epochs from the checkpoint at ``source``; raises `CallbackRefused`."""
        self.event(
            "checkpoint_restored",
            f"resuming after epoch {epoch} from {source}",
            {"path": source, "epoch": epoch},
        )

    # -- keep-alive -------------------------------------------------------------------------

    def start(self, *, epoch: int = 0, metrics: Mapping[str, float] | None = None) -> None:
        """Send the first heartbeat now, then keep the attempt alive from a thread.

        ``epoch`` is the number of epochs already completed and ``metrics`` that epoch's: 0 and
        none, or those of the resumed checkpoint (so progress goes on from where the earlier
        attempt stopped).
        """
        with self._state_lock:
            self._epoch = self._start_epoch = epoch
            self._epochs = max(self._epochs, epoch)
            self._metrics = clean_metrics(metrics)
        if self._client is None:
            return
        self.heartbeat(with_metrics=bool(metrics))
        self._thread = threading.Thread(target=self._keepalive, name="keepalive", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float | None = None) -> None:
        """Stop the keep-alive thread, then deliver what is queued, so ``done`` comes last.
        Waits as long as that takes (the platform stops an attempt it gave up on) unless
        `timeout_s` bounds each wait."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("keep-alive thread still running after %s s", timeout_s)
            self._thread = None
        self._outbox.close(timeout_s)

    def _keepalive(self) -> None:
        """The keep-alive thread's loop (until `close`)."""
        raise NotImplementedError

    def _refused(self, refusal: CallbackRefused) -> None:
        """The keep-alive thread met a refusal (the outbox logged it): stop training at the
        next batch."""
        self._stop.request_refused(refusal)
