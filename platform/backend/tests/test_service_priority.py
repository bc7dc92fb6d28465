"""How the embedded tier starts its background services (decision 010): under SCHED_IDLE by
default, or SCHED_BATCH at niceness +10 (`trainyard up --services low`), each through an exec
wrapper that keeps the pid. Checked on real processes, as the kernel reports them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from trainyard.cli.service_priority import SERVICE_NICENESS, ServicePriority, yielding

_REPORT = "import os; print(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))"


@pytest.mark.parametrize(
    ("priority", "policy", "added_niceness"),
    [
        (ServicePriority.IDLE, os.SCHED_IDLE, 0),
        (ServicePriority.LOW, os.SCHED_BATCH, SERVICE_NICENESS),
    ],
)
def test_a_service_runs_under_the_chosen_policy(
    priority: ServicePriority, policy: int, added_niceness: int
) -> None:
    ours = os.getpriority(os.PRIO_PROCESS, 0)

    reported = subprocess.run(
        yielding([sys.executable, "-c", _REPORT], priority),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    assert [int(value) for value in reported] == [policy, min(ours + added_niceness, 19)]


def test_the_pid_is_the_services_own() -> None:
    """The wrappers exec the service: the platform signals and watches that very process."""
    process = subprocess.Popen(
        yielding([sys.executable, "-c", "import os; print(os.getpid())"], ServicePriority.LOW),
        stdout=subprocess.PIPE,
        text=True,
    )
    printed, _ = process.communicate(timeout=30)

    assert int(printed) == process.pid
