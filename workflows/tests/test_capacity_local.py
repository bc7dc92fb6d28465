"""One machine's capacity: the overrides win, then NVML, then `nvidia-smi -L` (a real script
on PATH here), then none; CPU-only runs default to a quarter of the cores."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from trainyard_workflows.capacity import Capacity
from trainyard_workflows.capacity.local import (
    default_cpu_slots,
    discover_local,
    gpus_by_nvidia_smi,
)

NVIDIA_SMI_L = (
    "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0a1b)\n"
    "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-2c3d)\n"
    "  MIG 1g.10gb Device 0: (UUID: MIG-4e5f)\n"
)
ONLY_NVIDIA_SMI = (("nvidia-smi", gpus_by_nvidia_smi),)


def fake_nvidia_smi(folder: Path, output: str, exit_code: int = 0) -> Path:
    """An executable `nvidia-smi` in `folder` that prints `output` for `-L` (shell builtins
    only: PATH holds `folder` alone)."""
    assert "'" not in output
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(
        f"#!/bin/sh\n[ \"$1\" = \"-L\" ] || exit 9\nprintf '%s' '{output}'\nexit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


def test_nvidia_smi_counts_its_gpu_lines_not_mig_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_nvidia_smi(tmp_path / "bin", NVIDIA_SMI_L)))

    assert gpus_by_nvidia_smi() == 2


def test_without_nvidia_smi_on_path_it_cannot_tell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert gpus_by_nvidia_smi() is None


def test_a_failing_nvidia_smi_counts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    folder = fake_nvidia_smi(tmp_path / "bin", "NVIDIA-SMI has failed\n", exit_code=9)
    monkeypatch.setenv("PATH", str(folder))

    assert gpus_by_nvidia_smi() is None
    assert "nvidia-smi -L failed" in caplog.text


def test_discovery_falls_back_to_nvidia_smi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_nvidia_smi(tmp_path / "bin", NVIDIA_SMI_L)))

    found = discover_local(None, 3, probes=(("nvml", lambda: None), *ONLY_NVIDIA_SMI))

    assert found == Capacity(gpus=2, largest_node_gpus=2, cpu_slots=3, source="nvidia-smi")


def test_with_no_probe_that_tells_the_machine_has_no_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    found = discover_local(None, None, probes=ONLY_NVIDIA_SMI)

    assert found == Capacity(
        gpus=0, largest_node_gpus=0, cpu_slots=default_cpu_slots(), source="none"
    )


def test_the_gpu_override_wins_over_what_is_discovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_nvidia_smi(tmp_path / "bin", NVIDIA_SMI_L)))

    assert discover_local(0, 2, probes=ONLY_NVIDIA_SMI) == Capacity(
        gpus=0, largest_node_gpus=0, cpu_slots=2, source="configured"
    )
    assert discover_local(4, None, probes=ONLY_NVIDIA_SMI).gpus == 4


def test_cpu_slots_default_to_a_quarter_of_the_cores_and_at_least_one() -> None:
    assert default_cpu_slots() == max(1, (os.cpu_count() or 1) // 4)
    assert default_cpu_slots() >= 1


def test_the_default_probes_agree_with_nvidia_smi_where_it_is_installed() -> None:
    # On a GPU machine NVML and nvidia-smi count the same GPUs; without a driver, none.
    found = discover_local(None, None)

    assert found.source in {"nvml", "nvidia-smi", "none"}
    assert found.largest_node_gpus == found.gpus
    listed = gpus_by_nvidia_smi()
    assert found.gpus == (listed or 0)
