"""A TCP relay in front of Azurite's blob port that can fail the way networks do.

    with FaultyProxy(blob_port) as proxy:
        store = Store.connect(connection_string(proxy.port, queue_port))
        proxy.lose_answer_to(b"comp=appendblock")   # the next such request lands, its answer is lost
        proxy.lose_answer_to(b".streams?comp=appendblock", times=8)  # the next 8 such, each
        proxy.set_down(True)                        # every connection refused or cut, until False
        proxy.set_rate(8 << 20)                     # requests go up at 8 MiB/s at most, in all
        proxy.relayed                               # request bytes passed on so far

A lost answer is the case retries make dangerous: the store did the work, the client saw a
cut connection and sends the same request again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class FaultyProxy:
    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._lose: bytes | None = None
        self._lose_times = 0
        self._down = False
        self._open: set[socket.socket] = set()
        self.lost_answers = 0
        self.connections = 0  # accepted, whether relayed or cut
        self.relayed = 0
        self._rate: float | None = None
        self._free_at = 0.0  # when the throttled link is free again (time.monotonic)
        self._thread = threading.Thread(target=self._accept, name="faulty-proxy", daemon=True)

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        self.set_down(True)

    def lose_answer_to(self, marker: bytes, *, times: int = 1) -> None:
        """The next `times` requests containing `marker` reach the store; their answers never
        come back (counted in `lost_answers`)."""
        with self._lock:
            self._lose, self._lose_times = marker, times

    def set_down(self, down: bool) -> None:
        """Down: open connections are cut and new ones closed at once (connection errors)."""
        with self._lock:
            self._down = down
            victims = list(self._open) if down else []
        for sock in victims:
            _close(sock)

    def set_rate(self, bytes_per_s: float | None) -> None:
        """Throttle what clients send (all connections together); None: full speed."""
        with self._lock:
            self._rate = bytes_per_s

    def _throttle(self, n: int) -> None:
        with self._lock:
            self.relayed += n
            if not self._rate:
                return
            now = time.monotonic()
            self._free_at = max(now, self._free_at) + n / self._rate
            wait = self._free_at - now
        time.sleep(wait)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                down = self._down
            if down:
                _close(client)
                continue
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            with self._lock:
                self._open.update((client, upstream))
            lose = threading.Event()
            threading.Thread(target=self._requests, args=(client, upstream, lose), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client, lose), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, lose: threading.Event) -> None:
        while data := _recv(client):
            with self._lock:
                if self._lose is not None and self._lose in data:
                    self._lose_times -= 1
                    if self._lose_times <= 0:
                        self._lose = None
                    lose.set()
            self._throttle(len(data))
            with contextlib.suppress(OSError):
                upstream.sendall(data)
        self._forget(client, upstream)

    def _answers(self, upstream: socket.socket, client: socket.socket, lose: threading.Event) -> None:
        while data := _recv(upstream):
            if lose.is_set():  # the store answered, so it did the work: cut the client off
                with self._lock:
                    self.lost_answers += 1
                break
            with contextlib.suppress(OSError):
                client.sendall(data)
        self._forget(client, upstream)

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(socks)
        for sock in socks:
            _close(sock)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
