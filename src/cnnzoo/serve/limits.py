"""The server's bounds, and the ASGI middleware that keeps request bodies within them.

Every request is treated as hostile: a body is refused with 413 as soon as it is known to be too
long (its Content-Length, before a byte is read; or, for a chunked body, the moment the bytes
counted so far pass the limit), a body that stalls for ``body_timeout`` seconds or is not whole
after ``body_deadline`` seconds gets 408 (reading a body holds no worker thread, only a coroutine;
the thread comes after), an answer given before the whole body was read closes the connection
(else a client could trickle the rest for ever), and inference runs at most ``max_inference`` at a
time: a request that finds them all busy gets 503 at once instead of queueing.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass

MB = 1024**2


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 10 * MB  # a photo from a phone is 2–6 MB
    # 4,000×4,000; decoding one RGB image of that size takes 48 MB
    max_image_pixels: int = 16_000_000
    max_inference: int = 2  # concurrent predictions (one per core of the reference machine)
    threads_per_inference: int = 1  # PyTorch threads each (app.use_threads)
    max_models: int = 4  # models kept loaded (LRU)
    body_timeout: float = 15.0  # seconds to wait for the next chunk of a request body
    body_deadline: float = 60.0  # seconds for a whole request body (10 MB at 170 kB/s)
    keep_alive_timeout: int = 5  # seconds an idle connection is kept open (uvicorn)
    headers_timeout: float = 5.0  # seconds a new connection has to send its request's headers
    # open connections before uvicorn answers 503 (idle ones cost little; inference
    max_connections: int = 512
    # is bounded by max_inference)


class Busy(Exception):
    """Every inference slot is taken."""


class InferenceGate:
    """At most ``slots`` inferences at once; ``enter`` never waits, it raises ``Busy``."""

    def __init__(self, slots: int) -> None:
        self._slots = threading.BoundedSemaphore(slots)

    def __enter__(self) -> InferenceGate:
        if not self._slots.acquire(blocking=False):
            raise Busy
        return self

    def __exit__(self, *exc) -> None:
        self._slots.release()


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length",
                                                                     str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Pure ASGI middleware, outermost: 413 for bodies over ``limit`` bytes, 408 for bodies that
    stall (no chunk for ``timeout`` seconds) or trickle (not whole after ``deadline`` seconds).

    When the counted bytes pass the limit (or a chunk is late) it answers at once and tells the
    application the client has gone (``http.disconnect``), so nothing more is read; what the
    application then sends is dropped.
    """

    def __init__(self, app, *, limit: int, timeout: float, deadline: float = 60.0) -> None:
        self.app, self.limit, self.timeout, self.deadline = app, limit, timeout, deadline

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"the request body is over the {self.limit / MB:g} MB limit"
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _answer(send, 413 if length.isdigit() else 400,
                          too_large if length.isdigit() else "malformed Content-Length")
            return
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        has_body = chunked or length not in (None, b"0")
        state = {"received": 0, "body_done": False, "started": False, "answered": False}
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.deadline

        async def refuse(status: int, message: str) -> dict:
            if not state["started"]:
                state["answered"] = True
                await _answer(send, status, message)
            return {"type": "http.disconnect"}

        async def counted_receive():
            if state["answered"]:
                return {"type": "http.disconnect"}
            if state["body_done"]:  # waiting for a disconnect while a response streams: no deadline
                return await receive()
            wait = min(self.timeout, give_up - loop.time())
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0))
            except asyncio.TimeoutError:
                return await refuse(408, "the request body came too slowly (a chunk every "
                                         f"{self.timeout:g} s and all of it within "
                                         f"{self.deadline:g} s)")
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["body_done"] = not message.get("more_body", False)
                if state["received"] > self.limit:
                    return await refuse(413, too_large)
            return message

        async def watched_send(message):
            if state["answered"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
                if has_body and not state["body_done"]:  # answered unread (404, 403, 421): close
                    # after it, or each byte a client trickles puts off uvicorn's keep-alive timeout
                    closing = [*message.get("headers", []), (b"connection", b"close")]
                    message = {**message, "headers": closing}
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        # the server is stopping (Ctrl-C) while a request runs: end it quietly
        except asyncio.CancelledError:
            return
        except Exception:
            if not state["answered"]:
                raise
