"""The capacity of one machine (the embedded tier and the subprocess launcher): its GPUs by
NVML, else by `nvidia-smi -L`, else none; and how many CPU-only trainings may run at once."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

import pynvml  # type: ignore[import-untyped]  # nvidia-ml-py ships no types

from trainyard_workflows.capacity.model import Capacity

logger = logging.getLogger(__name__)

# A wedged driver can hang nvidia-smi; the report must not wait on it for long.
_NVIDIA_SMI_TIMEOUT_S = 10.0

# A way to count the machine's GPUs: its count, or None when it cannot tell (no driver, no
# tool). Probes are tried in order; the first that tells wins.
GpuProbe = tuple[str, Callable[[], int | None]]


def gpus_by_nvml() -> int | None:
    """The GPUs the NVIDIA driver knows, None when NVML does not initialise (no driver)."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # also raised when libnvidia-ml cannot be loaded
        return None
    try:
        count: int = pynvml.nvmlDeviceGetCount()
        return count
    except pynvml.NVMLError as error:
        logger.warning("NVML initialised but could not count the GPUs: %s", error)
        return None
    finally:
        pynvml.nvmlShutdown()


def gpus_by_nvidia_smi() -> int | None:
    """The GPUs `nvidia-smi -L` lists (one `GPU <n>: ...` line each), None when it is not on
    PATH or fails."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        listed = subprocess.run(
            [tool, "-L"],
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as error:
        logger.warning("nvidia-smi -L failed, counting no GPU from it: %s", error)
        return None
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))


DEFAULT_PROBES: Sequence[GpuProbe] = (("nvml", gpus_by_nvml), ("nvidia-smi", gpus_by_nvidia_smi))


def default_cpu_slots() -> int:
    """A quarter of the cores, at least one: a tiny CPU training already uses every core, so
    more runs at once only make each slower."""
    return max(1, (os.cpu_count() or 1) // 4)


def discover_local(
    gpus_override: int | None,
    cpu_slots_override: int | None,
    *,
    probes: Sequence[GpuProbe] = DEFAULT_PROBES,
) -> Capacity:
    """This machine's capacity; an override (TRAINYARD_GPUS, TRAINYARD_CPU_RUN_SLOTS) wins over
    what is discovered. Blocking (NVML, a subprocess): call it from a thread in async code."""
    cpu_slots = cpu_slots_override if cpu_slots_override is not None else default_cpu_slots()
    if gpus_override is not None:
        return _one_machine(gpus_override, cpu_slots, "configured")
    for source, probe in probes:
        found = probe()
        if found is not None:
            return _one_machine(found, cpu_slots, source)
    return _one_machine(0, cpu_slots, "none")


def _one_machine(gpus: int, cpu_slots: int, source: str) -> Capacity:
    # One machine: a job can have all of its GPUs.
    return Capacity(gpus=gpus, largest_node_gpus=gpus, cpu_slots=cpu_slots, source=source)
