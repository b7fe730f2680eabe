"""The explorer under many and slow clients, on a real socket: ``cnnzoo.serve.app.serve`` in a
process of its own, listening on 127.0.0.1 on a free port, its limits (``serve.limits.Limits``)
shortened so that a test takes seconds, not the minute a real client is given.

50 predictions at once each get an answer or a 503 (never a reset, a hang or another 5xx), and the
server answers normally afterwards. 10 clients trickling a body a byte a second neither stop a
normal client from being served nor keep their connections past the body's deadline.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ctrl_c_reaches_it

pytest.importorskip("fastapi", reason="no serve extra (pip install 'cnnzoo[serve]')")

# serve() as `cnnzoo serve` calls it, with limits the command line does not offer (body timeouts)
SERVE = ("import json, sys\nfrom cnnzoo.serve.app import serve\nfrom cnnzoo.serve.limits import "
         "Limits\nserve(sys.argv[1], port=0, limits=Limits(**json.loads(sys.argv[2])))")
BOUNDARY = "b"
PREDICT = "/api/runs/lenet5-a/predict?top_k=3"


class Server:
    """A running explorer: address and process; ``stop`` sends Ctrl-C, returns what it printed."""

    def __init__(self, runs_dir: Path, **limits) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(runs_dir), json.dumps(limits)],
            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=ctrl_c_reaches_it)
        line = self.process.stderr.readline()
        found = re.search(r"http://([\d.]+):(\d+)/", line)
        assert found, f"the server did not start: {line}"
        self.host, self.port = found[1], int(found[2])

    def ask(self, method: str, path: str, body: bytes | None = None, timeout: float = 30):
        """(status, JSON answer) of one request on a fresh connection."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers={
                "Host": f"{self.host}:{self.port}",
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        finally:
            self.process.kill()
        return self.process.stderr.read()


@pytest.fixture
def start(explorer_runs):
    servers = []

    def started(**limits) -> Server:
        servers.append(Server(explorer_runs, **limits))
        return servers[-1]

    yield started
    for server in servers:
        server.process.kill()
        server.process.wait()
        server.process.stderr.close()


@pytest.fixture(scope="module")
def upload() -> bytes:
    """A multipart body holding a 28×28 PNG in the field ``image``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (28, 28), 200).save(buffer, format="PNG")
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + buffer.getvalue() + \
        f"\r\n--{BOUNDARY}--\r\n".encode()


def test_50_predictions_at_once_get_answers_or_503_and_the_server_stays_up(start, upload):
    server = start(max_inference=2)
    assert server.ask("POST", PREDICT, upload)[0] == 200  # loaded: what follows measures serving
    together, outcomes = threading.Barrier(50), []

    def client() -> None:
        together.wait()
        try:
            status, answer = server.ask("POST", PREDICT, upload)
            whole = status != 200 or len(answer["top_k"]) == 3
            outcomes.append(status if whole else "a 200 without its predictions")
        except OSError as error:  # a reset, a refused connection or a timeout: must not happen
            outcomes.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=client) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 50 and set(outcomes) <= {200, 503}, outcomes
    assert outcomes.count(200) >= 1
    assert server.ask("POST", PREDICT, upload)[0] == 200  # every slot was given back
    assert server.ask("GET", "/api/runs")[0] == 200
    printed = server.stop()
    assert "Traceback" not in printed and "ERROR" not in printed, printed


def _trickle(server: Server, path: str, body: bytes, give_up: float, results: list) -> None:
    """A hostile client: sends ``body`` to ``path`` a byte a second, reading but ignoring answers,
    until the server closes the connection or ``give_up`` seconds pass. Appends (the answer's
    status line, the seconds until the server closed the connection or None if still open)."""
    with socket.create_connection((server.host, server.port), timeout=give_up) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nContent-Type: "
                     f"multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: "
                     f"{len(body)}\r\n\r\n".encode())
        started, answer, closed = time.monotonic(), b"", None
        try:
            for byte in body:
                while select.select([sock], [], [], 1.0)[0]:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionResetError
                    answer += chunk
                if time.monotonic() - started > give_up:
                    break
                sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):  # the server closed the connection
            closed = time.monotonic() - started
        results.append((answer.split(b"\r\n")[0], closed))


def test_10_clients_sending_a_byte_a_second_neither_block_others_nor_stay(start, upload):
    """8 clients trickle an image to predict: 408 at the body's deadline, and closed. 2 trickle
    one to a run that does not exist: 404 at once, the body unread, and closed then (they used to
    be kept open as long as they went on sending: each byte put off uvicorn's keep-alive)."""
    deadline = 4.0
    server = start(max_inference=2, body_timeout=2.0, body_deadline=deadline)
    assert server.ask("POST", PREDICT, upload)[0] == 200
    results = []
    paths = [PREDICT] * 8 + ["/api/runs/absent/predict"] * 2
    slow = [threading.Thread(target=_trickle, args=(server, path, upload, deadline + 4, results))
            for path in paths]
    for thread in slow:
        thread.start()
    time.sleep(1.0)  # every slow client is in the middle of its body
    for _ in range(3):
        assert server.ask("POST", PREDICT, upload, timeout=10)[0] == 200
        assert server.ask("GET", "/api/runs", timeout=10)[0] == 200
    # served while every slow predict still held its connection, not after their 408s
    assert not any(answer.startswith(b"HTTP/1.1 408") for answer, _ in results), results
    for thread in slow:
        thread.join(timeout=deadline + 10)
    assert sorted(answer for answer, _ in results) == [b"HTTP/1.1 404 Not Found"] * 2 + [
        b"HTTP/1.1 408 Request Timeout"] * 8, results
    assert all(closed is not None and closed < deadline + 1.5 for _, closed in results), results
    assert server.ask("GET", "/api/runs")[0] == 200
    printed = server.stop()
    assert "Traceback" not in printed, printed
