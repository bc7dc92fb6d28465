"""Data-parallel training over several processes (``TRAINYARD_GPUS`` > 1).

The launching process (the one the platform started; trainer/launcher.py) keeps the attempt's
whole conversation with the backend and object storage. It runs `run_workers`: ``python -m
torch.distributed.run --standalone --nproc-per-node <n> --module trainer`` (torchrun semantics:
rendezvous on a free local port, ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` per worker) with
``TRAINYARD_DISTRIBUTED_WORKER=1`` set, so each worker runs the attempt as one rank of the
process group (`DistContext`): NCCL with one GPU per rank where CUDA is visible, gloo on CPU
otherwise (the same code path, which the tests drive on CPU). The ``Trainer`` wraps the model in
DDP and shards the data.

No worker is given a secret (trainer_kit/workers.py): torchrun gets this environment without the
callback token, the storage keys or any other token, and no rank ever calls the backend or
storage. Rank 0 writes the run folder (checkpoints, ``results.csv``, the final model) and hands
each epoch and its end over to the launcher through files (trainer/handover.py); the ranks
share the tokenizer rank 0 trains (`DistContext.leader_first`).

SIGTERM reaches the launcher, which forwards it to torchrun (and kills torchrun if it lingers
`KILL_AFTER_S` later); torchrun passes it on to the workers, and they agree at the next step
boundary to stop (an all-reduce of their stop flags after every optimizer step). A refused
callback or a failed upload in the launcher stops the workers the same way.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from trainer_kit.callbacks import clean_metrics
from trainer_kit.control import StopFlag
from trainer_kit.workers import worker_env

log = logging.getLogger("trainyard.trainer.distributed")

T = TypeVar("T")

WORKER_ENV = "TRAINYARD_DISTRIBUTED_WORKER"
# What the ranks read as their callback token: they are given none.
NO_TOKEN = "withheld-from-the-workers"
KILL_AFTER_S = 60.0
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


class WorkerError(RuntimeError):
    """The workers failed; ``reason`` is the first failing worker's own ``<type>: <message>``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def worker_settings_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a worker reads its settings from: its own, with a stand-in for the
    contract's required token, which no worker is given (no worker calls the backend)."""
    env = os.environ if environ is None else environ
    return {**env, "TRAINYARD_CALLBACK_TOKEN": NO_TOKEN}


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


def _stop_workers(proc: subprocess.Popen[bytes], stop: StopFlag, halt: threading.Event) -> None:
    """Forward a stop request to torchrun (SIGTERM), then kill it if it lingers."""
    while not halt.wait(0.2):
        if stop.stop_requested:
            log.warning("stopping the training processes")
            proc.send_signal(signal.SIGTERM)
            if not halt.wait(KILL_AFTER_S) and proc.poll() is None:
                log.error("torchrun still running %.0f s after SIGTERM: killing it", KILL_AFTER_S)
                proc.kill()
            return


def run_workers(nproc: int, stop: StopFlag) -> int:
    """Run the attempt in ``nproc`` worker processes (torchrun) until they end; returns
    torchrun's exit code. No CUDA check: without GPUs the workers train on CPU with gloo."""
    command = torchrun_command(nproc)
    log.info("starting %d training processes: %s", nproc, " ".join(command))
    # The workers never call the backend nor storage: they get no secret.
    proc = subprocess.Popen(command, env={**worker_env(), WORKER_ENV: "1"})
    halt = threading.Event()
    stopper = threading.Thread(
        target=_stop_workers, args=(proc, stop, halt), name="ddp-stopper", daemon=True
    )
    stopper.start()
    try:
        return proc.wait()
    finally:
        halt.set()
        stopper.join()
        if proc.poll() is None:  # interrupted while waiting
            proc.kill()
            proc.wait()


def worker_result(
    outcomes: Mapping[int, Mapping[str, Any]], returncode: int, nproc: int
) -> dict[str, float]:
    """Rank 0's final metrics from the ranks' outcomes; raises `WorkerError` naming the first
    failure (or saying that none was reported)."""
    failed = sorted(
        (o for o in outcomes.values() if o.get("status") == "failed"),
        key=lambda o: float(o.get("at") or 0),
    )
    if failed:
        raise WorkerError(str(failed[0].get("reason") or "training process failed"))
    main = outcomes.get(0, {})
    if main.get("status") == "succeeded" and returncode == 0:
        return clean_metrics(main.get("metrics"))
    if main.get("status") in ("cancelled", "stopped"):
        # Not our SIGTERM (the launcher checks its own first): torchrun stopped rank 0 because
        # another rank died without saying why.
        raise WorkerError(
            "DistributedTrainingError: another training process failed and the run was "
            "stopped (see the trainer log)"
        )
    raise WorkerError(
        f"DistributedTrainingError: the {nproc} training processes exited with code "
        f"{returncode} before rank 0 reported an outcome (see the trainer log)"
    )


def visible_cuda_devices() -> int:
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
