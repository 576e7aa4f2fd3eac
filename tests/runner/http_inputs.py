"""A loopback https server for inputs that misbehave, shared by the staging and agent tests."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.loopback_tls import LoopbackTls, trust_loopback


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture(scope="session", autouse=True)
def loopback_tls(tmp_path_factory: pytest.TempPathFactory) -> LoopbackTls:
    """Trusted by this session and the agents it starts (see tests/loopback_tls.py): autouse,
    so it is in place before any agent starts."""
    return trust_loopback(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def misbehaving_http(loopback_tls: LoopbackTls) -> Iterator[str]:
    """A loopback https server: /stall sends headers then nothing, /big more than the cap,
    /short less than it announced, /gone 404."""
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
    httpd.socket = loopback_tls.server_context().wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}"
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
