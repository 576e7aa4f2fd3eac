"""Spot eviction notices: Azure Scheduled Events, watched once a second.

    watch = PreemptionWatch(url, node="vm-3", on_notice=stop.set)
    watch.start()            ... watch.notice -> Notice | None
    watch.acknowledge()      once the job is stopped, its logs shipped and its outputs synced

Azure announces the eviction of a Spot or low-priority VM at least 30 seconds ahead in the
instance metadata service: `GET <url>?api-version=2020-07-01` with the header `Metadata: true`
returns `{"DocumentIncarnation": n, "Events": [...]}`. An event of type `Preempt` or
`Terminate` whose `Resources` list this VM's name is a notice for this node (Reboot, Redeploy
and Freeze are not: the VM comes back). Answering `POST {"StartRequests": [{"EventId": ...}]}`
tells Azure that this node is ready, so that the eviction may start at once.

Which name is ours: on Azure the VM name from instance metadata
(`/metadata/instance/compute/name`), elsewhere (a local pool, a test server on loopback) the
agent's own name (`node_resource_name`).

Failure modes: an endpoint that does not answer, answers with an error or sends a body that
is not a Scheduled Events document is polled again a second later (the first call after boot
can take minutes while the service starts); it never stops the agent. `acknowledge` swallows
transport errors, since the VM goes away whether or not Azure heard from us.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEDULED_EVENTS_URL = "http://169.254.169.254/metadata/scheduledevents"
SCHEDULED_EVENTS_ENV = "JOBRUNNER_SCHEDULED_EVENTS_URL"
API_VERSION = "2020-07-01"
IMDS_HOST = "169.254.169.254"
VM_NAME_URL = f"http://{IMDS_HOST}/metadata/instance/compute/name?api-version=2021-02-01&format=text"
EVICTIONS = ("Preempt", "Terminate")
MIN_NOTICE_S = 30.0  # what Azure promises for Preempt
# Between SIGTERM and SIGKILL on a notice: half the promised notice, so that the rest covers
# shipping logs, a last output sync and the status report before the VM goes.
PREEMPT_GRACE_S = MIN_NOTICE_S / 2
POLL_S = 1.0
HTTP_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)


class ScheduledEvent(BaseModel):
    """One event of the document (Azure's field names)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    event_id: str = Field(alias="EventId")
    event_type: str = Field(alias="EventType")
    resource_type: str = Field(default="VirtualMachine", alias="ResourceType")
    resources: tuple[str, ...] = Field(default=(), alias="Resources")
    event_status: str = Field(default="Scheduled", alias="EventStatus")
    not_before: str = Field(default="", alias="NotBefore")
    duration_s: int = Field(default=-1, alias="DurationInSeconds")

    def evicts(self, node: str) -> bool:
        """Whether this event takes `node` away for good (VM names compare case-insensitively)."""
        names = {r.lower() for r in self.resources}
        return self.event_type in EVICTIONS and node.lower() in names

    def seconds_left(self, now: datetime | None = None) -> float | None:
        """Seconds until `NotBefore` (None when Azure gave no time, e.g. once it has started)."""
        if not self.not_before:
            return None
        try:
            # Azure writes RFC 1123 times: "Mon, 19 Sep 2016 18:29:47 GMT"
            at = datetime.strptime(self.not_before, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
        except ValueError:
            return None
        return (at - (now or datetime.now(UTC))).total_seconds()


class EventsDocument(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    incarnation: int = Field(alias="DocumentIncarnation")
    events: tuple[ScheduledEvent, ...] = Field(default=(), alias="Events")


class Notice(BaseModel):
    """An eviction of this node: the event, and when the agent saw it (time.monotonic)."""

    model_config = ConfigDict(frozen=True)

    event: ScheduledEvent
    seen_at: float

    @property
    def reason(self) -> str:
        return f"node preempted: Scheduled Events {self.event.event_type} {self.event.event_id}"

    def grace_s(self, default: float) -> float:
        """Seconds to give the job between SIGTERM and SIGKILL: `default`, capped to fit the notice."""
        left = self.event.seconds_left()
        budget = PREEMPT_GRACE_S if left is None else max(1.0, left / 2)
        return max(0.5, min(default, budget))


def _request(url: str, *, body: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=body, headers={"Metadata": "true"})
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310 - IMDS is http
        return bytes(response.read())


def _with_version(url: str) -> str:
    return url if "api-version=" in url else f"{url}{'&' if '?' in url else '?'}api-version={API_VERSION}"


def fetch_events(url: str) -> EventsDocument | None:
    """The current document, or None when the endpoint gave nothing usable this time."""
    document, _ = _fetch(url)
    return document


def _fetch(url: str) -> tuple[EventsDocument | None, str]:
    """The current document, or None and why not."""
    try:
        return EventsDocument.model_validate_json(_request(_with_version(url))), ""
    except (OSError, ValidationError, ValueError) as exc:
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def acknowledge(url: str, event_id: str) -> bool:
    """Tell Azure this node is ready for the event; False when the endpoint could not be told."""
    body = json.dumps({"StartRequests": [{"EventId": event_id}]}).encode()
    try:
        _request(_with_version(url), body=body)
    except OSError:
        return False
    return True


def node_resource_name(url: str, agent_name: str) -> str:
    """The name Scheduled Events use for this node: the VM name on Azure, else the agent's name."""
    if urlsplit(url).hostname != IMDS_HOST:
        return agent_name
    try:
        return _request(VM_NAME_URL).decode().strip() or agent_name
    except OSError:
        return agent_name


class PreemptionWatch:
    """Polls Scheduled Events on a thread; calls `on_notice` once, when this node is evicted."""

    def __init__(
        self,
        url: str,
        node: str,
        *,
        on_notice: Callable[[Notice], None] | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.url = url
        self.node = node
        self._on_notice = on_notice
        self._poll_s = poll_s
        self._notice: Notice | None = None
        self._acknowledged = False
        self._stop = threading.Event()
        self._seen = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="scheduled-events", daemon=True)

    @property
    def notice(self) -> Notice | None:
        return self._notice

    def is_set(self) -> bool:
        return self._seen.is_set()

    def start(self) -> PreemptionWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(HTTP_TIMEOUT_S + self._poll_s)

    def _run(self) -> None:
        answering: bool | None = None  # logged when it changes, not once a second
        while not self._stop.is_set():
            document, why = _fetch(self.url)
            if (document is not None) != answering:
                answering = document is not None
                if answering:
                    log.info(
                        "scheduled events: %s answers; watching for evictions of %s", self.url, self.node
                    )
                else:
                    log.info(
                        "scheduled events: %s does not answer (%s); asking every %g s",
                        self.url,
                        why,
                        self._poll_s,
                    )
            if document is not None:
                event = next((e for e in document.events if e.evicts(self.node)), None)
                if event is not None:
                    log.warning(
                        "scheduled events: %s %s evicts %s (not before %s)",
                        event.event_type, event.event_id, self.node, event.not_before or "now",
                    )  # fmt: skip
                    self._notice = Notice(event=event, seen_at=time.monotonic())
                    self._seen.set()
                    if self._on_notice is not None:
                        self._on_notice(self._notice)
                    return
            self._stop.wait(self._poll_s)

    def acknowledge(self) -> bool:
        """Acknowledge the notice (once); False when there is none or the endpoint did not answer."""
        with self._lock:
            if self._notice is None or self._acknowledged:
                return False
            self._acknowledged = acknowledge(self.url, self._notice.event.event_id)
            event_id = self._notice.event.event_id
            if self._acknowledged:
                log.info("scheduled events: acknowledged %s; the eviction may start", event_id)
            else:
                log.warning("scheduled events: %s could not be acknowledged at %s", event_id, self.url)
            return self._acknowledged
