"""Where the checkpoint to resume from is (``TRAINYARD_RESUME_FROM``), and bringing a
single-file checkpoint into this attempt's run folder.

The platform hands a new attempt the ``data.path`` of the job's newest ``checkpoint_saved``
event: a local path (the earlier attempt's output dir) or the ``s3://`` URI it was published
under. `ResumeSource` is that location; `fetch_file` copies or downloads one file of it to where
this attempt resumes from, atomically, and `fetch_sibling` does the same for a file beside it
(``best.pt``), when there is one; `read_checkpoint` loads a single-file checkpoint and
`check_remaining` refuses one that already holds every epoch. What a checkpoint holds and how
training resumes from it is each trainer's own business (its trainer/resume.py). Any problem
raises `ResumeError`, whose message names the checkpoint and `VARIABLE`; the attempt then ends
in ``done(failed)``.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from trainer_kit.atomic_save import replace_atomically
from trainer_kit.fingerprint import Fingerprint, matches
from trainer_kit.storage import S3Location, S3Storage, StorageError

log = logging.getLogger("trainyard.trainer.resume")

VARIABLE = "TRAINYARD_RESUME_FROM"


class ResumeError(Exception):
    """The checkpoint to resume from cannot be used; fails the attempt."""


@dataclass(frozen=True)
class ResumeSource:
    """Where the checkpoint (a file or a folder) is: exactly one of ``path`` (local) and ``s3``
    is set."""

    uri: str
    path: Path | None = None
    s3: S3Location | None = None
    # What the checkpoint was when announced (None: not known, e.g. a run started by hand).
    expected: Fingerprint | None = None

    @classmethod
    def parse(cls, value: str, expected: Fingerprint | None = None) -> ResumeSource:
        """An absolute path, ``file:///abs/path`` or ``s3://bucket/key``; raises ValueError."""
        parts = urlsplit(value)
        if parts.scheme == "s3":
            location = S3Location.parse(value)
            if not location.prefix:
                raise ValueError(f"s3 URI names no checkpoint: {value!r}")
            return cls(uri=value, s3=location, expected=expected)
        if parts.scheme == "file":
            if parts.netloc not in {"", "localhost"} or parts.query or parts.fragment:
                raise ValueError(f"not a local file:// URI: {value!r}")
            path = Path(unquote(parts.path))
        elif parts.scheme == "":
            path = Path(value)
        else:
            raise ValueError(f"unsupported scheme {parts.scheme!r}: {value!r}")
        if not path.is_absolute() or path.name in {"", ".", ".."}:
            raise ValueError(f"not an absolute path: {value!r}")
        return cls(uri=value, path=path, expected=expected)

    @property
    def name(self) -> str:
        """The checkpoint's own name (last path segment)."""
        if self.s3 is not None:
            return self.s3.prefix.rstrip("/").rsplit("/", 1)[-1]
        assert self.path is not None
        return self.path.name

    def sibling(self, name: str) -> ResumeSource:
        """The file ``name`` in the same folder (prefix)."""
        if self.s3 is not None:
            key = posixpath.join(posixpath.dirname(self.s3.prefix), name)
            location = S3Location(self.s3.bucket, key)
            return ResumeSource(uri=location.uri(), s3=location)
        assert self.path is not None
        sibling = self.path.with_name(name)
        return ResumeSource(uri=str(sibling), path=sibling)


def fetch_file(source: ResumeSource, target: Path, storage: Callable[[], S3Storage]) -> None:
    """Copy or download ``source`` to ``target`` atomically; raises ResumeError or OSError."""
    if source.s3 is not None:
        try:
            storage().download_object(source.s3, target)
        except StorageError as exc:
            raise ResumeError(
                f"checkpoint {source.uri} ({VARIABLE}) not downloaded: {exc}"
            ) from exc
        return
    path = source.path
    assert path is not None
    if not path.is_file():
        raise ResumeError(f"checkpoint {source.uri} ({VARIABLE}) not found")
    if target.exists() and path.resolve() == target.resolve():
        return  # the platform reused the output dir: the checkpoint is already in place
    replace_atomically(target, lambda temporary: shutil.copyfile(path, temporary))


def fetch_sibling(source: ResumeSource, target: Path, storage: Callable[[], S3Storage]) -> bool:
    """Bring the file named like ``target`` (``best.pt``) from beside the checkpoint, if there
    is one; False when there is none (or it cannot be had)."""
    sibling = source.sibling(target.name)
    if sibling.path is not None and not sibling.path.is_file():
        return False
    try:
        fetch_file(sibling, target, storage)
    except (ResumeError, OSError) as exc:
        log.warning(
            "%s not restored (%s): this attempt's best epoch makes %s",
            sibling.uri,
            exc,
            target.name,
        )
        return False
    return True


def fetch_checkpoint(source: ResumeSource, target: Path, storage: Callable[[], S3Storage]) -> None:
    """`fetch_file`, with a failed copy named as the checkpoint's problem, then
    `check_announced`; raises ResumeError."""
    try:
        fetch_file(source, target, storage)
    except OSError as exc:
        raise ResumeError(f"checkpoint {source.uri} ({VARIABLE}) not copied: {exc}") from exc
    check_announced(source, target)


def check_announced(source: ResumeSource, fetched: Path) -> None:
    """Refuse (ResumeError) a fetched checkpoint that is not what its ``checkpoint_saved``
    announced: swapped or changed since, it is never loaded."""
    if source.expected is not None and not matches(fetched, source.expected):
        raise ResumeError(
            f"checkpoint {source.uri} ({VARIABLE}) is not the one its checkpoint_saved "
            "announced (size or SHA-256 differ): refused"
        )


def read_checkpoint(
    path: Path,
    source: str,
    load: Callable[[Path], Any],
    *,
    what: str,
    recognise: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """``load(path)`` (the framework's loader, e.g. ``torch.load``) of a checkpoint this trainer
    wrote: a dict that ``recognise`` accepts; else ResumeError naming ``source`` (unreadable,
    or not ``what``)."""
    try:
        checkpoint = load(path)
    except Exception as exc:
        message = " ".join(str(exc).split())[:300]
        raise ResumeError(
            f"checkpoint {source} ({VARIABLE}) is unreadable: {type(exc).__name__}: {message}"
        ) from exc
    if not isinstance(checkpoint, dict) or not recognise(checkpoint):
        raise ResumeError(f"checkpoint {source} ({VARIABLE}) is not {what}")
    return checkpoint


def check_remaining(source: str, completed: int, epochs: int) -> None:
    """Raise ResumeError when the checkpoint already holds all ``epochs``: nothing to resume."""
    if completed >= epochs:
        raise ResumeError(
            f"checkpoint {source} ({VARIABLE}) already holds {completed} of {epochs} "
            "epochs: nothing left to resume"
        )
