"""A fake Azure Scheduled Events endpoint: a real HTTP server on 127.0.0.1, in a thread.

    with ScheduledEventsServer() as server:
        agent env: JOBRUNNER_SCHEDULED_EVENTS_URL=server.url
        server.announce("Preempt", "pool-1")     -> the event id
        server.acknowledged                      -> event ids POSTed in StartRequests

It answers like the instance metadata service: 400 without the `Metadata: true` header,
`{"DocumentIncarnation": n, "Events": [...]}` on GET (the incarnation goes up with every
change), and a POST of `{"StartRequests": [{"EventId": ...}]}` marks those events Started.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScheduledEventsServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._incarnation = 1
        self._events: list[dict[str, Any]] = []
        self.acknowledged: list[str] = []
        self.gets = 0
        self.refused = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/metadata/scheduledevents"

    def __enter__(self) -> ScheduledEventsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def announce(self, event_type: str, *resources: str, notice_s: int = 30) -> str:
        """Publish an event for these VM names; returns its EventId."""
        event_id = str(uuid.uuid4()).upper()
        not_before = datetime.now(UTC) + timedelta(seconds=notice_s)
        with self._lock:
            self._events.append(
                {
                    "EventId": event_id,
                    "EventType": event_type,
                    "ResourceType": "VirtualMachine",
                    "Resources": list(resources),
                    "EventStatus": "Scheduled",
                    "NotBefore": not_before.strftime("%a, %d %b %Y %H:%M:%S GMT"),
                    "Description": "fake eviction for a test",
                    "EventSource": "Platform",
                    "DurationInSeconds": -1,
                }
            )
            self._incarnation += 1
        return event_id

    def document(self) -> dict[str, Any]:
        with self._lock:
            return {"DocumentIncarnation": self._incarnation, "Events": [dict(e) for e in self._events]}

    def _start(self, event_ids: list[str]) -> None:
        with self._lock:
            for event in self._events:
                if event["EventId"] in event_ids:
                    event["EventStatus"] = "Started"
            self.acknowledged.extend(event_ids)
            self._incarnation += 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _reply(self, code: int, body: dict[str, Any] | None = None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _allowed(self) -> bool:
                if self.headers.get("Metadata") != "true" or "api-version=" not in self.path:
                    server.refused += 1
                    self._reply(400, {"error": "Bad request: Metadata header and api-version required"})
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self._allowed():
                    server.gets += 1
                    self._reply(200, server.document())

            def do_POST(self) -> None:  # noqa: N802
                if not self._allowed():
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length))
                    ids = [str(r["EventId"]) for r in body["StartRequests"]]
                except (ValueError, KeyError, TypeError):
                    self._reply(400, {"error": "Bad request"})
                    return
                server._start(ids)
                self._reply(200)

        return Handler
