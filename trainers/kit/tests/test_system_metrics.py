"""trainer_kit.system_metrics: the ``system`` object of every heartbeat."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from trainer_kit import system_metrics
from trainer_kit.callbacks import CallbackClient
from trainer_kit.control import StopFlag
from trainer_kit.progress import HeartbeatReporter
from trainer_kit.system_metrics import SystemSampler, ThroughputMeter
from trainer_kit.testing.callback_server import CallbackServer

MIB = 1024 * 1024


def _no_nvml() -> None:
    return None


class _FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- the meter -------------------------------------------------------------------------------


def test_the_meter_splits_step_time_into_waiting_and_computing() -> None:
    clock = _FakeClock()
    meter = ThroughputMeter(clock)
    meter.waiting()
    for wait_s, compute_s in ((1.0, 3.0), (0.5, 3.5)):
        clock.advance(wait_s)
        meter.data_ready()
        clock.advance(compute_s)
        meter.step_done(32)

    window = meter.take()

    assert window is not None
    assert window.samples_per_s == pytest.approx(64 / 8.0)
    assert window.data_wait_ratio == pytest.approx(1.5 / 8.0)


def test_each_take_is_its_own_window_and_pauses_count_in_neither() -> None:
    clock = _FakeClock()
    meter = ThroughputMeter(clock)
    meter.waiting()
    clock.advance(1.0)
    meter.data_ready()
    clock.advance(1.0)
    meter.step_done(10)
    assert meter.take() is not None

    clock.advance(60.0)  # validation: no step, not waiting for training data
    assert meter.take() is None

    meter.waiting()  # the next epoch's first batch
    clock.advance(2.0)
    meter.data_ready()
    clock.advance(2.0)
    meter.step_done(8)
    window = meter.take()
    assert window is not None
    assert (window.samples_per_s, window.data_wait_ratio) == (2.0, 0.5)


def test_a_step_under_way_counts_in_the_window_where_it_ends() -> None:
    clock = _FakeClock()
    meter = ThroughputMeter(clock)
    meter.waiting()
    clock.advance(5.0)
    meter.data_ready()
    clock.advance(1.0)
    assert meter.take() is None  # waited, not yet trained: not a stall to report
    clock.advance(4.0)
    meter.step_done(20)

    window = meter.take()
    assert window is not None
    assert (window.samples, window.samples_per_s, window.data_wait_ratio) == (20, 2.0, 0.5)


def test_batches_counts_the_time_spent_getting_each_batch_as_waiting() -> None:
    clock = _FakeClock()
    meter = ThroughputMeter(clock)

    def slow_loader() -> Any:
        for batch in range(3):
            clock.advance(3.0)  # the loader's work
            yield batch

    for _ in meter.batches(slow_loader()):
        clock.advance(1.0)  # the step
        meter.step_done(4)

    window = meter.take()
    assert window is not None
    assert window.data_wait_ratio == pytest.approx(0.75)
    assert window.samples_per_s == pytest.approx(12 / 12.0)


def test_the_meter_loses_no_step_fed_from_one_thread_while_another_takes() -> None:
    meter = ThroughputMeter()
    counted: list[int] = []
    done = threading.Event()

    def train() -> None:
        meter.waiting()
        for _ in range(20_000):
            meter.data_ready()
            meter.step_done(1)
        done.set()

    thread = threading.Thread(target=train)
    thread.start()
    while not done.is_set():
        window = meter.take()
        counted.append(0 if window is None else window.samples)
    thread.join()
    last = meter.take()
    counted.append(0 if last is None else last.samples)

    assert sum(counted) == 20_000
    assert sum(1 for n in counted if n) >= 2  # it was read while it was fed


# -- the sampler -----------------------------------------------------------------------------


def test_the_sample_counts_the_cpu_of_children_born_in_its_window() -> None:
    sampler = SystemSampler(gpus=0, nvml=_no_nvml)
    started = time.monotonic()
    # A child that burns 0.4 s of CPU, then waits to be sampled.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time, sys\n"
            "while time.process_time() < 0.4: pass\n"
            "print('burnt', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "burnt"
        system = sampler.sample()
        elapsed = time.monotonic() - started
    finally:
        child.kill()
        child.wait()

    assert set(system) == {"cpu_percent", "ram_bytes"}  # no steps, no GPUs
    assert system["cpu_percent"] >= 100 * 0.4 / elapsed * 0.95
    # This interpreter (pytest, psutil) and the child: tens of MiB, far below a terabyte.
    assert 10 * MIB < system["ram_bytes"] < 1024**4


def test_the_sample_carries_the_meters_window() -> None:
    clock = _FakeClock()
    meter = ThroughputMeter(clock)
    sampler = SystemSampler(gpus=0, meter=meter, nvml=_no_nvml)
    meter.waiting()
    clock.advance(1.0)
    meter.data_ready()
    clock.advance(3.0)
    meter.step_done(16)

    system = sampler.sample()

    assert (system["samples_per_s"], system["data_wait_ratio"]) == (4.0, 0.25)
    assert "samples_per_s" not in sampler.sample()  # the window was taken


def test_without_the_nvml_library_there_is_no_gpus_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` fails
    assert system_metrics._initialised_nvml() is None


def test_without_a_driver_nvml_is_not_used_and_no_error_is_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pynvml  # type: ignore[import-untyped]

    def no_driver() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", no_driver)
    assert system_metrics._initialised_nvml() is None
    sampler = SystemSampler(nvml=system_metrics._initialised_nvml)
    assert "gpus" not in sampler.sample()


class _FakeNvml:
    """NVML's calls the sampler makes, on devices 0..3 (no GPU on this machine)."""

    class NVMLError(Exception):
        pass

    def __init__(self) -> None:
        self.lost = False

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 - NVML's names
        return 4

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        if index >= 4:
            raise self.NVMLError("invalid argument")
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> int:  # noqa: N802
        return int(uuid.removeprefix("GPU-"))

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:  # noqa: N802
        if self.lost:
            raise self.NVMLError("GPU is lost")
        return SimpleNamespace(used=(handle + 1) * MIB, total=80 * 1024 * MIB)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:  # noqa: N802
        return SimpleNamespace(gpu=10 * handle, memory=0)


