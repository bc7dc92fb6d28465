"""Trainers run as an unprivileged user where the worker is root (launchers/trainer_user.py):
they cannot read the platform's secrets file, write only their attempt folder and HOME, and the
launcher trusts nothing they leave there."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainyard_workflows.launchers import (
    AttemptHandle,
    LaunchRequest,
    TrainerNotInstalledError,
)
from trainyard_workflows.launchers.pid_records import PID_FILE, start_ticks
from trainyard_workflows.launchers.subprocess_launcher import LOG_FILE, SubprocessLauncher
from trainyard_workflows.launchers.trainer_user import (
    TrainerUser,
    TrainerUserError,
    trainer_user_from,
)

# A trainer that reports who it is and what it may touch; TRAINYARD_MODEL carries the path of
# the secrets file (the launcher passes contract variables only). /bin/sh: an interpreter any
# user can run, unlike a virtualenv's Python under root's home.
PROBE_TRAINER = """\
#!/bin/sh
echo "uid $(id -u) groups $(id -G)"
echo "home $HOME"
if cat "$TRAINYARD_MODEL" > /dev/null; then echo "secrets READ"; else echo "secrets refused"; fi
echo out > "$TRAINYARD_OUTPUT_DIR/out.txt" && echo "output writable"
mkdir -p "$XDG_CACHE_HOME" && touch "$XDG_CACHE_HOME/c" && echo "cache writable"
echo ready
while :; do sleep 0.05; done
"""
SECRET = "s3cr3t-callback-signing-key"


def _nobody() -> TrainerUser:
    if os.geteuid() != 0:
        pytest.fail("these tests switch users: run them as root (as the embedded tier does)")
    user = trainer_user_from(None)
    assert user is not None
    assert user.name == "nobody"
    assert not user.required
    return user


@pytest.fixture
def root() -> Iterator[Path]:
    """A platform folder the trainer user can traverse (pytest's tmp_path lies in a 0700
    folder), as `trainyard up` makes one: the data dir and the trainers beside it."""
    folder = Path(tempfile.mkdtemp(prefix="trainyard-user-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _install(root: Path, script: str = PROBE_TRAINER) -> Path:
    executable = root / "trainers" / "probe" / ".venv" / "bin" / "trainyard-trainer"
    executable.parent.mkdir(parents=True)
    executable.write_text(script)
    executable.chmod(0o755)
    return root / "trainers"


def _secrets_file(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "secrets.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f'{{"callback_secret": "{SECRET}"}}')
    return path


def _request(data_dir: Path, secrets: Path) -> LaunchRequest:
    output_dir = data_dir / "jobs" / "job_ab12" / "attempt-1"
    return LaunchRequest(
        job_id="job_ab12",
        attempt=1,
        framework="probe",
        output_dir=str(output_dir),
        env={
            "TRAINYARD_JOB_ID": "job_ab12",
            "TRAINYARD_ATTEMPT": "1",
            "TRAINYARD_MODEL": str(secrets),
            "TRAINYARD_OUTPUT_DIR": str(output_dir),
        },
    )


def _read(log: Path) -> str:
    return log.read_text() if log.exists() else ""


async def _log_with(handle: AttemptHandle, text: str) -> str:
    deadline = time.monotonic() + 15
    log = Path(handle.log_path)
    while time.monotonic() < deadline:
        content = _read(log)
        if text in content:
            return content
        await asyncio.sleep(0.02)
    pytest.fail(f"{text!r} never appeared in {log}: {_read(log)}")


def _output_dir_of(request: LaunchRequest) -> Path:
    """The attempt folder, made before the launch (as a trainer's earlier run left it)."""
    output_dir = Path(request.output_dir)
    output_dir.mkdir(parents=True)
    return output_dir


async def test_a_trainer_cannot_read_the_secrets_file_and_writes_only_its_own_folders(
    root: Path,
) -> None:
    user = _nobody()
    data_dir = root / "data"
    secrets = _secrets_file(data_dir)
    launcher = SubprocessLauncher(_install(root), user)
    handle = await launcher.launch(_request(data_dir, secrets))
    try:
        log = await _log_with(handle, "ready")
        assert f"uid {user.uid} groups {user.gid}\n" in log  # no root, no root's groups
        assert "Permission denied" in log
        assert "secrets refused" in log
        assert SECRET not in log
        assert "output writable" in log
        assert "cache writable" in log
        output_dir = Path(handle.output_dir)
        assert f"home {output_dir / 'home'}\n" in log
        assert (output_dir / "out.txt").stat().st_uid == user.uid
        # The worker (root) still reads what the trainer wrote.
        assert (output_dir / "out.txt").read_text() == "out\n"
    finally:
        # Cancelling reaches the whole group of a process of another user.
        status = await launcher.stop(handle, grace_s=1)
    assert not status.running


async def test_a_configured_user_that_cannot_run_the_trainer_is_refused(root: Path) -> None:
    default = _nobody()
    trainers = _install(root)
    (root / "trainers").chmod(0o700)  # as a virtualenv's Python under root's 0700 home
    data_dir = root / "data"
    required = TrainerUser(default.name, default.uid, default.gid, required=True)
    with pytest.raises(TrainerNotInstalledError, match="is not traversable"):
        await SubprocessLauncher(trainers, required).launch(
            _request(data_dir, _secrets_file(data_dir))
        )


async def test_the_default_user_gives_way_to_the_platform_user_with_a_warning(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainers = _install(root)
    (root / "trainers").chmod(0o700)
    data_dir = root / "data"
    launcher = SubprocessLauncher(trainers, _nobody())
    handle = await launcher.launch(_request(data_dir, _secrets_file(data_dir)))
    try:
        log = await _log_with(handle, "ready")
        assert f"uid {os.geteuid()} " in log
        assert "run as the platform user" in caplog.text
    finally:
        await launcher.stop(handle, grace_s=0)


async def test_a_pid_file_naming_another_users_process_is_not_adopted(root: Path) -> None:
    user = _nobody()
    data_dir = root / "data"
    request = _request(data_dir, _secrets_file(data_dir))
    output_dir = _output_dir_of(request)
    # What a trainer owning its folder could write: the worker's own pid, so a later stop
    # would signal the worker's (or the API's) process group.
    forged = (
        f'{{"pid": {os.getpid()}, "launched_at": 1.0, "start_ticks": {start_ticks(os.getpid())}}}'
    )
    (output_dir / PID_FILE).write_text(forged)
    launcher = SubprocessLauncher(_install(root), user)
    handle = await launcher.launch(request)
    assert handle.pid != os.getpid()  # (stopping that handle would signal this process)
    try:
        await _log_with(handle, "ready")
    finally:
        await launcher.stop(handle, grace_s=0)


async def test_links_a_trainer_leaves_in_its_folder_are_never_followed(root: Path) -> None:
    user = _nobody()
    data_dir = root / "data"
    request = _request(data_dir, _secrets_file(data_dir))
    output_dir = _output_dir_of(request)
    target = root / "platform-file"
    target.write_text("platform line\n")
    (output_dir / LOG_FILE).symlink_to(target)
    (output_dir / f".{PID_FILE}.tmp").symlink_to(target)
    launcher = SubprocessLauncher(_install(root), user)
    handle = await launcher.launch(request)
    try:
        await _log_with(handle, "ready")
        assert target.read_text() == "platform line\n"  # neither appended to nor overwritten
        (output_dir / LOG_FILE).unlink()
        (output_dir / LOG_FILE).symlink_to(target)
        assert await launcher.log_tail(handle, 10) == []
    finally:
        await launcher.stop(handle, grace_s=0)


def test_the_trainer_user_setting() -> None:
    assert trainer_user_from(None, euid=1000) is None  # not root: the platform user
    assert trainer_user_from("", euid=0) is None  # empty: the platform user, chosen
    nobody = trainer_user_from(None, euid=0)
    assert nobody is not None
    assert (nobody.name, nobody.required) == ("nobody", False)
    named = trainer_user_from("nobody", euid=0)
    assert named is not None
    assert named.required
    with pytest.raises(TrainerUserError, match="no user 'no-such-trainer-user'"):
        trainer_user_from("no-such-trainer-user", euid=0)
    with pytest.raises(TrainerUserError, match="only a worker running as root"):
        trainer_user_from("nobody", euid=1000)
    assert trainer_user_from("root", euid=0) is None  # the platform user, named
