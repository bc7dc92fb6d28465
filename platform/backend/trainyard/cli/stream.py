"""Follow a job's event stream over WebSocket, reconnecting with `after_seq` so nothing is
missed or shown twice."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.sync.client import connect

from trainyard.cli.caller import RUN_LOGIN, Caller
from trainyard.cli.errors import NotSignedIn, PlatformError

Event = dict[str, Any]

# Close codes the server uses (see trainyard.stream.websocket).
_CLOSE_NORMAL = 1000
_CLOSE_UNKNOWN_JOB = 4404
# A refused handshake closes with 4000 + the HTTP status it would have had.
_CLOSE_UNAUTHORIZED = 4401
_CLOSE_FORBIDDEN = 4403


def follow_events(
    stream_url: str,
    job_id: str,
    after_seq: int = 0,
    *,
    caller: Caller,
    give_up_after_s: float = 120.0,
    on_reconnect: Callable[[str], None] | None = None,
) -> Iterator[Event]:
    """Yield the job's events in `seq` order until the server closes after the terminal one.

    A dropped connection (backend restart, network blip, slow-consumer close) reconnects with
    the last seen `seq`; the server replays what was missed, and anything at or below the last
    seen `seq` is dropped here as a second guard against duplicates. The handshake carries the
    caller's headers; a refused one is retried once with a refreshed sign-in.
    """
    last_seq = after_seq
    retry_headers: dict[str, str] | None = None
    refused = False
    down_since: float | None = None
    delay = 0.25
    while True:
        url = f"{stream_url.rstrip('/')}/v1/jobs/{job_id}/stream?after_seq={last_seq}"
        # Fresh on every connect: a long watch outlives an access token.
        headers, retry_headers = retry_headers or caller.headers(), None
        try:
            with connect(url, open_timeout=10, max_size=2**22, additional_headers=headers) as ws:
                down_since, delay = None, 0.25
                for raw in ws:
                    event: Event = json.loads(raw)
                    seq = int(event["seq"])
                    if seq <= last_seq:
                        continue
                    last_seq = seq
                    refused = False
                    yield event
                code = ws.close_code
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
        except (OSError, InvalidStatus, TimeoutError) as exc:
            code = None
            reason = str(exc)
            if down_since is None:
                down_since = time.monotonic()
            elif time.monotonic() - down_since > give_up_after_s:
                raise PlatformError(
                    f"lost the event stream of {job_id} for {give_up_after_s:.0f}s: {reason}"
                ) from exc
        except InvalidURI as exc:
            raise PlatformError(f"bad stream URL {url}: {exc}") from exc
        if code == _CLOSE_NORMAL:
            return
        if code == _CLOSE_UNKNOWN_JOB:
            raise PlatformError(f"job {job_id} does not exist")
        if code == _CLOSE_UNAUTHORIZED:
            retry_headers = None if refused else caller.headers_after_refusal()
            if retry_headers is None:
                raise NotSignedIn(f"the stream of {job_id} refused your sign-in: {RUN_LOGIN}")
            refused = True
            continue
        if code == _CLOSE_FORBIDDEN:
            raise PlatformError(f"your role may not follow {job_id}")
        if on_reconnect is not None:
            on_reconnect(f"stream interrupted (code {code}); resuming after seq {last_seq}")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
