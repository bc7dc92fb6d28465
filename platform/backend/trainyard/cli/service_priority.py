"""How the embedded tier's background services yield the CPU to the training (decision 010)."""

from __future__ import annotations

import shutil
from enum import StrEnum


class ServicePriority(StrEnum):
    """How the embedded tier's background services (Temporal, MLflow, the API) yield the CPU to
    the training (decision 010). On one machine the training is the user's work, and a service
    that wakes while every core trains pre-empts one of the trainer's threads, which the others
    then wait for."""

    # SCHED_IDLE: a service that wakes never pre-empts a running task, so it runs when a core
    # has room. Where the kernel does not group tasks by session (autogroup), it also weighs
    # almost nothing: while a trainer keeps every core busy, the API may answer in a second.
    IDLE = "idle"
    # SCHED_BATCH at niceness +10: no wake-up pre-emption either, and a small share of the CPU
    # that keeps the API answering in tens of ms on such a machine, at ~1-2 % more waiting for
    # the trainer's threads. (Nice alone does little: under autogroup it only weighs against
    # the tasks of the same session, and each service leads its own.)
    LOW = "low"


SERVICE_NICENESS = 10


def yielding(command: list[str], priority: ServicePriority) -> list[str]:
    """`command` started through util-linux' chrt (and coreutils' nice for LOW), which exec it:
    the pid stays the same. Without chrt, through nice alone."""
    chrt, nice = shutil.which("chrt"), shutil.which("nice")
    niced = [nice, "-n", str(SERVICE_NICENESS), *command] if nice else command
    if chrt is None:
        return niced
    if priority is ServicePriority.IDLE:
        return [chrt, "--idle", "0", *command]
    return [chrt, "--batch", "0", *niced]
