"""Re-write the model lists the backend checks job requests against, from the trainers' own
installed libraries (run after bumping timm or transformers in a trainer's lockfile):

    uv run python platform/backend/tools/framework_models.py

The backend cannot import timm or transformers (they bring torch); the lists are what the
pinned versions know. `tests/test_frameworks.py` fails while a list and its trainer disagree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FRAMEWORKS = REPO / "platform" / "backend" / "trainyard" / "frameworks"

# (list file, trainer, Python that prints one name per line)
LISTS = {
    "timm_models.txt": (
        "timm",
        "import timm; print('\\n'.join(sorted(timm.list_models())))",
    ),
    "huggingface_image_models.txt": (
        "huggingface",
        "from transformers.models.auto.modeling_auto import "
        "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES as m; print('\\n'.join(sorted(m)))",
    ),
    "huggingface_text_models.txt": (
        "huggingface",
        "from transformers.models.auto.modeling_auto import "
        "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES as m; print('\\n'.join(sorted(m)))",
    ),
}


def installed_names(trainer: str, program: str) -> str:
    """The names the trainer's own environment prints (one per line, sorted)."""
    python = REPO / "trainers" / trainer / ".venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: run `make trainers` first")
    done = subprocess.run(
        [str(python), "-c", program], capture_output=True, text=True, check=True, timeout=300
    )
    return done.stdout


def main() -> None:
    for name, (trainer, program) in LISTS.items():
        (FRAMEWORKS / name).write_text(installed_names(trainer, program), encoding="utf-8")
        print(f"wrote {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
