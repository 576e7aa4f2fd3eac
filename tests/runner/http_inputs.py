"""A loopback http server for inputs that misbehave, shared by the staging and agent tests."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture
def misbehaving_http() -> Iterator[str]:
    """A loopback server: /stall sends headers then nothing, /big more than the cap, /short less
    than it announced, /gone 404."""
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/short"):
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b"z" * 10)
                return
            if self.path.startswith("/gone"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            if self.path.startswith("/stall"):
                self.wfile.write(b"x" * 10)
                self.wfile.flush()
                release.wait(60)
                return
            for _ in range(64):
                self.wfile.write(b"y" * 1024)

        def log_message(self, *args: object) -> None:
            pass

    httpd = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
