"""Every trainer image (trainers/<name>/Dockerfile), and the platform's (platform/Dockerfile),
is reproducible and safe to run in the cluster: pinned bases, the locked environment, a non-root
user, an entrypoint and a .dockerignore that keeps the developer's .venv out of the build
context. New trainers are picked up by themselves.

Trainer images are built with trainers/ as the context (so the shared trainers/kit can be copied
in): `docker build -f trainers/<name>/Dockerfile trainers`, ignore file trainers/.dockerignore.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from .rendered_chart import REPO_ROOT

TRAINERS_DIR = REPO_ROOT / "trainers"
# trainers/kit is the library every trainer shares (a path dependency copied into each trainer
# image), not a trainer: no image of its own, no Dockerfile.
NOT_TRAINERS = {"kit"}
TRAINERS = sorted(
    path.name
    for path in TRAINERS_DIR.iterdir()
    if path.is_dir() and not path.name.startswith((".", "_")) and path.name not in NOT_TRAINERS
)

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_COPY_FROM = re.compile(r"--from=(\S+)")
_ROOT_USERS = {"root", "0"}


def image_pin_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None: a digest, or a tag other than latest."""
    if _DIGEST.search(image):
        return None
    # The tag follows the last ':' after the last '/' (a registry may carry a port).
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return f"image {image} has no tag (it means latest): pin a version or a digest"
    if name.rsplit(":", 1)[1] == "latest":
        return f"image {image} is tagged latest: pin a version or a digest"
    if "$" in image:
        return f"image {image} depends on a build argument without a pinned default"
    return None


def dockerfile_problems(text: str) -> list[str]:
    """What keeps a trainer Dockerfile from the rules above; [] when it follows them all."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    instructions: list[dict[str, str]] = parser.structure
    problems: list[str] = []

    stages: set[str] = set()
    final_stage: list[dict[str, str]] = []
    images: list[str] = []
    for instruction in instructions:
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "FROM":
            words = value.split()
            if len(words) >= 3 and words[-2].lower() == "as":
                stages.add(words[-1].lower())
            final_stage = []
        elif kind == "COPY" and (copied_from := _COPY_FROM.search(value)):
            images.append(copied_from.group(1))
        final_stage.append(instruction)
    # parent_images resolves ARG defaults; an earlier stage used as a base is no image.
    images = [image for image in parser.parent_images if image.lower() not in stages] + [
        image for image in images if image.lower() not in stages and not image.isdigit()
    ]
    if not parser.parent_images:
        problems.append("no FROM instruction")
    problems += [p for image in images if (p := image_pin_problem(image)) is not None]

    users = [i["value"].split(":")[0].strip() for i in final_stage if i["instruction"] == "USER"]
    if not users:
        problems.append("the final stage has no USER: the trainer would run as root")
    elif users[-1] in _ROOT_USERS:
        problems.append(f"the final stage runs as USER {users[-1]}: use an unprivileged uid")

    if not any(i["instruction"] in {"ENTRYPOINT", "CMD"} for i in final_stage):
        problems.append("the final stage has no ENTRYPOINT or CMD")

    runs = [i["value"] for i in instructions if i["instruction"] == "RUN"]
    syncs = [run for run in runs if "uv sync" in run]
    if not syncs:
        problems.append("no `uv sync`: the image must install the trainer's uv.lock")
    problems += [
        f"`{sync}` installs without --locked or --frozen: the image could drift from uv.lock"
        for sync in syncs
        if not re.search(r"--(locked|frozen)\b", sync)
    ]
    return problems


def dockerignore_problems(context: Path) -> list[str]:
    """The build context must not carry a local virtualenv (GBs, host paths)."""
    ignore_file = context / ".dockerignore"
    if not ignore_file.is_file():
        return [f"{ignore_file} is missing"]
    patterns = {line.strip().rstrip("/") for line in ignore_file.read_text().splitlines()}
    if not patterns & {".venv", "/.venv", "**/.venv", ".venv*", ".venv/**"}:
        return [f"{ignore_file} does not exclude .venv"]
    return []


def test_there_are_trainers_to_check() -> None:
    assert TRAINERS, f"no trainer folder under {TRAINERS_DIR}"


@pytest.mark.parametrize("trainer", TRAINERS)
def test_trainer_image_is_pinned_locked_and_unprivileged(trainer: str) -> None:
    dockerfile = TRAINERS_DIR / trainer / "Dockerfile"
    assert dockerfile.is_file(), f"trainers/{trainer} has no Dockerfile: every trainer is an image"
    assert dockerfile_problems(dockerfile.read_text()) == []


def test_there_is_a_library_shared_by_the_trainers_and_it_is_no_image() -> None:
    assert (TRAINERS_DIR / "kit" / "pyproject.toml").is_file()
    assert not (TRAINERS_DIR / "kit" / "Dockerfile").exists()


def test_trainer_build_context_leaves_out_the_virtualenvs() -> None:
    # One build context, trainers/, for every trainer image (and the kit they copy in).
    assert dockerignore_problems(TRAINERS_DIR) == []
    patterns = (TRAINERS_DIR / ".dockerignore").read_text().split()
    assert "**/.venv" in patterns, "every trainer's (and the kit's) .venv is inside the context"


@pytest.mark.parametrize("trainer", TRAINERS)
def test_trainer_image_builds_from_the_trainers_folder(trainer: str) -> None:
    # The Dockerfile copies trainers/kit and trainers/<name>: paths relative to trainers/.
    text = (TRAINERS_DIR / trainer / "Dockerfile").read_text()
    assert "COPY kit " in text, f"trainers/{trainer}/Dockerfile does not copy the shared kit"
    assert f"COPY {trainer}/pyproject.toml {trainer}/uv.lock " in text
    assert f"docker build -f trainers/{trainer}/Dockerfile" in text, "the build command comment"
    assert not (TRAINERS_DIR / trainer / ".dockerignore").exists(), (
        "trainers/.dockerignore is the ignore file of every trainer image"
    )


def test_the_platform_image_follows_the_same_rules() -> None:
    # platform/Dockerfile (backend + worker, the chart's image) builds from the repository root.
    dockerfile = REPO_ROOT / "platform" / "Dockerfile"
    assert dockerfile_problems(dockerfile.read_text()) == []
    assert dockerignore_problems(REPO_ROOT) == []


def test_a_careless_dockerfile_is_refused_on_every_count() -> None:
    careless = """\
