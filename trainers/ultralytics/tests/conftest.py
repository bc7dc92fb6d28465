"""Fixtures: a tiny synthetic YOLO dataset and the trainer's environment (the callback server,
S3 endpoint and launchers are trainer_kit.testing's)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from trainer_kit.testing.processes import contract_env

IMGSZ = 64


# -- dataset ------------------------------------------------------------------------------------


def make_dataset(root: Path, *, n_train: int = 8, n_val: int = 4, seed: int = 0) -> Path:
    """64x64 images with red rectangles (class 0) and blue circles (class 1), YOLO labels."""
    rnd = random.Random(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            grey = rnd.randint(0, 60)
            image = Image.new("RGB", (IMGSZ, IMGSZ), (grey, grey, grey))
            draw = ImageDraw.Draw(image)
            rows = []
            for _ in range(2):
                cls = rnd.randint(0, 1)
                w, h = rnd.randint(12, 28), rnd.randint(12, 28)
                x0, y0 = rnd.randint(0, IMGSZ - w), rnd.randint(0, IMGSZ - h)
                box = (x0, y0, x0 + w, y0 + h)
                if cls == 0:
                    draw.rectangle(box, fill=(230, 30, 30))
                else:
                    draw.ellipse(box, fill=(30, 30, 230))
                cx, cy = (x0 + w / 2) / IMGSZ, (y0 + h / 2) / IMGSZ
                rows.append(f"{cls} {cx:.6f} {cy:.6f} {w / IMGSZ:.6f} {h / IMGSZ:.6f}")
            image.save(images / f"{split}_{i}.png")
            (labels / f"{split}_{i}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "data.yaml").write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: rect\n  1: circle\n",
        encoding="utf-8",
    )
    return root


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture
def broken_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "broken"
    root.mkdir()
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/missing-train\nval: images/missing-val\nnames:\n  0: thing\n",
        encoding="utf-8",
    )
    return root


# -- launching the trainer ----------------------------------------------------------------------
# The callback server, S3 endpoint and process launchers are trainer_kit.testing's (its pytest
# fixtures `callback_server` and `s3` are loaded with `-p trainer_kit.testing.fixtures`).


def trainer_env(
    server_url: str,
    dataset: Path,
    output_dir: Path,
    home: Path,
    **overrides: str,
) -> dict[str, str]:
    """A clean environment for the trainer subprocess (no pytest markers, a private HOME)."""
    env = contract_env(
        server_url, dataset, output_dir, home, drop=("YOLO_", "ULTRALYTICS_", "MPLCONFIGDIR")
    )
    env.update(
        TRAINYARD_MODEL="yolo11n.yaml",
        TRAINYARD_TASK="detect",
        TRAINYARD_IMGSZ=str(IMGSZ),
        TRAINYARD_BATCH="4",
        TRAINYARD_HYPERPARAMETERS=json.dumps({"workers": 0, "seed": 0}),
    )
    env.update(overrides)
    return env
