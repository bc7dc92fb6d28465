"""The user a local trainer runs as (embedded tier, TRAINYARD_TRAINER_USER).

A trainer runs a user's training code. Run as the platform's own user it could read whatever
the platform can: `<data_dir>/secrets.json` (mode 0600, the callback signing secret and the
internal token) and the environment of the API and the worker (`/proc/<pid>/environ`). Where
the platform runs as root, trainers therefore run as an unprivileged user (`nobody` unless
configured), with no supplementary groups, a HOME of their own inside the attempt folder and
that folder as the only place they may write. Where the platform is not root, trainers run as
the platform user: the secrets file's mode is then no guard against them (docs/operations.md).

The trainer user must be able to run the trainer (its program, its interpreter, the folders
above them) and to reach its attempt folder. `reachability_problem` says what stands in the
way; a user configured by name is then refused, the default one gives way to the platform user
with a warning, since the choice depends only on how the platform is installed (an interpreter
under root's 0700 home), never on anything a job chooses.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TRAINER_USER = "nobody"
# Where the trainer's HOME lies in its attempt folder; the variables that send a framework's
# caches and settings there (torch hub, Ultralytics' settings, matplotlib, XDG tools).
HOME_FOLDER = "home"

_READ, _WRITE, _EXECUTE = 4, 2, 1


class TrainerUserError(ValueError):
    """TRAINYARD_TRAINER_USER names no user, or one this worker cannot switch to."""


@dataclass(frozen=True)
class TrainerUser:
    """A user to run trainers as; `required`: configured by name, so a trainer this user
    cannot run is not launched at all (rather than run as the platform user)."""

    name: str
    uid: int
    gid: int
    required: bool


def trainer_user_from(setting: str | None, euid: int | None = None) -> TrainerUser | None:
    """The trainer user for TRAINYARD_TRAINER_USER: unset, `nobody` when `euid` (default: this
    process's) is root and None otherwise; empty, None (the platform user); else that user."""
    euid = os.geteuid() if euid is None else euid
    if setting == "":
        return None
    name = DEFAULT_TRAINER_USER if setting is None else setting
    if setting is None and euid != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise TrainerUserError(
            f"TRAINYARD_TRAINER_USER: no user {name!r} on this machine; create it, or set "
            "TRAINYARD_TRAINER_USER to an existing unprivileged user (empty: the platform user)"
        ) from None
    if entry.pw_uid == euid:
        return None  # the platform user itself: nothing to switch
    if euid != 0:
        raise TrainerUserError(
            f"TRAINYARD_TRAINER_USER={name}: only a worker running as root can start processes "
            "as another user; unset it to run trainers as the platform user"
        )
    return TrainerUser(name, entry.pw_uid, entry.pw_gid, required=setting is not None)


def _allows(info: os.stat_result, user: TrainerUser, bits: int) -> bool:
    if info.st_uid == user.uid:
        shift = 6
    elif info.st_gid == user.gid:
        shift = 3
    else:
        shift = 0
    return (info.st_mode >> shift) & bits == bits


def _blocked(path: Path, user: TrainerUser, bits: int) -> str | None:
    """Why `user` cannot open `path` for `bits` (every folder above it traversed), or None."""
    resolved = path.resolve()
    for folder in reversed(resolved.parents):
        info = folder.stat()
        if not _allows(info, user, _EXECUTE):
            return f"{folder} (mode {stat.filemode(info.st_mode)}) is not traversable"
    info = resolved.stat()
    if not _allows(info, user, bits):
        return f"{resolved} (mode {stat.filemode(info.st_mode)}) is not open to it"
    return None


def _interpreter(executable: Path) -> Path | None:
    """The interpreter of a `#!` script (a uv console script names its venv's python)."""
    with executable.open("rb") as script:
        first = script.readline(4096)
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return Path(words[0]) if words else None


def reachability_problem(executable: Path, output_dir: Path, user: TrainerUser) -> str | None:
    """What keeps `user` from running `executable` (its interpreter included) with `output_dir`
    as its folder, or None. `output_dir` need not exist yet: the folders above it must."""
    checks: list[tuple[Path, int]] = [(executable, _READ | _EXECUTE)]
    interpreter = _interpreter(executable)
    if interpreter is not None:
        checks.append((interpreter, _READ | _EXECUTE))
    checks.append((output_dir.parent, _EXECUTE))
    for path, bits in checks:
        try:
            problem = _blocked(path, user, bits)
        except OSError as exc:
            problem = f"{path}: {exc.strerror}"
        if problem is not None:
            return problem
    return None


def prepare_attempt_dir(output_dir: Path, user: TrainerUser) -> dict[str, str]:
    """Hand `output_dir` (and a HOME inside it) to `user`; returns the variables that send the
    trainer's HOME and the caches and settings frameworks write there into it."""
    home = output_dir / HOME_FOLDER
    output_dir.mkdir(parents=True, exist_ok=True)
    # An earlier run of this attempt (its folder was the trainer's) may have left a link here:
    # the worker (root) never changes what a link points at.
    if home.is_symlink() or (home.exists() and not home.is_dir()):
        home.unlink()
    home.mkdir(exist_ok=True)
    for folder in (output_dir, home):
        os.chown(folder, user.uid, user.gid, follow_symlinks=False)
        folder.chmod(0o700)
    return {
        "HOME": str(home),
        "USER": user.name,
        "LOGNAME": user.name,
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TORCH_HOME": str(home / ".cache" / "torch"),
        "YOLO_CONFIG_DIR": str(home / ".config" / "Ultralytics"),
        "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
    }
