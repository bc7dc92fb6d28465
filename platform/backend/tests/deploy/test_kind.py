"""`make kind-up` (charts/kind/): it cannot run here (no Docker engine, no kind), so what can be
checked is: the dependencies it applies are valid Kubernetes objects with pinned images, the
chart renders with its values (the chart tests include them as the `kind` values file), the
script parses, and it refuses to start without its tools, naming the missing one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import yaml

from .rendered_chart import KIND_DIR, KUBE_VERSION, REPO_ROOT
from .test_trainer_dockerfiles import image_pin_problem


def dependencies() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((KIND_DIR / "dependencies.yaml").read_text()) if d]


def test_the_dependencies_are_valid_kubernetes_objects_with_pinned_images() -> None:
    manifests = dependencies()
    kinds = sorted(f"{m['kind']}/{m['metadata']['name']}" for m in manifests)
    assert kinds == [
        "Deployment/minio",
        "Deployment/postgres",
        "Deployment/redis",
        "Deployment/temporal",
        "Job/minio-bucket",
        "Service/minio",
        "Service/postgres",
        "Service/redis",
        "Service/temporal",
    ]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
    images = [
        container["image"]
        for manifest in manifests
        if manifest["kind"] in {"Deployment", "Job"}
        for container in manifest["spec"]["template"]["spec"]["containers"]
    ]
    assert [image for image in images if image_pin_problem(image)] == []


def test_the_script_parses_and_names_a_missing_tool(tmp_path: Path) -> None:
    script = KIND_DIR / "up.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    # A PATH with bash and coreutils only: no docker, kind, kubectl or helm.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname"):
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())

    ran = subprocess.run(
        [str(bin_dir / "bash"), str(script)],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        check=False,
    )

    assert ran.returncode == 2
    assert "make kind-up needs 'docker', which is not on PATH" in ran.stderr
