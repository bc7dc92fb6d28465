"""Trainer callbacks survive an API outage: the real API process is killed mid-run and started
again on the same database, while a trainer made of the real trainer kit (its callback client,
outbox and reporter, in the kit's own environment) trains on. Every epoch's heartbeat and every
checkpoint is stored once, and ``done`` ends the job.

The kit used to give up on a callback after ~60 s (an outage of 111 s lost a
``checkpoint_saved``). Its clock and sleep are injectable, so here the kit's time runs
`SPEED` times faster than the wall clock: the outage lasts `OUTAGE_S` (three minutes) as the kit
sees it, and a few seconds of the test's time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from trainyard.cli.embedded import free_local_port

from .support import CALLBACK_SECRET, INTERNAL_HEADERS, INTERNAL_TOKEN

KIT_PYTHON = Path(__file__).resolve().parents[3] / "trainers" / "kit" / ".venv" / "bin" / "python"
EPOCHS = 10
EPOCH_S = 0.4  # wall-clock seconds per epoch
SPEED = 30.0  # the kit's seconds per wall-clock second

# A trainer as the kit's trainers are: the outbox delivers in order from its own thread, the
# reporter's keep-alives go on, `close` delivers what is queued before `done`.
TRAINER = """
import sys, time
from pathlib import Path
from trainer_kit.callbacks import CallbackClient
from trainer_kit.control import StopFlag
from trainer_kit.outcome import send_done
from trainer_kit.progress import HeartbeatReporter

url, job_id, token = sys.argv[1:4]
epochs, epoch_s, speed = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
out = Path(sys.argv[7])
origin = time.monotonic()

def clock():
    return origin + (time.monotonic() - origin) * speed

def sleep(seconds):
    time.sleep(seconds / speed)

class Reporter(HeartbeatReporter):
    def record(self, epoch):
        with self._state_lock:
            self._epoch, self._metrics = epoch, {"loss": 1.0 / epoch}

    def _keepalive(self):
        while not self._halt.wait(0.05):
            if self._beat_due():
                self.heartbeat(with_metrics=False)

with CallbackClient(url, job_id, token, clock=clock, sleep=sleep, timeout_s=5.0) as client:
    reporter = Reporter(client, StopFlag(), epochs=epochs, keepalive_s=0.2)
    reporter.start()
    for epoch in range(1, epochs + 1):
        time.sleep(epoch_s)
        reporter.record(epoch)
        checkpoint = out / f"epoch{epoch}.pt"
        checkpoint.write_bytes(b"weights of epoch %d" % epoch)
        data = {"path": str(checkpoint), "epoch": epoch}
        reporter.event("checkpoint_saved", f"epoch {epoch} checkpoint", data)
        reporter.heartbeat(with_metrics=True)
    reporter.close()
    delivered = send_done(client, "succeeded", reason=None, metrics={"loss": 0.1}, artifacts={})
sys.exit(0 if delivered else 1)
"""


class Api:
    """The API as its own process (uvicorn, SQLite in `data_dir`), stopped and started again."""

    def __init__(self, data_dir: Path, temporal_address: str) -> None:
        self.port = free_local_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(data_dir)),
            "TRAINYARD_DATA_DIR": str(data_dir),
            "TRAINYARD_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'trainyard.db'}",
            "TRAINYARD_TEMPORAL_ADDRESS": temporal_address,
            "TRAINYARD_TASK_QUEUE": f"outage-{self.port}",
            "TRAINYARD_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "TRAINYARD_CALLBACK_SECRET": CALLBACK_SECRET,
            "TRAINYARD_OWNER": "local",
            "TRAINYARD_DATASET_ROOTS": json.dumps([str(data_dir.parent)]),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        serve = ["uvicorn", "trainyard.main:create_app", "--factory", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", *serve, "--log-level", "warning"], env=self.env
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the API exited at start-up"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail("the API did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def running_api(data_dir: Path, temporal_address: str) -> Iterator[Api]:
    api = Api(data_dir, temporal_address)
    api.start()
    try:
        yield api
    finally:
        if api.process is not None and api.process.poll() is None:
            api.kill()


def _post(api: Api, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
    # The worker's token for the internal API; public routes take the local user's request.
    headers = INTERNAL_HEADERS if path.startswith("/internal/") else {}
    response = httpx.post(f"{api.url}{path}", json=json, headers=headers, timeout=10)
    assert response.status_code < 300, response.text
    body: dict[str, Any] = response.json()
    return body


def _events(api: Api, job_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{api.url}/v1/jobs/{job_id}/events", params={"limit": 1000}, timeout=10)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _stored_epochs(events: list[dict[str, Any]]) -> list[int]:
    """The epochs of the stored epoch heartbeats (those with metrics), in order."""
    return [
        e["data"]["epoch"] for e in events if e["type"] == "heartbeat" and e["data"].get("metrics")
    ]


@pytest.mark.parametrize("outage_s", [180.0])  # as the kit sees it
def test_every_epoch_and_checkpoint_is_stored_once_across_an_api_outage(
    tmp_path: Path, temporal_address: str, job_body: dict[str, Any], outage_s: float
) -> None:
    assert outage_s > 60, "longer than the window the kit used to give up after"
    with running_api(tmp_path / "data", temporal_address) as api:
        job = _post(api, "/v1/jobs", job_body)
        _post(api, f"/internal/v1/jobs/{job['id']}/transition", {"state": "STARTING"})
        out = tmp_path / "out"
        out.mkdir()
        grant = _post(api, f"/internal/v1/jobs/{job['id']}/attempts/1", {"output_dir": str(out)})
        token = grant["callback_token"]
        pace = [str(EPOCHS), str(EPOCH_S), str(SPEED)]
        trainer = subprocess.Popen(
            [str(KIT_PYTHON), "-c", TRAINER, api.url, job["id"], token, *pace, str(out)]
        )
        try:
            # Killed right after an epoch's callbacks are stored, so no epoch's callback is
            # cut in flight (a callback whose answer is lost may be stored twice: the
            # trainer's retry cannot tell).
            deadline = time.monotonic() + 30
            while 3 not in _stored_epochs(_events(api, job["id"])):
                assert time.monotonic() < deadline, "epoch 3 never stored"
                time.sleep(0.02)
            api.kill()
            time.sleep(outage_s / SPEED)
            assert trainer.poll() is None, "the trainer stopped during the outage"
            api.start()
            assert trainer.wait(timeout=60) == 0
        finally:
            if trainer.poll() is None:
                trainer.send_signal(signal.SIGKILL)
                trainer.wait()

        events = _events(api, job["id"])
        final = httpx.get(f"{api.url}/v1/jobs/{job['id']}", timeout=10).json()

    checkpoints = [e["data"]["epoch"] for e in events if e["type"] == "checkpoint_saved"]
    assert _stored_epochs(events) == list(range(1, EPOCHS + 1))
    assert checkpoints == list(range(1, EPOCHS + 1))
    assert [e["type"] for e in events].count("done") == 1
    assert final["state"] == "SUCCEEDED"
