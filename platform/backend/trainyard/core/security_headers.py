"""Headers every HTTP answer carries so a browser treats it safely (issue 20, item 6).

`X-Content-Type-Options: nosniff` (an artifact or a JSON body is never sniffed into HTML or
script), `Referrer-Policy: no-referrer` (job and dataset ids in URLs stay here),
`X-Frame-Options: DENY` (no clickjacking; the web app's pages add CSP `frame-ancestors
'none'` too, in web/static.py), and HSTS when the platform is served over HTTPS. No route sets
these itself. A pure ASGI middleware that only appends to the response's header list: the
heartbeat path pays one small list per answer.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        """`https`: the platform's public URL is https (behind a TLS proxy the request itself
        arrives as plain HTTP); requests that arrive over HTTPS get HSTS either way."""
        self.app = app
        self._https = https
        self._with_hsts = (*_ALWAYS, _HSTS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._with_hsts if self._https or scope["scheme"] == "https" else _ALWAYS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
