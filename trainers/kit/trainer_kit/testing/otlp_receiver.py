"""A real OTLP/HTTP trace receiver (``POST /v1/traces``, protobuf, optionally gzipped) on a free
local port that keeps every span it is sent, so a test can check what a trainer exported: names,
trace ids, parents, attributes, status, and the headers the exporter sent with them."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span; ids as lowercase hex (``parent_span_id`` None for a root)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str  # "INTERNAL", "CLIENT", ...
    attributes: dict[str, Any]
    status: str  # "UNSET", "OK" or "ERROR"
    status_message: str
    start_ns: int
    end_ns: int
    service_name: str | None
    request_headers: dict[str, str]  # of the export request that carried it

    @property
    def traceparent(self) -> str:
        """This span as the parent in a W3C ``traceparent`` (sampled)."""
        return f"00-{self.trace_id}-{self.span_id}-01"


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def _spans(request: ExportTraceServiceRequest, headers: dict[str, str]) -> list[ReceivedSpan]:
    received = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        service = resource.get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                received.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        attributes={kv.key: _value(kv.value) for kv in span.attributes},
                        status=Status.StatusCode.Name(span.status.code).removeprefix(
                            "STATUS_CODE_"
                        ),
                        status_message=span.status.message,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        service_name=service if isinstance(service, str) else None,
                        request_headers=headers,
                    )
                )
    return received


@dataclass
class OtlpReceiver:
    """The spans received so far, in arrival order."""

    url: str = ""  # base URL, as OTEL_EXPORTER_OTLP_ENDPOINT
    spans: list[ReceivedSpan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    @property
    def traces_url(self) -> str:
        """The signal-specific URL, as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT."""
        return f"{self.url}{TRACES_PATH}"

    def snapshot(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.snapshot() if s.name == name]

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.spans):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True

    def add(self, spans: list[ReceivedSpan]) -> None:
        with self.changed:
            self.spans.extend(spans)
            self.changed.notify_all()


def _handler(state: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != TRACES_PATH:
                self._answer(404, b"")
                return
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            request = ExportTraceServiceRequest()
            try:
                request.ParseFromString(raw)
            except Exception:  # a malformed body is the exporter's bug: say so, keep serving
                self._answer(400, b"")
                return
            headers = {key.lower(): value for key, value in self.headers.items()}
            state.add(_spans(request, headers))
            self._answer(200, ExportTraceServiceResponse().SerializeToString())

        def _answer(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serve_otlp() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP trace receiver on a free local port, for as long as the block runs."""
    state = OtlpReceiver()
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
