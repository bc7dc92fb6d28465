"""Lean HTTP/1.1 and WebSocket clients for the live-path benchmarks.

Why not httpx and websockets: per request or frame they spend several times the CPU of the
server work being measured, and on a two-core machine the load generator then becomes the
bottleneck. These do the least a client must: keep-alive HTTP/1.1 with Content-Length bodies,
and RFC 6455 WebSocket clients that time-stamp each frame as its bytes arrive.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import cast

_SENT_AT = b'"sent_at":'


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        )
        self._writer.write(head.encode() + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


def sent_at_of(payload: bytes) -> float | None:
    """The `sent_at` metric the sender put in a heartbeat, read without parsing the JSON."""
    start = payload.find(_SENT_AT)
    if start < 0:
        return None
    start += len(_SENT_AT)
    end = start
    while payload[end] not in b",}":
        end += 1
    return float(payload[start:end])


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask), short payloads only (pong, close)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


OnText = Callable[[bytes, float], None]


class StreamClient(asyncio.Protocol):
    """A WebSocket client that hands each text frame and its arrival time to `on_text`."""

    def __init__(self, host: str, path: str, on_text: OnText) -> None:
        self._host = host
        self._path = path
        self._on_text = on_text
        self._buffer = bytearray()
        self._upgraded = False
        self._transport: asyncio.Transport | None = None
        self.frames = 0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are transports without being asyncio.Transport subclasses.
        self._transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self._transport.write(
            (
                f"GET {self._path} HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buffer[:end]:
                raise RuntimeError(f"WebSocket upgrade refused: {bytes(buffer[:end])!r}")
            del buffer[: end + 4]
            self._upgraded = True
        while len(buffer) >= 2:
            opcode, size, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if size == 126:
                size, offset = int.from_bytes(buffer[2:4]), 4
            elif size == 127:
                size, offset = int.from_bytes(buffer[2:10]), 10
            if len(buffer) < offset + size:
                return
            payload = bytes(buffer[offset : offset + size])
            del buffer[: offset + size]
            if opcode == 0x1:
                self.frames += 1
                self._on_text(payload, arrived)
            elif opcode == 0x9 and self._transport is not None:
                self._transport.write(_masked_frame(0xA, payload))
            elif opcode == 0x8 and self._transport is not None:
                self._transport.write(_masked_frame(0x8, payload[:2]))
                self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_masked_frame(0x8, (1000).to_bytes(2)))
            self._transport.close()


async def listen(
    host: str, port: int, path: str, clients: int, expected: int
) -> tuple[list[float], float]:
    """Connect `clients` streams; print "ready" once each got a frame (so it is subscribed),
    then return the latency of every heartbeat carrying `sent_at` until each client got
    `expected` of them (or 60 s passed), and the CPU seconds this process spent meanwhile."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    all_done = loop.create_future()

    def on_text(payload: bytes, arrived: float) -> None:
        sent_at = sent_at_of(payload)
        if sent_at is None:
            return
        latencies.append(arrived - sent_at)
        if len(latencies) == clients * expected and not all_done.done():
            all_done.set_result(None)

    def client() -> StreamClient:
        return StreamClient(f"{host}:{port}", path, on_text)

    streams: list[StreamClient] = []
    for _ in range(clients):
        _, protocol = await loop.create_connection(client, host, port)
        streams.append(protocol)
    deadline = time.monotonic() + 60
    while any(stream.frames == 0 for stream in streams):
        if time.monotonic() > deadline:
            raise RuntimeError("not every stream received its first event within 60 s")
        await asyncio.sleep(0.05)
    # The measuring instrument must not pause: a full collection over 1000 client objects
    # took ~100 ms here and showed up as latency of every frame behind it. Nothing it makes
    # from now on needs the cycle collector, and it exits after this run.
    gc.collect()
    gc.freeze()
    gc.disable()
    cpu_at_start = time.process_time()
    print("ready", flush=True)
    if expected:
        with contextlib.suppress(TimeoutError):  # the caller reports missing deliveries
            await asyncio.wait_for(all_done, 60)
    cpu_s = time.process_time() - cpu_at_start
    for stream in streams:
        stream.close()
    await asyncio.gather(*(stream.closed for stream in streams))
    return latencies, cpu_s


def write_report(latencies: list[float], cpu_s: float) -> None:
    """Write what `listen` measured to stdout, for `read_report` in the bench's process.

    Not with one write: a blocking write to a full pipe that something interrupts returns what
    it had copied so far, and Python's stdout then drops the rest without an error. Here uvloop
    did it, its loop closed just before (one bench run in two cut the ~600 KB report at
    262,144 bytes); os.write in a loop goes on from wherever a write stopped."""
    data = memoryview(json.dumps({"latencies": latencies, "cpu_s": cpu_s}).encode())
    sys.stdout.flush()  # "ready" went first
    while data:
        data = data[os.write(sys.stdout.fileno(), data) :]


async def read_report(listener: asyncio.subprocess.Process) -> tuple[list[float], float]:
    """The latencies and CPU seconds a listener process wrote with `write_report`."""
    assert listener.stdout is not None
    data = await listener.stdout.read()  # to the end: the listener has closed its stdout
    if (code := await listener.wait()) != 0:
        raise RuntimeError(f"the stream clients exited with code {code}")
    report = json.loads(data)
    return report["latencies"], report["cpu_s"]
