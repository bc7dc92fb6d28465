"""The live-path bench's stream clients hand what they measured to the bench through a pipe
(bench/wire_clients.py): all of it, even when a write to the pipe is cut short."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
from bench.wire_clients import read_report

_LATENCIES = [index / 7 for index in range(40_000)]  # ~800 KB of JSON, as 1000 clients x 30
_CLIENTS = f"""
import signal
from bench.wire_clients import write_report

signal.signal(signal.SIGUSR1, lambda *_: None)
print("ready", flush=True)
write_report([index / 7 for index in range({len(_LATENCIES)})], 1.5)
"""


def _blocked_writing_stdout(pid: int) -> bool:
    # write(2) is syscall 1 on x86-64 and its first argument the descriptor, here 1; a process
    # that is running shows "running" instead.
    return Path(f"/proc/{pid}/syscall").read_text().startswith("1 0x1 ")


async def test_the_bench_reads_the_whole_report_though_a_write_was_cut_short() -> None:
    # In the bench the cut came from uvloop, whose loop had just closed in the clients' process
    # (one run in two, the report cut at 262,144 bytes); a signal cuts a blocked write the same
    # way, every time: write(2) returns what it had copied so far.
    clients = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLIENTS, stdout=asyncio.subprocess.PIPE
    )
    assert clients.stdout is not None
    assert await clients.stdout.readline() == b"ready\n"
    # The bench is busy sending heartbeats meanwhile: the pipe fills and the clients wait.
    for _ in range(1000):
        if _blocked_writing_stdout(clients.pid):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the clients never waited for the pipe")
    clients.send_signal(signal.SIGUSR1)
    assert await read_report(clients) == (_LATENCIES, 1.5)
