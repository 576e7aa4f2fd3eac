"""Scheduled Events: the watch reads the real HTTP protocol, notices only its own eviction,
acknowledges it, and sizes the grace period to the notice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from jobrunner.node.preempt import (
    PREEMPT_GRACE_S,
    Notice,
    PreemptionWatch,
    ScheduledEvent,
    acknowledge,
    fetch_events,
    node_resource_name,
)
from tests.faults.events_server import ScheduledEventsServer


@pytest.fixture
def server() -> ScheduledEventsServer:
    with ScheduledEventsServer() as s:
        yield s


def test_fetch_sends_the_metadata_header_and_api_version(server: ScheduledEventsServer) -> None:
    server.announce("Preempt", "vm-1")
    document = fetch_events(server.url)
    assert document is not None and server.refused == 0
    assert document.incarnation == 2
    (event,) = document.events
    assert event.event_type == "Preempt" and event.resources == ("vm-1",)
    assert event.event_status == "Scheduled"


def test_an_unreachable_or_broken_endpoint_gives_nothing_not_an_error() -> None:
    assert fetch_events("http://127.0.0.1:9/metadata/scheduledevents") is None


def test_only_evictions_of_this_node_count() -> None:
    def event(kind: str, *names: str) -> ScheduledEvent:
        return ScheduledEvent.model_validate({"EventId": "x", "EventType": kind, "Resources": list(names)})

    assert event("Preempt", "vm-1", "vm-2").evicts("VM-2")
    assert event("Terminate", "vm-1").evicts("vm-1")
    assert not event("Preempt", "vm-1").evicts("vm-2")
    assert not event("Reboot", "vm-1").evicts("vm-1")
    assert not event("Freeze", "vm-1").evicts("vm-1")


def test_the_watch_calls_back_once_for_its_node_and_acknowledges(server: ScheduledEventsServer) -> None:
    seen: list[Notice] = []
    called = threading.Event()

    def on_notice(n: Notice) -> None:
        seen.append(n)
        called.set()

    watch = PreemptionWatch(server.url, "vm-2", on_notice=on_notice, poll_s=0.1)
    watch.start()
    try:
        server.announce("Reboot", "vm-2")
        server.announce("Preempt", "vm-1")
        assert not called.wait(0.6) and watch.notice is None
        assert not watch.acknowledge()  # nothing to acknowledge yet
        event_id = server.announce("Preempt", "vm-2")
        assert called.wait(5)
        assert watch.is_set() and len(seen) == 1 and seen[0].event.event_id == event_id
        assert "Preempt" in seen[0].reason and event_id in seen[0].reason
        assert server.acknowledged == []  # not before the agent says it is ready
        assert watch.acknowledge()
        assert not watch.acknowledge()  # once
        assert server.acknowledged == [event_id]
        assert server.document()["Events"][-1]["EventStatus"] == "Started"
    finally:
        watch.stop()


def test_acknowledge_posts_start_requests(server: ScheduledEventsServer) -> None:
    event_id = server.announce("Terminate", "vm-0")
    assert acknowledge(server.url, event_id)
    assert server.acknowledged == [event_id]
    assert not acknowledge("http://127.0.0.1:9/metadata/scheduledevents", event_id)


def test_grace_fits_in_the_notice() -> None:
    def notice(seconds_ahead: float | None) -> Notice:
        when = (
            (datetime.now(UTC) + timedelta(seconds=seconds_ahead)).strftime("%a, %d %b %Y %H:%M:%S GMT")
            if seconds_ahead is not None
            else ""
        )
        raw = {"EventId": "e", "EventType": "Preempt", "Resources": ["n"], "NotBefore": when}
        return Notice(event=ScheduledEvent.model_validate(raw), seen_at=0.0)

    assert notice(30).grace_s(default=30.0) <= 15.5  # half the notice, the rest for logs and sync
    assert notice(8).grace_s(default=30.0) <= 4.5
    assert notice(120).grace_s(default=10.0) == 10.0  # never more than the agent's own grace
    assert notice(None).grace_s(default=30.0) == PREEMPT_GRACE_S  # started: no time given
    assert notice(-5).grace_s(default=30.0) >= 0.5


def test_outside_azure_the_node_is_the_agent_name(server: ScheduledEventsServer) -> None:
    assert node_resource_name(server.url, "pool-3") == "pool-3"
