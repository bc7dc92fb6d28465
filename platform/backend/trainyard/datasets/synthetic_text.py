"""A deterministic synthetic text-classification dataset: short sentences about three topics.

`train.jsonl` and `val.jsonl`, one `{"text": …, "label": …}` per line — what the Hugging Face
trainer's `text-classification` reads. Sentences are assembled from per-topic words and shared
filler, so a tiny model learns the topics in a few epochs. Used by `trainyard datasets
make-text` and the tests: no download, the same bytes for the same seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

TOPICS: dict[str, tuple[str, ...]] = {
    "sports": ("match", "goal", "team", "coach", "league", "score", "player", "season"),
    "weather": ("rain", "storm", "sunny", "forecast", "wind", "cloudy", "snow", "humid"),
    "food": ("recipe", "bread", "spicy", "dinner", "kitchen", "soup", "baked", "flavour"),
}
_FILLER = ("the", "a", "today", "was", "really", "very", "again", "this", "after", "new")


@dataclass(frozen=True)
class TextSpec:
    train_per_label: int = 40
    val_per_label: int = 10
    words: int = 8
    seed: int = 0


@dataclass(frozen=True)
class GeneratedText:
    root: Path
    labels: tuple[str, ...]
    train_samples: int
    val_samples: int

    @property
    def uri(self) -> str:
        return self.root.resolve().as_uri()


def make_text(root: Path, spec: TextSpec | None = None) -> GeneratedText:
    """Write `train.jsonl` and `val.jsonl` under `root` (replacing earlier ones)."""
    spec = spec or TextSpec()
    rng = random.Random(spec.seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, per_label in (("train", spec.train_per_label), ("val", spec.val_per_label)):
        records = [
            {"text": _sentence(rng, topic, spec.words), "label": topic}
            for topic in TOPICS
            for _ in range(per_label)
        ]
        rng.shuffle(records)
        lines = "".join(json.dumps(record) + "\n" for record in records)
        (root / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    labels = tuple(TOPICS)
    return GeneratedText(
        root, labels, spec.train_per_label * len(labels), spec.val_per_label * len(labels)
    )


def _sentence(rng: random.Random, topic: str, words: int) -> str:
    topical = max(2, words // 3)
    chosen = [rng.choice(TOPICS[topic]) for _ in range(topical)]
    chosen += [rng.choice(_FILLER) for _ in range(words - topical)]
    rng.shuffle(chosen)
    return " ".join(chosen).capitalize() + "."
