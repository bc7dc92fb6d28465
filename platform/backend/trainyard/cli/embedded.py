"""Starts, supervises and stops the embedded tier: Temporal dev server, MLflow server, backend
API and worker.

Each component runs as its own process (as in production), with its output in
`<data_dir>/logs/<name>.log`; one that dies is restarted (cli/supervisor.py). One platform runs
per data folder (cli/data_dir_lock.py). Secrets for the run are created once per data dir and
kept in `<data_dir>/secrets.json` (mode 0600) so jobs survive a restart of the platform.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from trainyard.cli.data_dir_lock import DataDirBusy, DataDirLock
from trainyard.cli.embedded_env import api_env, worker_env
from trainyard.cli.embedded_services import (
    EmbeddedStartError,
    find_temporal_cli,
    mlflow_server_command,
    mlflow_server_env,
    temporal_server_command,
    temporal_server_env,
)
from trainyard.cli.service_priority import ServicePriority, yielding
from trainyard.cli.stop_signals import sigterm_interrupts, stop_signals_held
from trainyard.cli.supervisor import ChildSpec, RestartPolicy, Supervisor
from trainyard.cli.trace_store import (
    TraceStoreError,
    ensure_traces_experiment,
    trace_export_env,
    user_chose_trace_export,
)
from trainyard.core.supervision import STATE_FILE


@dataclass(frozen=True)
class EmbeddedConfig:
    data_dir: Path
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    mlflow_port: int = 5000
    start_timeout_s: float = 90.0
    extra_env: dict[str, str] = field(default_factory=dict)
    service_priority: ServicePriority = ServicePriority.IDLE
    # How long a component has to stop after SIGTERM before it is killed: the worker may
    # need a while to tell Temporal and the API about the activities it is leaving.
    stop_grace_s: float = 15.0
    restart: RestartPolicy = field(default_factory=RestartPolicy)

    @classmethod
    def on_free_ports(cls, data_dir: Path, **options: Any) -> EmbeddedConfig:
        """A platform on free local ports, beside any other (tests, benchmarks, tools)."""
        return cls(
            data_dir=data_dir,
            api_port=free_local_port(),
            temporal_port=free_local_port(),
            temporal_ui_port=free_local_port(),
            mlflow_port=free_local_port(),
            **options,
        )

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def temporal_ui_url(self) -> str:
        return f"http://127.0.0.1:{self.temporal_ui_port}"

    @property
    def mlflow_url(self) -> str:
        """The MLflow server: tracking URI of the worker and the UI users open."""
        return f"http://127.0.0.1:{self.mlflow_port}"


def load_or_create_secrets(data_dir: Path) -> dict[str, str]:
    path = data_dir / "secrets.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    created = {
        "internal_token": secrets.token_urlsafe(32),
        "callback_secret": secrets.token_urlsafe(32),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(created, handle)
    return created


def platform_env(config: EmbeddedConfig) -> dict[str, str]:
    """The platform's own variables for this embedded platform (secrets included), before each
    component takes what it needs of them (cli/embedded_env.py)."""
    stored = load_or_create_secrets(config.data_dir)
    return {
        "TRAINYARD_DATA_DIR": str(config.data_dir),
        "TRAINYARD_TEMPORAL_ADDRESS": config.temporal_address,
        "TRAINYARD_API_HOST": config.api_host,
        "TRAINYARD_API_PORT": str(config.api_port),
        "TRAINYARD_BACKEND_URL": config.api_url,
        "TRAINYARD_CALLBACK_URL": config.api_url,
        "TRAINYARD_INTERNAL_TOKEN": stored["internal_token"],
        "TRAINYARD_MLFLOW_TRACKING_URI": config.mlflow_url,
        "TRAINYARD_CALLBACK_SECRET": stored["callback_secret"],
        # The API shows what the supervisor writes there in /readyz.
        "TRAINYARD_SUPERVISION_STATE": str(config.data_dir / STATE_FILE),
        **config.extra_env,
    }


# Below Linux's default ephemeral range (32768-60999): the kernel hands those out as the
# local ports of outgoing connections, so one picked there may be taken by a connection
# before the server it was picked for binds it ("address already in use").
_PICKED_PORTS = range(20000, 32768)
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_local_port(among: Sequence[int] = _PICKED_PORTS) -> int:
    """A port of `among` nothing uses right now, outside the range the kernel gives outgoing
    connections, for running a second platform (or a test's servers) beside the first."""
    low, high = _ephemeral_ports()
    candidates = [port for port in among if not low <= port <= high]
    if not candidates:  # a kernel configured to hand out nearly every port
        return _any_free_port()
    rng = random.SystemRandom()
    for _ in range(100):
        port = rng.choice(candidates)
        if _port_is_free(port, reuse=False):
            return port
    raise OSError(f"no free port among {len(candidates)} tried at random")


def _any_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = _EPHEMERAL_RANGE.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _port_is_free(port: int, reuse: bool = True) -> bool:
    """Whether `port` can be bound on 127.0.0.1 (`reuse`: also while it lingers in TIME_WAIT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class EmbeddedPlatform:
    """The four processes of the embedded tier: started in order, restarted when one dies
    (cli/supervisor.py), stopped in reverse."""

    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        self._supervisor = Supervisor(config.restart, config.data_dir / STATE_FILE)
        self._lock = DataDirLock(config.data_dir)

    def start(self) -> None:
        config = self.config
        try:
            self._lock.acquire(
                {
                    "API": config.api_url,
                    "Temporal": config.temporal_address,
                    "Temporal UI": config.temporal_ui_url,
                    "MLflow": config.mlflow_url,
                }
            )
        except DataDirBusy as busy:
            raise EmbeddedStartError(str(busy)) from None
        for port, what in (
            (config.api_port, "the API"),
            (config.temporal_port, "Temporal"),
            (config.temporal_ui_port, "the Temporal UI"),
            (config.mlflow_port, "MLflow"),
        ):
            if not _port_is_free(port):
                raise EmbeddedStartError(
                    f"port {port} for {what} is already in use: is another Trainyard running? "
                    "Stop it, or choose other ports (see `trainyard up --help`)."
                )
        (config.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        own = platform_env(config)
        # First, so its slow start (~10 s, mostly imports) overlaps with Temporal's.
        self._spawn(
            "mlflow",
            mlflow_server_command(config.data_dir, config.mlflow_port),
            mlflow_server_env(os.environ),
            yields_to_training=True,
        )
        self._spawn(
            "temporal",
            temporal_server_command(
                find_temporal_cli(), config.data_dir, config.temporal_port, config.temporal_ui_port
            ),
            temporal_server_env(os.environ),
            yields_to_training=True,
        )
        self._wait_for_port("temporal", config.temporal_port)
        # Before the API and the worker: they are told the trace experiment's id at start.
        self._wait_for_mlflow()
        traces = self._trace_store()
        self._spawn(
            "api",
            [sys.executable, "-m", "trainyard.api"],
            api_env(os.environ, own, traces),
            yields_to_training=True,
        )
        # Not the worker: the trainers it starts would inherit its policy, and a process
        # cannot take back priority it gave up.
        self._spawn(
            "worker",
            [sys.executable, "-m", "trainyard_workflows.worker"],
            worker_env(os.environ, own, traces),
        )
        self._wait_for_ready()
        # From here on a component that dies is restarted rather than failing the platform.
        self._supervisor.watch()

    def stop(self) -> None:
        # The worker first, and alone: its activities report their end to Temporal and the API
        # while both still answer. Stopped together, it retried against closed ports for
        # seconds before giving up. The others in reverse order of their start.
        if not self._lock.held:
            return  # never started, or refused: another platform's processes are not ours
        try:
            self._supervisor.stop([["worker"]], self.config.stop_grace_s)
        finally:
            self._lock.release()

    def check_alive(self) -> None:
        """Raise if a component ended (during start-up, before restarts take over)."""
        ended = self._supervisor.exited()
        if ended is not None:
            name, how = ended
            log_path = self.log_dir / f"{name}.log"
            raise EmbeddedStartError(
                f"{name} ended ({how}); last lines of {log_path}:\n{_tail(log_path)}"
            )

    @property
    def pids(self) -> dict[str, int]:
        """Each component's process id; each leads its own session (`start_new_session`)."""
        return self._supervisor.pids

    @property
    def state_path(self) -> Path:
        """The supervision state (core/supervision.py) the API's /readyz shows."""
        return self.config.data_dir / STATE_FILE

    @property
    def log_dir(self) -> Path:
        return self.config.data_dir / "logs"

    def _spawn(
        self, name: str, command: list[str], env: dict[str, str], yields_to_training: bool = False
    ) -> None:
        if yields_to_training:
            command = yielding(command, self.config.service_priority)
        self._supervisor.spawn(ChildSpec(name, command, env, self.log_dir / f"{name}.log"))

    def _wait_for_port(self, name: str, port: int) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if not _port_is_free(port):
                return
            time.sleep(0.2)
        raise EmbeddedStartError(f"{name} did not open port {port} in time")

    def _wait_for_mlflow(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        last_error = "no answer"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                response = httpx.get(f"{self.config.mlflow_url}/health", timeout=2)
                if response.status_code == 200:
                    return
                last_error = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last_error = str(exc)
            time.sleep(0.2)
        raise EmbeddedStartError(f"MLflow was not ready in time: {last_error}")

    def _trace_store(self) -> dict[str, str]:
        """Where the API and the worker send their spans: the local MLflow's trace experiment
        (cli/trace_store.py), unless the user's own OTEL_* variables say otherwise."""
        if user_chose_trace_export(os.environ):
            return {}
        try:
            experiment_id = ensure_traces_experiment(self.config.mlflow_url)
        except (TraceStoreError, httpx.HTTPError) as exc:
            raise EmbeddedStartError(f"MLflow's trace experiment: {exc}") from exc
        return trace_export_env(self.config.mlflow_url, experiment_id)

    def _wait_for_ready(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        last_error = "no answer"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                response = httpx.get(f"{self.config.api_url}/readyz", timeout=2)
                if response.status_code == 200:
                    return
                last_error = response.text
            except httpx.HTTPError as exc:
                last_error = str(exc)
            time.sleep(0.3)
        raise EmbeddedStartError(f"the API was not ready in time: {last_error}")


@contextmanager
def running_platform(config: EmbeddedConfig) -> Iterator[EmbeddedPlatform]:
    """The platform for the `with` block; Ctrl-C and SIGTERM end the block (KeyboardInterrupt)
    and never cut short the stop that follows."""
    platform = EmbeddedPlatform(config)
    with sigterm_interrupts():
        try:
            platform.start()
            yield platform
        finally:
            with stop_signals_held():
                platform.stop()
