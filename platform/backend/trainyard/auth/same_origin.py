"""The same-origin guard: only the platform's own pages, and clients that are not browsers,
reach the API. The embedded tier has no sign-in and trusts any caller on the loopback
interface, so a web page in the user's browser must not be able to act for them; in
production the same checks stand behind the sign-in.

Three rules, in this order, for every HTTP request and WebSocket handshake:

1. Host allowlist (DNS rebinding). The Host header's name (lower case, port ignored, IPv6
   without brackets) must be one of `trusted_hosts`; otherwise 403 `untrusted_host`, reads
   included: a rebound name makes the browser treat the API as the attacker's own origin.
2. Origin, on state changes (a method other than GET, HEAD, OPTIONS) and WebSocket handshakes
   (which browsers never preflight). An `Origin` header must be this request's own origin
   (scheme, Host, default ports dropped, as Django's CSRF check) or one of `trusted_origins`;
   `null` never is. Without Origin, `Sec-Fetch-Site: cross-site` or `same-site` is refused too.
   A request with neither header is not from a browser (curl, the CLI, trainers): it passes.
   Otherwise 403 `cross_site_request`.
3. JSON bodies only, on state changes with a body: `application/json` or `application/*+json`,
   or `multipart/form-data` (uploads; rule 2 keeps them same-origin). Every other type, and
   none, is 415 `unsupported_media_type`: a page may send `text/plain`, a form encoding or an
   untyped blob across sites without a preflight, and FastAPI would read some of them as JSON.

GETs with a foreign Origin pass on purpose: they change nothing, and CORS is not enabled, so
the foreign page's browser withholds the answer from it.

A pure ASGI middleware (no BaseHTTPMiddleware): one pass over the headers per request, so
the trainers' heartbeats keep their speed, and it sees WebSocket scopes as well.

`unguarded` names requests no browser can make and that carry their own rule: Prometheus
scraping a pod's internal port by its address (core.listeners.pod_scrape).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from trainyard.core.errors import Forbidden, TrainyardError
from trainyard.core.media_types import UnsupportedMediaType, json_subtype

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_FOREIGN_FETCH_SITES = frozenset({b"cross-site", b"same-site"})
_SHOWN = 100  # characters of a refused header echoed in the error (it is the caller's input)


class UntrustedHost(Forbidden):
    code = "untrusted_host"


class CrossSiteRequest(Forbidden):
    code = "cross_site_request"


def _split_host_port(netloc: str) -> tuple[str, str] | None:
    """(host, port) of `host[:port]` or `[v6][:port]`, port "" when absent; None if malformed."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            return None
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        host, _, port = netloc.partition(":")
    if not host or (port and not (port.isascii() and port.isdigit())):
        return None
    return host, port


def host_name(host_header: str) -> str | None:
    """The name of a Host header: lower case, no port, an IPv6 address without brackets."""
    parts = _split_host_port(host_header.strip().lower())
    if parts is None:
        return None
    host = parts[0]
    return host[1:-1] if host.startswith("[") else host


def normalised_origin(origin: str) -> str | None:
    """`scheme://host[:port]` in lower case with the scheme's default port dropped; None for
    anything that is not an http(s) origin (`null`, a path, user info)."""
    scheme, separator, netloc = origin.strip().lower().partition("://")
    if not separator or scheme not in _DEFAULT_PORTS or any(c in netloc for c in "/?#@"):
        return None
    parts = _split_host_port(netloc)
    if parts is None:
        return None
    host, port = parts
    if port in ("", _DEFAULT_PORTS[scheme]):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{int(port)}"


def _is_upload(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


class SameOriginGuard:
    """Refuses requests from other origins and rebound host names (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        trusted_hosts: frozenset[str],
        trusted_origins: frozenset[str],
        unguarded: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self._unguarded = unguarded
        self._hosts = frozenset(host.lower() for host in trusted_hosts)
        self._origins = frozenset(
            origin
            for origin in (normalised_origin(value) for value in trusted_origins)
            if origin is not None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or (
            self._unguarded is not None and self._unguarded(scope)
        ):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        response = JSONResponse(refusal.body(), status_code=refusal.status_code)
        if scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
            # On a WebSocket, Starlette sends this as the ASGI denial response: an HTTP answer
            # to the handshake, with the same error body.
            await response(scope, receive, send)
        else:
            # A close before accepting refuses the handshake (the server answers 403).
            await send({"type": "websocket.close", "code": 1008, "reason": refusal.code})

    def _refusal(self, scope: Scope) -> TrainyardError | None:
        host = origin = fetch_site = content_type = None
        has_body = False
        # The first of repeated headers counts, as Starlette's `Headers.get` reads them.
        for name, value in scope["headers"]:
            if name == b"host":
                host = value if host is None else host
            elif name == b"origin":
                origin = value if origin is None else origin
            elif name == b"sec-fetch-site":
                fetch_site = value if fetch_site is None else fetch_site
            elif name == b"content-type":
                content_type = value if content_type is None else content_type
            elif name == b"content-length":
                has_body = has_body or value.strip() != b"0"
            elif name == b"transfer-encoding":
                has_body = True

        host_header = None if host is None else host.decode("latin-1")
        name = None if host_header is None else host_name(host_header)
        if host_header is None or name not in self._hosts:
            shown = "none" if host_header is None else repr(host_header[:_SHOWN])
            return UntrustedHost(
                f"this API does not answer to the Host {shown}; "
                "an operator adds its name to TRAINYARD_ALLOWED_HOSTS"
            )
        is_http = scope["type"] == "http"
        if is_http and scope["method"] in _READS:
            return None

        if origin is not None:
            if not self._trusted_origin(origin.decode("latin-1"), scope["scheme"], host_header):
                return CrossSiteRequest(
                    f"a page of another origin ({origin.decode('latin-1')[:_SHOWN]!r}) may not "
                    "change anything here; behind a proxy, set TRAINYARD_PUBLIC_URL to the "
                    "address users open"
                )
        elif fetch_site in _FOREIGN_FETCH_SITES:
            return CrossSiteRequest("a page of another site may not change anything here")

        if is_http and has_body:
            media = None if content_type is None else content_type.decode("latin-1")
            if media is None or (json_subtype(media) is None and not _is_upload(media)):
                shown = "no Content-Type" if media is None else repr(media[:_SHOWN])
                return UnsupportedMediaType(
                    f"send the body as application/json (or multipart/form-data for an "
                    f"upload), not {shown}"
                )
        return None

    def _trusted_origin(self, origin: str, scheme: str, host_header: str) -> bool:
        normalised = normalised_origin(origin)
        if normalised is None:
            return False  # `null` (sandboxed frames, file: pages, some redirects) or malformed
        if normalised in self._origins:
            return True
        own = normalised_origin(f"{_HTTP_SCHEMES.get(scheme, scheme)}://{host_header}")
        return normalised == own
