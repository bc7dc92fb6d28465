"""Fixtures: tiny synthetic datasets and the trainer's environment (the callback server, the
real S3 endpoint and the launchers are trainer_kit.testing's)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from trainer_kit.testing.processes import contract_env

IMGSZ = 32
# A tiny transformer: fast on two CPU cores.
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
TINY_VIT = {**TINY, "patch_size": 8}
IMAGE_HYPERPARAMETERS = {"model_config": TINY_VIT, "learning_rate": 1e-3}
TEXT_HYPERPARAMETERS = {"model_config": TINY, "learning_rate": 1e-3, "max_length": 32}


# -- datasets -----------------------------------------------------------------------------------


def make_image_dataset(root: Path, *, n_train: int = 16, n_val: int = 8, seed: int = 0) -> Path:
    """An ImageFolder of 32x32 images: red squares (class ``red``), blue circles (``blue``)."""
    rnd = random.Random(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        for i in range(count):
            cls = ("red", "blue")[i % 2]
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            grey = rnd.randint(0, 60)
            image = Image.new("RGB", (IMGSZ, IMGSZ), (grey, grey, grey))
            draw = ImageDraw.Draw(image)
            size = rnd.randint(10, 20)
            x0, y0 = rnd.randint(0, IMGSZ - size), rnd.randint(0, IMGSZ - size)
            box = (x0, y0, x0 + size, y0 + size)
            if cls == "red":
                draw.rectangle(box, fill=(230, 30, 30))
            else:
                draw.ellipse(box, fill=(30, 30, 230))
            image.save(folder / f"{split}_{i}.png")
    return root


POSITIVE = ["great", "lovely", "excellent", "wonderful", "good", "happy", "superb"]
NEGATIVE = ["awful", "terrible", "bad", "horrible", "sad", "poor", "dreadful"]
NOUNS = ["film", "meal", "trip", "book", "show", "game", "day"]


def make_text_dataset(
    root: Path, *, fmt: str = "jsonl", n_train: int = 24, n_val: int = 8, seed: int = 0
) -> Path:
    """``train.<fmt>``/``val.<fmt>`` with ``text`` and ``label`` (``pos``/``neg``)."""
    rnd = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n_train), ("val", n_val)):
        records = []
        for i in range(count):
            label = ("pos", "neg")[i % 2]
            words = POSITIVE if label == "pos" else NEGATIVE
            text = f"a {rnd.choice(words)} {rnd.choice(NOUNS)}, really {rnd.choice(words)}"
            records.append({"text": text, "label": label})
        path = root / f"{split}.{fmt}"
        if fmt == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        else:
            lines = ["text,label"] + [f'"{r["text"]}",{r["label"]}' for r in records]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def image_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_dataset(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def text_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_text_dataset(tmp_path_factory.mktemp("texts"))


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
    """A clean environment for the trainer subprocess (no pytest markers, a private HOME);
    by default a tiny ViT on the image dataset."""
    env = contract_env(
        server_url, dataset, output_dir, home, drop=("HF_", "TRANSFORMERS_", "MPLCONFIGDIR")
    )
    env.update(
        TRAINYARD_MODEL="vit",
        TRAINYARD_IMGSZ=str(IMGSZ),
        TRAINYARD_BATCH="8",
        TRAINYARD_HYPERPARAMETERS=json.dumps(IMAGE_HYPERPARAMETERS),
    )
    env.update(overrides)
    return env
