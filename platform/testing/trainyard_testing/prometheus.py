"""The real Prometheus and promtool for the tests (Debian's `prometheus` package).

`PrometheusServer` runs the server on a free port, scraping the given targets every
`SCRAPE_INTERVAL`, with its config and data in a temporary folder; `query` and `wait_for` ask
its HTTP API. `promtool_check_metrics` lints a /metrics text as `promtool check metrics`
does. A missing binary fails the test naming the package and `make prometheus`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import pytest

from trainyard.cli.embedded import free_local_port

SCRAPE_INTERVAL = "1s"
START_S = 60
# A PromQL instant vector as the HTTP API returns it: [{"metric": {...}, "value": [t, "v"]}].
Vector = list[dict[str, Any]]


def find_tool(name: str) -> str:
    """The path of `prometheus` or `promtool`; fails the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed: install Debian's `prometheus` package "
            "(`make prometheus`, or `sudo apt-get install prometheus`)"
        )
    return path


def promtool_check_metrics(text: str) -> None:
    """Fail the test with promtool's findings unless `text` passes `promtool check metrics`
    (the exposition format and Prometheus' naming conventions)."""
    checked = subprocess.run(
        [find_tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if checked.returncode != 0 or checked.stdout.strip() or checked.stderr.strip():
        pytest.fail(f"promtool check metrics: {checked.stdout}{checked.stderr}")


def values(vector: Vector) -> list[float]:
    """The sample values of a query's result."""
    return [float(sample["value"][1]) for sample in vector]


class PrometheusServer:
    """A real Prometheus scraping `targets` (job name → ["host:port", ...]) at `metrics_path`.

    Use as a context manager; the process is killed and its folder removed on exit.
    `rule_files` are loaded as well (alerting and recording rules).
    """

    def __init__(
        self,
        targets: Mapping[str, Sequence[str]],
        *,
        metrics_path: str = "/metrics",
        rule_files: Sequence[Path] = (),
        scrape_interval: str = SCRAPE_INTERVAL,
    ) -> None:
        self._binary = find_tool("prometheus")
        self._targets = targets
        self._metrics_path = metrics_path
        self._rule_files = list(rule_files)
        self._scrape_interval = scrape_interval
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.url = ""

    def __enter__(self) -> PrometheusServer:
        self._folder = tempfile.TemporaryDirectory(prefix="prometheus-")
        root = Path(self._folder.name)
        config = {
            "global": {
                "scrape_interval": self._scrape_interval,
                "evaluation_interval": self._scrape_interval,
            },
            "rule_files": [str(path) for path in self._rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": self._metrics_path,
                    "static_configs": [{"targets": list(addresses)}],
                }
                for job, addresses in self._targets.items()
            ],
        }
        # JSON is YAML: no YAML writer needed.
        (root / "prometheus.yml").write_text(json.dumps(config))
        port = free_local_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = (root / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                self._binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def log(self) -> str:
        """The server's own output so far (for failure messages)."""
        if self._folder is None:
            return ""
        path = Path(self._folder.name) / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_S
        while True:
            if self._process.poll() is not None:
                pytest.fail(f"prometheus exited with {self._process.returncode}: {self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus was not ready within {START_S}s: {self.log()}")
            time.sleep(0.2)

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=30)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def query(self, promql: str) -> Vector:
        """The instant query's result vector (an error answer fails the test)."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            pytest.fail(f"prometheus refused {promql!r}: {body.get('error', answer.text)}")
        result = body["data"]["result"]
        if body["data"]["resultType"] != "vector":
            pytest.fail(f"{promql!r} is a {body['data']['resultType']}, not an instant vector")
        vector: Vector = result
        return vector

    def targets_health(self) -> dict[str, str]:
        """Each scrape target's health ("up", "down", "unknown") by its scrape URL."""
        answer = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["scrapeUrl"]: t["health"] for t in answer["data"]["activeTargets"]}

    def wait_for(
        self,
        promql: str,
        timeout: float = 30,
        until: Callable[[Vector], bool] = bool,
    ) -> Vector:
        """Query until `until(result)` holds (by default: a non-empty result); the result.
        Fails the test with the last result and the targets' health after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if until(result):
                return result
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{promql!r} gave {result} after {timeout:g}s; targets: {self.targets_health()}"
                )
            time.sleep(0.25)
