"""Fixtures: tiny synthetic datasets, a recording callback server, a trainer launcher, and a
real S3 endpoint (moto in server mode)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TOKEN = "test-token-secret"
JOB_ID = "job_test"
IMGSZ = 32
# A tiny transformer: fast on two CPU cores.
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
TINY_VIT = {**TINY, "patch_size": 8}
IMAGE_HYPERPARAMETERS = {"model_config": TINY_VIT, "learning_rate": 1e-3}
TEXT_HYPERPARAMETERS = {"model_config": TINY, "learning_rate": 1e-3, "max_length": 32}


# -- datasets -----------------------------------------------------------------------------------


def make_image_dataset(root: Path, *, n_train: int = 16, n_val: int = 8, seed: int = 0) -> Path:
    """An ImageFolder of 32x32 images: red squares (class ``red``), blue circles (``blue``)."""
    rnd = random.Random(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        for i in range(count):
            cls = ("red", "blue")[i % 2]
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            grey = rnd.randint(0, 60)
            image = Image.new("RGB", (IMGSZ, IMGSZ), (grey, grey, grey))
            draw = ImageDraw.Draw(image)
            size = rnd.randint(10, 20)
            x0, y0 = rnd.randint(0, IMGSZ - size), rnd.randint(0, IMGSZ - size)
            box = (x0, y0, x0 + size, y0 + size)
            if cls == "red":
                draw.rectangle(box, fill=(230, 30, 30))
            else:
                draw.ellipse(box, fill=(30, 30, 230))
            image.save(folder / f"{split}_{i}.png")
    return root


POSITIVE = ["great", "lovely", "excellent", "wonderful", "good", "happy", "superb"]
NEGATIVE = ["awful", "terrible", "bad", "horrible", "sad", "poor", "dreadful"]
NOUNS = ["film", "meal", "trip", "book", "show", "game", "day"]


def make_text_dataset(
    root: Path, *, fmt: str = "jsonl", n_train: int = 24, n_val: int = 8, seed: int = 0
) -> Path:
    """``train.<fmt>``/``val.<fmt>`` with ``text`` and ``label`` (``pos``/``neg``)."""
    rnd = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n_train), ("val", n_val)):
        records = []
        for i in range(count):
            label = ("pos", "neg")[i % 2]
            words = POSITIVE if label == "pos" else NEGATIVE
            text = f"a {rnd.choice(words)} {rnd.choice(NOUNS)}, really {rnd.choice(words)}"
            records.append({"text": text, "label": label})
        path = root / f"{split}.{fmt}"
        if fmt == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        else:
            lines = ["text,label"] + [f'"{r["text"]}",{r["label"]}' for r in records]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def image_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_dataset(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def text_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_text_dataset(tmp_path_factory.mktemp("texts"))


# -- callback server ----------------------------------------------------------------------------


@dataclass
class Call:
    kind: str
    path: str
    authorization: str | None
    body: dict[str, Any]
    status: int
    at: float


Responder = Callable[[str, dict[str, Any]], int]


@dataclass
class CallbackServer:
    """Records every callback; `responder(kind, body)` picks the HTTP status (default 202)."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    responder: Responder = field(default=lambda kind, body: 202)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def record(self, call: Call) -> None:
        with self.changed:
            self.calls.append(call)
            self.changed.notify_all()

    def snapshot(self) -> list[Call]:
        with self.lock:
            return list(self.calls)

    def of(self, kind: str) -> list[Call]:
        return [c for c in self.snapshot() if c.kind == kind]

    def wait_for(self, predicate: Callable[[list[Call]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.calls):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True


def _handler(server_state: CallbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                body = {"_invalid_json": raw.decode("utf-8", "replace")}
            kind = self.path.rstrip("/").rsplit("/", 1)[-1]
            status = server_state.responder(kind, body)
            server_state.record(
                Call(
                    kind=kind,
                    path=self.path,
                    authorization=self.headers.get("Authorization"),
                    body=body,
                    status=status,
                    at=time.monotonic(),
                )
            )
            payload = json.dumps({"detail": "recorded"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)  # the trainer may have been killed meanwhile

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serve_callbacks() -> Iterator[CallbackServer]:
    """A recording callback server on a free local port, for as long as the block runs."""
    state = CallbackServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def callback_server() -> Iterator[CallbackServer]:
    with serve_callbacks() as state:
        yield state


# -- launching the trainer ----------------------------------------------------------------------


def trainer_env(
    server_url: str,
    dataset: Path,
    output_dir: Path,
    home: Path,
    **overrides: str,
) -> dict[str, str]:
    """A clean environment for the trainer subprocess (no pytest markers, a private HOME);
    by default a tiny ViT on the image dataset."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("TRAINYARD_", "PYTEST_", "HF_", "TRANSFORMERS_", "MPLCONFIGDIR", "AWS_")
        )
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PYTHONUNBUFFERED="1",
        TRAINYARD_JOB_ID=JOB_ID,
        TRAINYARD_ATTEMPT="1",
        TRAINYARD_CALLBACK_URL=server_url,
        TRAINYARD_CALLBACK_TOKEN=TOKEN,
        TRAINYARD_MODEL="vit",
        TRAINYARD_DATASET_URI=dataset.resolve().as_uri(),
        TRAINYARD_OUTPUT_DIR=str(output_dir),
        TRAINYARD_EPOCHS="2",
        TRAINYARD_IMGSZ=str(IMGSZ),
        TRAINYARD_BATCH="8",
        TRAINYARD_GPUS="0",
        TRAINYARD_HYPERPARAMETERS=json.dumps(IMAGE_HYPERPARAMETERS),
        TRAINYARD_KEEPALIVE_S="1",
    )
    env.update(overrides)
    return env


def start_trainer(env: Mapping[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trainer"],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_trainer(
    env: Mapping[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer"],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- object storage -----------------------------------------------------------------------------

S3_KEY_ID = "test-key-id"
S3_SECRET = "test-secret-access-key-do-not-print"
S3_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    """A real S3 HTTP endpoint (moto in server mode) and credentials it accepts."""

    url: str

    def client(self) -> S3Client:
        import boto3

        client: S3Client = boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            region_name=S3_REGION,
        )
        return client

    def env(self) -> dict[str, str]:
        """The standard variables the trainer reads (as the worker hands them over)."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": S3_REGION,
        }

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def upload_folder(self, folder: Path, bucket: str, prefix: str) -> None:
        client = self.client()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Endpoint(url=f"http://{host}:{port}")
    finally:
        server.stop()


def closed_port_url() -> str:
    """An http URL on which nothing listens (the port was free a moment ago)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
