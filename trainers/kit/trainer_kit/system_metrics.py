"""The trainer's system metrics, sent with every heartbeat as its ``system`` object.

`SystemSampler.sample` answers (docs/trainer-contract.md, heartbeat body)::

    {"cpu_percent": 212.5,            # the process tree since the previous sample; 100 = one core
     "ram_bytes": 3_221_225_472,      # the tree's proportional set size (RSS where PSS is unknown)
     "samples_per_s": 812.0,          # from the ThroughputMeter, when steps ended in the window
     "data_wait_ratio": 0.35,         # share of step time spent waiting for the data loader
     "gpus": [{"index": 0, "utilization_ratio": 0.97,
               "memory_used_bytes": ..., "memory_total_bytes": ...}]}

The process tree is the trainer and every descendant (DDP ranks, data-loader workers): their
CPU time since the previous sample, over the wall time in between. Memory is PSS, not RSS:
forked data-loader workers share most of their parent's pages, and summing RSS would count
those pages once per worker.

GPUs come from NVML (``nvidia-ml-py``), initialised once per process. No library, no driver or
no device: no ``gpus`` key, never an error (a CPU run on a laptop is normal). Only the trainer's
own devices are reported: the first ``gpus`` of those CUDA shows it (``CUDA_VISIBLE_DEVICES``
order, by index or UUID), numbered as CUDA numbers them (``cuda:0`` is ``index`` 0); a CPU run
(``gpus=0``) reports none even on a GPU host, whose devices may be another job's.

`ThroughputMeter` is fed by the training loop (``data_ready`` when a batch arrived,
``step_done`` when its step ended) and read once per heartbeat: the window is the time since the
previous read, so each heartbeat describes its own stretch of training.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import psutil  # type: ignore[import-untyped]  # no stubs in the lock (types-psutil)

log = logging.getLogger("trainyard.trainer.system")

# The platform's bound (trainyard_workflows/system_metrics.py): at most 16 GPUs per heartbeat.
MAX_GPUS = 16

T = TypeVar("T")


# -- throughput ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """One window of training steps."""

    samples: int
    samples_per_s: float
    data_wait_ratio: float


class ThroughputMeter:
    """Samples per second and the share of step time spent waiting for data, per window.

    A step runs from the moment the trainer starts waiting for its batch (`waiting`, or the
    end of the previous step) to `step_done`; `data_ready` splits it into waiting and computing.
    Time outside steps (validation, checkpoints) counts in neither: call `waiting` when the
    loop starts waiting for a batch after such a pause (an epoch's first batch). Safe to feed
    from the training thread while the keep-alive thread reads it.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting_since: float | None = None
        self._ready_at: float | None = None
        self._pending_wait_s = 0.0  # the step under way's wait: counted when it ends
        self._samples = 0
        self._wait_s = 0.0
        self._step_s = 0.0

    def waiting(self) -> None:
        """The loop starts waiting for a batch (after a pause)."""
        with self._lock:
            self._waiting_since, self._ready_at, self._pending_wait_s = self._clock(), None, 0.0

    def data_ready(self) -> None:
        """The batch arrived: the step's compute begins."""
        with self._lock:
            now = self._clock()
            if self._waiting_since is not None:
                self._pending_wait_s = now - self._waiting_since
            self._waiting_since, self._ready_at = None, now

    def step_done(self, samples: int) -> None:
        """The step ended after training on ``samples`` samples; waiting for the next begins."""
        with self._lock:
            now = self._clock()
            if self._ready_at is not None:
                # A window holds whole steps only: a step under way at `take` (its wait
                # counted, its compute not) would read as a stall.
                self._wait_s += self._pending_wait_s
                self._step_s += now - self._ready_at
                self._samples += max(samples, 0)
            self._waiting_since, self._ready_at, self._pending_wait_s = now, None, 0.0

    def batches(self, loader: Iterable[T]) -> Iterator[T]:
        """``loader``'s batches, with the time spent getting each counted as waiting (the loop
        still calls `step_done` after each step)."""
        self.waiting()
        for batch in loader:
            self.data_ready()
            yield batch

    def take(self) -> Throughput | None:
        """The window since the previous `take` (None when no step ended in it); a new window
        starts."""
        with self._lock:
            samples, wait_s, step_s = self._samples, self._wait_s, self._step_s
            self._samples, self._wait_s, self._step_s = 0, 0.0, 0.0
        busy = wait_s + step_s
        if samples == 0 or busy <= 0:
            return None
        return Throughput(
            samples=samples,
            samples_per_s=samples / busy,
            data_wait_ratio=min(wait_s / busy, 1.0),
        )


# -- NVML ------------------------------------------------------------------------------------


class _Nvml:
    """NVML, initialised on first use, once per process; None where it cannot be."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tried = False
        self._module: Any = None

    def module(self) -> Any:
        with self._lock:
            if not self._tried:
                self._tried = True
                self._module = _initialised_nvml()
            return self._module


def _initialised_nvml() -> Any:
    try:
        import pynvml  # type: ignore[import-untyped]  # nvidia-ml-py ships no types
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:  # no driver: a CPU host
        log.debug("no GPU metrics: %s", exc)
        return None
    return pynvml


_NVML = _Nvml()


def _visible_handles(nvml: Any, limit: int | None) -> list[Any]:
    """The handles of the devices CUDA shows this process, in CUDA's order (first ``limit``)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        ids: list[str] = [str(i) for i in range(nvml.nvmlDeviceGetCount())]
    else:
        ids = [part.strip() for part in visible.split(",")]
    handles: list[Any] = []
    for device in ids[: MAX_GPUS if limit is None else min(limit, MAX_GPUS)]:
        if not device:
            break  # CUDA stops at the first empty or invalid entry too
        try:
            if device.isdigit():
                handles.append(nvml.nvmlDeviceGetHandleByIndex(int(device)))
            else:  # GPU-… or MIG-… UUID
                handles.append(nvml.nvmlDeviceGetHandleByUUID(device))
        except nvml.NVMLError as exc:
            log.debug("GPU %s not readable: %s", device, exc)
            break
    return handles


# -- the sampler -----------------------------------------------------------------------------


class SystemSampler:
    """Reads the ``system`` object of a heartbeat; never raises (a metric it cannot read is
    left out). One per attempt: CPU is measured between two of its samples."""

    def __init__(
        self,
        *,
        gpus: int | None = None,
        meter: ThroughputMeter | None = None,
        root_pid: int | None = None,
        nvml: Callable[[], Any] = _NVML.module,
    ) -> None:
        """``gpus``: how many devices the trainer uses (None: all CUDA shows it); ``meter``:
        where samples/s and the data wait come from; ``root_pid``: the tree's root (this
        process); ``nvml``: the initialised NVML module or None (tests pass a stand-in)."""
        self._gpus = gpus
        self.meter = meter if meter is not None else ThroughputMeter()
        self._root = psutil.Process(root_pid)
        self._nvml = nvml
        self._lock = threading.Lock()
        # (pid, create_time) -> CPU seconds at the previous sample; keyed with the creation
        # time so a reused pid is a new process.
        self._cpu_seen: dict[tuple[int, float], float] = {}
        self._handles: list[Any] | None = None
        self._gpu_warned = False
        self._sampled_at = time.monotonic()
        self._process_tree(baseline=True)  # the first window starts now

    def sample(self) -> dict[str, Any]:
        """The ``system`` object of a heartbeat sent now."""
        with self._lock:
            system: dict[str, Any] = self._process_tree()
            throughput = self.meter.take()
            if throughput is not None:
                system["samples_per_s"] = throughput.samples_per_s
                system["data_wait_ratio"] = throughput.data_wait_ratio
            gpus = self._gpu_metrics()
            if gpus:
                system["gpus"] = gpus
            return system

    # -- CPU and memory ----------------------------------------------------------------------

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return [self._root]

    def _cpu_of(self, process: psutil.Process) -> tuple[tuple[int, float], float] | None:
        try:
            with process.oneshot():
                key = (process.pid, process.create_time())
                times = process.cpu_times()
        except psutil.Error:
            return None  # gone meanwhile
        return key, times.user + times.system

    def _process_tree(self, *, baseline: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        cpu_s = 0.0
        ram = 0
        seen: dict[tuple[int, float], float] = {}
        for process in self._tree():
            cpu = self._cpu_of(process)
            if cpu is None:
                continue
            key, total = cpu
            seen[key] = total
            before = self._cpu_seen.get(key)
            if before is not None:
                cpu_s += max(total - before, 0.0)
            elif not baseline:
                # Not in the previous walk of the whole tree, so born since: all its CPU time
                # is this window's.
                cpu_s += total
            if not baseline:
                ram += _memory_of(process)
        elapsed = now - self._sampled_at
        self._cpu_seen, self._sampled_at = seen, now
        percent = 100.0 * cpu_s / elapsed if elapsed > 0 else 0.0
        return {"cpu_percent": round(percent, 1), "ram_bytes": ram}

    # -- GPUs ---------------------------------------------------------------------------------

    def _gpu_metrics(self) -> list[dict[str, Any]]:
        if self._gpus == 0:
            return []
        nvml = self._nvml()
        if nvml is None:
            return []
        try:
            if self._handles is None:
                self._handles = _visible_handles(nvml, self._gpus)
        except nvml.NVMLError as exc:
            self._gpu_trouble(f"GPUs not listed: {exc}")
            return []
        gpus = []
        for index, handle in enumerate(self._handles):
            try:
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
            except nvml.NVMLError as exc:  # lost mid-run, or a MIG slice without utilisation
                self._gpu_trouble(f"GPU {index} not readable: {exc}")
                continue
            gpus.append(
                {
                    "index": index,
                    "utilization_ratio": min(max(utilization.gpu / 100.0, 0.0), 1.0),
                    "memory_used_bytes": int(memory.used),
                    "memory_total_bytes": int(memory.total),
                }
            )
        return gpus

    def _gpu_trouble(self, message: str) -> None:
        """Logged once per sampler: a device that cannot be read stays so, and a warning at
        every heartbeat would flood the trainer's log."""
        if not self._gpu_warned:
            self._gpu_warned = True
            log.warning("%s; heartbeats go on without it", message)


def _memory_of(process: psutil.Process) -> int:
    try:
        info = process.memory_full_info()  # Linux: /proc/<pid>/smaps_rollup, cheap
        pss = getattr(info, "pss", None)
        return int(pss if pss is not None else info.rss)
    except psutil.AccessDenied:
        try:
            return int(process.memory_info().rss)
        except psutil.Error:
            return 0
    except psutil.Error:
        return 0
