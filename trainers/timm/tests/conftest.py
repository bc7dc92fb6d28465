"""Fixtures: a tiny synthetic image folder and the trainer's environment (the callback server,
S3 endpoint and launchers are trainer_kit.testing's)."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from trainer_kit.control import StopFlag
from trainer_kit.testing.processes import contract_env

IMGSZ = 32
MODEL = "test_resnet"


# -- dataset ------------------------------------------------------------------------------------

CLASSES = ("circle", "square", "triangle")


def make_dataset(
    root: Path, *, n_train: int = 6, n_val: int = 2, seed: int = 0, size: int = IMGSZ
) -> Path:
    """An image folder: train/<class>/*.png and val/<class>/*.png, a shape per class."""
    rnd = random.Random(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        for cls in CLASSES:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                grey = rnd.randint(0, 80)
                image = Image.new("RGB", (size, size), (grey, grey, grey))
                draw = ImageDraw.Draw(image)
                w = rnd.randint(size // 2, size - 4)
                x0, y0 = rnd.randint(0, size - w), rnd.randint(0, size - w)
                colour = (rnd.randint(150, 255), rnd.randint(150, 255), rnd.randint(150, 255))
                if cls == "circle":
                    draw.ellipse((x0, y0, x0 + w, y0 + w), fill=colour)
                elif cls == "square":
                    draw.rectangle((x0, y0, x0 + w, y0 + w), fill=colour)
                else:
                    draw.polygon([(x0, y0 + w), (x0 + w, y0 + w), (x0 + w // 2, y0)], fill=colour)
                image.save(folder / f"{split}_{i}.png")
    return root


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture
def broken_dataset(tmp_path: Path) -> Path:
    """train/ without val/."""
    root = make_dataset(tmp_path / "broken")
    for path in sorted((root / "val").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (root / "val").rmdir()
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
    env = contract_env(server_url, dataset, output_dir, home, drop=("HF_", "TORCH_HOME"))
    env.update(
        TRAINYARD_MODEL=MODEL,
        TRAINYARD_TASK="classify",
        TRAINYARD_IMGSZ=str(IMGSZ),
        TRAINYARD_BATCH="6",
        TRAINYARD_HYPERPARAMETERS=json.dumps({"workers": 0, "seed": 0}),
    )
    env.update(overrides)
    return env


# -- in-process attempts ------------------------------------------------------------------------


def run_in_process(
    env: Mapping[str, str], *, nproc: int | None = None, stop: StopFlag | None = None
) -> int:
    """`run_attempt` in this process (what `main` does after reading the environment)."""
    from trainer.run import run_attempt
    from trainer.settings import load_settings

    settings = load_settings(env)
    with settings.callback_client(retry_for_s=5) as client:
        return run_attempt(settings, client, stop or StopFlag(), nproc=nproc)
