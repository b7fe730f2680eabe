"""The explorer's application: ``create_app`` builds it (FastAPI inside the body-limit middleware)
and ``serve`` runs it on uvicorn until Ctrl-C.

The server binds its socket itself before uvicorn starts, so a port in use is a one-line error and
``--port 0`` takes a free port (the printed URL has the real one).
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cnnzoo.errors import ConfigError
from cnnzoo.serve.comparison import ComparisonCache
from cnnzoo.serve.guard import Guard
from cnnzoo.serve.limits import BodyLimit, InferenceGate, Limits
from cnnzoo.serve.models import ModelCache
from cnnzoo.serve.runs import check_runs_dir

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Explorer:
    """What every request reads: the runs folder, the loaded models, the inference slots and the
    limits."""

    root: Path
    limits: Limits
    cache: ModelCache
    gate: InferenceGate
    run_code: bool = False  # runs imported with --code may be opened (their Python runs)
    precision: str = "fp32"  # the predictions' precision (``serve.precision``); views stay fp32
    comparisons: ComparisonCache = field(default_factory=ComparisonCache)  # /api/compare's


def create_app(runs_dir: str | Path, limits: Limits = Limits(), *, data_dir: str | None = None,
               hosts: tuple[str, ...] | None = None, run_code: bool = False,
               precision: str = "fp32"):
    """The ASGI application: FastAPI (the page and the API, behind ``guard.Guard``: ``hosts`` are
    the host names it answers to, None for any) wrapped in ``BodyLimit``; ``.app`` is the
    FastAPI. ``run_code`` (``--run-code``) lets runs imported with ``--code`` load, which runs their
    Python file; without it they are listed with the reason and never opened. ``precision``: the
    predictions' (``serve.precision``)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.staticfiles import StaticFiles

    from cnnzoo.serve.precision import check_precision
    from cnnzoo.serve.routes import STATIC, router
    from cnnzoo.serve.unit_routes import router as unit_router

    root = check_runs_dir(runs_dir)
    api = FastAPI(title="cnnzoo explorer", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    cache = ModelCache(root, limits.max_models, data_dir, run_code=run_code)
    api.state.explorer = Explorer(root, limits, cache, InferenceGate(limits.max_inference),
                                  run_code, check_precision(precision))
    api.add_exception_handler(RequestValidationError, _one_line)
    api.include_router(router)
    api.include_router(unit_router)  # the Units tab: show features and show patches
    api.add_middleware(Guard, hosts=hosts)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    return BodyLimit(api, limit=limits.max_upload_bytes, timeout=limits.body_timeout,
                     deadline=limits.body_deadline)


async def _one_line(request, error):
    """A query value of the wrong type or range: ``{"detail": "..."}`` as every other error (the
    parameter, what it must be and what came), not FastAPI's list of dicts."""
    from fastapi.responses import JSONResponse

    said = [f"{' '.join(str(part) for part in item.get('loc', ()))}: {item.get('msg')} (got "
            f"{item.get('input')!r})" for item in error.errors()]
    return JSONResponse({"detail": "; ".join(said)}, status_code=422)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port), or a ``ConfigError`` saying why
    not."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror or error}); choose "
                          "another --port (0 takes a free one) or --host") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def headers_in_time(seconds: float) -> type:
    """uvicorn's HTTP/1.1 protocol, closing a connection whose first request's headers have not all
    come ``seconds`` after it opened: without it, connections that send a request line and stop hold
    their places forever, and enough of them deny service to everyone else. (uvicorn's keep-alive
    timer only starts after a response; a request starts its ``cycle`` once its headers are
    complete.)"""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadersInTime(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.headers_due = self.loop.call_later(seconds, self.headers_late)

        def headers_late(self) -> None:
            if self.cycle is None and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self.headers_due.cancel()
            super().connection_lost(exc)

    return HeadersInTime


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def use_threads(limits: Limits) -> None:
    """One PyTorch thread per inference: requests run side by side (``max_inference`` of them), and
    a small model's operations split over several threads only wait for each other (on a busy 2-core
    machine the explorer's lenet5 answer takes 380 ms with 2 threads against 48 ms with 1). Called
    when serving, never on import."""
    import torch

    torch.set_num_threads(limits.threads_per_inference)


def serve(runs_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000,
          limits: Limits = Limits(), data_dir: str | None = None, run_code: bool = False,
          precision: str = "fp32") -> None:
    """Serve the explorer until Ctrl-C (uvicorn stops cleanly: open requests finish, then it
    returns)."""
    import uvicorn

    everywhere = host in ("0.0.0.0", "::", "")  # reached by names this process cannot know
    app = create_app(runs_dir, limits, data_dir=data_dir,
                     hosts=None if everywhere else (*LOOPBACK, host), run_code=run_code,
                     precision=precision)
    sock = bind(host, port)
    use_threads(limits)
    if host not in LOOPBACK:
        print(f"warning: listening on {host}: the explorer has no authentication; anyone who can "
              "reach this address can use it", file=sys.stderr)
    if run_code:
        print("--run-code: runs imported with `cnnzoo import --code` are opened, which runs their "
              "Python files (checked unchanged since the import)", file=sys.stderr)
    config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=limits.keep_alive_timeout,
                            limit_concurrency=limits.max_connections, timeout_graceful_shutdown=5,
                            http=headers_in_time(limits.headers_timeout))
    print(f"cnnzoo explorer on {url_of(sock)} serving {app.app.state.explorer.root} (Ctrl-C stops "
          "it)",
          file=sys.stderr, flush=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    # uvicorn has shut down (open requests answered) and passes Ctrl-C on: done
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("cnnzoo explorer stopped", file=sys.stderr)
