"""Data-parallel training over several processes (``TRAINYARD_GPUS`` > 1).

The launching process (`launch`) checks that enough CUDA devices are visible — if not, it
sends ``trainer_started`` and ``done(failed)`` naming ``TRAINYARD_GPUS`` — and then runs
`run_workers`: ``python -m torch.distributed.run --standalone --nproc-per-node <n> --module
trainer`` (torchrun semantics: rendezvous on a free local port, ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK`` per worker) with ``TRAINYARD_DISTRIBUTED_WORKER=1`` set, so each worker runs the
attempt as one rank of the process group (`DistContext`): NCCL with one GPU per rank where CUDA
is visible, gloo on CPU otherwise (the same code path, which the tests drive on CPU). The
``Trainer`` wraps the model in DDP and shards the data.

No worker is started with a secret (trainer_kit/workers.py): torchrun gets this environment
without the callback token, the storage keys or any other token. Rank 0 takes them over from
``<output>/.trainer/secrets.json`` (readable by this user only, removed once read) before it
reads its settings; the other ranks never have them.

Only rank 0 (the leader) talks to the backend and writes the run folder: it sends every
callback, restores the checkpoint, downloads the dataset and trains the tokenizer while the
other ranks wait (`DistContext.leader_first` broadcasts the result), publishes checkpoints, and
at the end writes its exit code to ``<output>/.trainer/outcome.json``, which the launching
process returns as its own. If the workers end without that file (a crash), the launcher sends
``done(failed)`` itself.

SIGTERM reaches the launcher: it writes ``<output>/.trainer/cancel-requested`` and forwards the
signal to torchrun, which passes it to the workers; they agree at the next step boundary to stop
(an all-reduce of their stop flags after every optimizer step), and rank 0 sends
``done(cancelled)``. A worker that gets SIGTERM without that marker was stopped by torchrun
because another rank failed: rank 0 then reports a failure, not a cancellation.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from trainer_kit.callbacks import CallbackClient, CallbackError, DoneStatus
from trainer_kit.control import StopFlag
from trainer_kit.outcome import EXIT_CANCELLED, EXIT_FAILED
from trainer_kit.output_dir import trainer_dir
from trainer_kit.workers import hand_over, secrets_in, take_over, worker_env

log = logging.getLogger("trainyard.trainer.distributed")

T = TypeVar("T")

WORKER_ENV = "TRAINYARD_DISTRIBUTED_WORKER"
OUTCOME_FILE = "outcome.json"
CANCEL_MARKER = "cancel-requested"
SECRETS_FILE = "secrets.json"
# What the ranks that do not report read as their callback token: they are given none.
NO_TOKEN = "withheld-from-this-rank"
# Rank 0 may spend long on a dataset download while the others wait in a collective.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=6)


class LeaderFailed(Exception):  # noqa: N818 - a control-flow signal
    """Raised on the other ranks when rank 0's stage failed; carries rank 0's exit code."""

    def __init__(self, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(f"rank 0 failed (exit code {exit_code})")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: rank 0 of 1 unless started by `run_workers`."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> DistContext:
        env = os.environ if environ is None else environ
        if env.get(WORKER_ENV) != "1":
            return cls()
        return cls(
            rank=int(env.get("RANK", "0")),
            world_size=int(env.get("WORLD_SIZE", "1")),
            local_rank=int(env.get("LOCAL_RANK", "0")),
        )

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def init(self) -> str:
        """Join the process group (NCCL on CUDA, gloo on CPU); returns the device name."""
        import torch

        cuda = torch.cuda.is_available()
        device = f"cuda:{self.local_rank}" if cuda else "cpu"
        if not self.distributed:
            return "cuda:0" if cuda else "cpu"
        import torch.distributed as dist

        if cuda:
            torch.cuda.set_device(self.local_rank)
        if not dist.is_initialized():
            dist.init_process_group(
                backend="nccl" if cuda else "gloo", timeout=PROCESS_GROUP_TIMEOUT
            )
        return device

    def close(self) -> None:
        if not self.distributed:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank (a collective)."""
        if not self.distributed:
            return flag
        import torch
        import torch.distributed as dist

        device = f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
        tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def leader_first(self, stage: Callable[[], T], exit_code: Callable[[], int]) -> T:
        """Run ``stage`` on rank 0 only and hand its (picklable) result to every rank. If it
        raises, rank 0 re-raises and the other ranks raise `LeaderFailed` with
        ``exit_code()`` evaluated on rank 0."""
        if not self.distributed:
            return stage()
        import torch.distributed as dist

        payload: list[Any] = [None]
        if self.is_leader:
            try:
                result = stage()
            except BaseException:
                payload = [("failed", exit_code())]
                dist.broadcast_object_list(payload, src=0)
                raise
            payload = [("ok", result)]
        dist.broadcast_object_list(payload, src=0)
        status, value = payload[0]
        if status != "ok":
            raise LeaderFailed(int(value))
        result_value: T = value
        return result_value


