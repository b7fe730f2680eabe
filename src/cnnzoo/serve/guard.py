"""The explorer against a hostile page: what a browser may ask of it, and the headers it answers
with.

A page on another site can make the browser of someone running ``cnnzoo serve`` send requests to
``http://127.0.0.1:PORT``. It cannot read the answers (no CORS header allows another origin), but it
could make the server work (a POST is sent whatever the answer), and a DNS-rebinding page, whose own
name resolves to 127.0.0.1, would be "same-origin" by name. So:

* a request whose Host is not one the server answers to (its loopback names, or the address it was
  bound to) gets 421, which stops DNS rebinding;
* a state-changing request (anything but GET, HEAD and OPTIONS) from a browser must come from the
  explorer's own page: ``Sec-Fetch-Site`` same-origin (or none: typed by the user), and ``Origin``,
  when sent, this server's; others get 403. Clients that are not browsers (curl, scripts) send
  neither header and are served;
* every answer carries a Content-Security-Policy (scripts, styles and connections from this server
  only, no framing; styles may be inline, as the page sets them), ``X-Content-Type-Options:
  nosniff`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' "
       "data: blob:; connect-src 'self' data:; object-src 'none'; base-uri 'none'; form-action "
       "'self'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer")]


class Guard:
    """ASGI middleware: the Host and origin checks and the security headers above. ``hosts``: the
    host names the server answers to (None: any, for an application not bound to a socket, as in
    tests)."""

    def __init__(self, app, hosts: tuple[str, ...] | None = None) -> None:
        self.app, self.hosts = (
            app,
            None if hosts is None else {h.lower().strip("[]") for h in hosts},
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name,
                   value in scope["headers"]}
        refusal = self._refusal(scope["method"], headers)
        if refusal is not None:
            return await _answer(send, *refusal)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, method: str, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        name = urlsplit(f"//{host}").hostname or ""
        if self.hosts is not None and name not in self.hosts:
            return 421, (
                "this server does not answer to that host name; open it by the address it printed"
            )
        if method in SAFE_METHODS:
            return None
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return 403, "only the explorer's own page may send this request"
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return 403, "only the explorer's own page may send this request"
        return None


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length",
                                                                     str(len(body)).encode()),
                            *HEADERS]})
    await send({"type": "http.response.body", "body": body})
