"""A real S3 HTTP endpoint for tests (moto in server mode; boto3 unchanged), and an endpoint
that cannot be reached."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


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


# Bound, never listening: connections to them are refused, and while this process lives no
# other process (a parallel test worker's server) can take their ports.
_HELD_PORTS: list[socket.socket] = []


def closed_port_url() -> str:
    """An http URL on which nothing listens, for as long as this process runs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def serve_s3() -> Iterator[S3Endpoint]:
    """moto's S3 server on a free local port, for as long as the block runs."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Endpoint(url=f"http://{host}:{port}")
    finally:
        server.stop()