def test_gpus_are_the_trainers_own_in_cuda_order(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = _FakeNvml()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,GPU-1,0")

    gpus = SystemSampler(gpus=2, nvml=lambda: nvml).sample()["gpus"]

    assert gpus == [
        {
            "index": 0,
            "utilization_ratio": 0.3,
            "memory_used_bytes": 4 * MIB,
            "memory_total_bytes": 80 * 1024 * MIB,
        },
        {
            "index": 1,
            "utilization_ratio": 0.1,
            "memory_used_bytes": 2 * MIB,
            "memory_total_bytes": 80 * 1024 * MIB,
        },
    ]


def test_every_visible_gpu_without_a_count_and_none_for_a_cpu_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nvml = _FakeNvml()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    all_gpus = SystemSampler(nvml=lambda: nvml).sample()["gpus"]
    assert [gpu["index"] for gpu in all_gpus] == [0, 1, 2, 3]
    assert "gpus" not in SystemSampler(gpus=0, nvml=lambda: nvml).sample()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # CUDA hidden
    assert "gpus" not in SystemSampler(nvml=lambda: nvml).sample()


def test_a_gpu_lost_mid_run_is_left_out_without_an_error_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nvml = _FakeNvml()
    sampler = SystemSampler(gpus=1, nvml=lambda: nvml)
    assert len(sampler.sample()["gpus"]) == 1
    nvml.lost = True
    system = sampler.sample()
    assert "gpus" not in system
    assert system["ram_bytes"] > 0
    sampler.sample()
    assert caplog.text.count("GPU 0 not readable") == 1


# -- in heartbeats ---------------------------------------------------------------------------


class _Reporter(HeartbeatReporter):
    def _keepalive(self) -> None:
        self._halt.wait()


def test_every_heartbeat_carries_the_system_metrics_of_its_sending(
    callback_server: CallbackServer,
) -> None:
    with CallbackClient(callback_server.url, "job_1", "tok", retry_for_s=5) as client:
        sampler = SystemSampler(gpus=0, nvml=_no_nvml)
        reporter = _Reporter(client, StopFlag(), epochs=2, keepalive_s=60, system=sampler)
        reporter.start()
        assert callback_server.wait_for(lambda calls: len(calls) == 1, timeout=10)
        reporter.throughput.waiting()
        reporter.throughput.data_ready()
        reporter.throughput.step_done(8)
        reporter.heartbeat(with_metrics=True)
        reporter.close()

    first, second = [call.body for call in callback_server.of("heartbeat")]
    assert set(first["system"]) == {"cpu_percent", "ram_bytes"}
    assert set(second["system"]) == {"cpu_percent", "ram_bytes", "samples_per_s", "data_wait_ratio"}
    assert second["system"]["cpu_percent"] >= 0
    assert 0 <= second["system"]["data_wait_ratio"] <= 1


class _BrokenSampler(SystemSampler):
    def sample(self) -> dict[str, Any]:
        raise RuntimeError("psutil exploded")


def test_a_failing_sampler_never_costs_the_heartbeat(
    callback_server: CallbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    with CallbackClient(callback_server.url, "job_1", "tok", retry_for_s=5) as client:
        sampler = _BrokenSampler(gpus=0, nvml=_no_nvml)
        reporter = _Reporter(client, StopFlag(), epochs=2, keepalive_s=60, system=sampler)
        reporter.start()
        reporter.close()

    (beat,) = [call.body for call in callback_server.of("heartbeat")]
    assert "system" not in beat
    assert "system metrics not sampled" in caplog.text