# -- the launching process ----------------------------------------------------------------------


def write_outcome(output_dir: Path, exit_code: int) -> None:
    path = trainer_dir(output_dir) / OUTCOME_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code": exit_code}), encoding="utf-8")


def read_outcome(output_dir: Path) -> int | None:
    try:
        data = json.loads((trainer_dir(output_dir) / OUTCOME_FILE).read_text(encoding="utf-8"))
        return int(data["exit_code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def secrets_path(output_dir: Path) -> Path:
    return trainer_dir(output_dir) / SECRETS_FILE


def worker_settings_env(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The environment a worker reads its settings from. Rank 0 reports, so it takes over (into
    ``environ``, default this process's, where the storage client finds them) the secrets the
    launcher withheld from torchrun (`run_workers`); the other ranks never call the backend nor
    storage and get none, so a stand-in fills the contract's required token."""
    env = os.environ if environ is None else environ
    if not DistContext.from_environment(dict(env)).is_leader:
        return {**env, "TRAINYARD_CALLBACK_TOKEN": NO_TOKEN}
    if output_dir := env.get("TRAINYARD_OUTPUT_DIR"):
        take_over(secrets_path(Path(output_dir)), env)
    return dict(env)


def cancel_requested_by_launcher(output_dir: Path) -> bool:
    return (trainer_dir(output_dir) / CANCEL_MARKER).exists()


def torchrun_command(nproc: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "--module",
        "trainer",
    ]


def run_workers(
    output_dir: Path,
    client: CallbackClient,
    stop: StopFlag,
    nproc: int,
    *,
    poll_s: float = 0.2,
) -> int:
    """Run the attempt in ``nproc`` worker processes (torchrun) and return rank 0's exit code.
    No CUDA check: on a machine without GPUs the workers train on CPU with gloo."""
    private = trainer_dir(output_dir)
    private.mkdir(parents=True, exist_ok=True)
    for name in (OUTCOME_FILE, CANCEL_MARKER):
        (private / name).unlink(missing_ok=True)
    if stop.cancel_requested:  # SIGTERM while we were checking the GPUs
        return _report_without_outcome(client, stop, nproc, None)
    # No worker is given a secret: rank 0, the one that reports, takes them over from a file
    # only this user may read (`worker_settings_env`); torchrun and the other ranks never see them.
    hand_over(secrets_in(os.environ), secrets_path(output_dir))
    log.info("starting %d training processes: %s", nproc, " ".join(torchrun_command(nproc)))
    process = subprocess.Popen(torchrun_command(nproc), env={**worker_env(), WORKER_ENV: "1"})
    forwarded = False
    try:
        while True:
            try:
                returncode = process.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                if stop.cancel_requested and not forwarded:
                    (private / CANCEL_MARKER).touch()
                    log.warning("SIGTERM: stopping the training processes")
                    process.send_signal(signal.SIGTERM)
                    forwarded = True
    finally:
        secrets_path(output_dir).unlink(missing_ok=True)  # rank 0 never started
    outcome = read_outcome(output_dir)
    if outcome is not None:
        return outcome
    return _report_without_outcome(client, stop, nproc, returncode)


def _report_without_outcome(
    client: CallbackClient, stop: StopFlag, nproc: int, returncode: int | None
) -> int:
    """Rank 0 never reported (the workers crashed, were killed, or never started): send the
    ``done`` it would have sent."""
    cancelled = stop.cancel_requested
    status: DoneStatus = "cancelled" if cancelled else "failed"
    reason = (
        "stopped by SIGTERM"
        if cancelled
        else (
            f"DistributedTrainingError: the {nproc} training processes exited with code "
            f"{returncode} before rank 0 reported an outcome (see the trainer log)"
        )
    )
    log.error("training processes ended without an outcome (exit code %s)", returncode)
    try:
        client.done(status, reason=reason)
    except CallbackError as exc:
        log.error("done(%s) not delivered: %s", status, exc)
        return EXIT_FAILED
    return EXIT_CANCELLED if cancelled else EXIT_FAILED


def visible_cuda_devices() -> int:
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