FROM python AS build
RUN pip install uv && uv sync
FROM ghcr.io/astral-sh/uv:latest AS uv
FROM build
COPY --from=registry.local:5000/tools/uv /uv /usr/local/bin/
COPY --from=build /src /src
USER root
"""
    assert dockerfile_problems(careless) == [
        "image python has no tag (it means latest): pin a version or a digest",
        "image ghcr.io/astral-sh/uv:latest is tagged latest: pin a version or a digest",
        "image registry.local:5000/tools/uv has no tag (it means latest): pin a version or a "
        "digest",
        "the final stage runs as USER root: use an unprivileged uid",
        "the final stage has no ENTRYPOINT or CMD",
        "`pip install uv && uv sync` installs without --locked or --frozen: the image could "
        "drift from uv.lock",
    ]


def test_a_final_stage_without_user_is_refused() -> None:
    text = (
        "FROM python:3.11-slim@sha256:" + "a" * 64 + "\n"
        "RUN uv sync --frozen\n"
        'ENTRYPOINT ["trainer"]\n'
    )
    assert dockerfile_problems(text) == [
        "the final stage has no USER: the trainer would run as root"
    ]


def test_a_dockerignore_that_keeps_the_virtualenv_is_refused(tmp_path: Path) -> None:
    ignore_file = tmp_path / ".dockerignore"
    assert dockerignore_problems(tmp_path) == [f"{ignore_file} is missing"]
    ignore_file.write_text("tests/\n__pycache__/\n")
    assert dockerignore_problems(tmp_path) == [f"{ignore_file} does not exclude .venv"]
