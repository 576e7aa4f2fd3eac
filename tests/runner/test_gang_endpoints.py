"""What each node of an attempt learns of its gang from the run document's endpoints."""

from __future__ import annotations

from jobrunner.node.agent import endpoint_text, gang_of
from jobrunner.scheduler.protocol import RunDoc


def test_every_node_of_a_gang_sees_the_same_members_and_ports() -> None:
    endpoints = (endpoint_text("10.0.0.4", 6105, (7001, 7002)), endpoint_text("fe80::1", 6200, (7101, 7102)))
    doc = RunDoc("run-tf", 2, None, owners=(("vm-0", "i0"), ("vm-1", "i1")), endpoints=endpoints)
    seen = [gang_of(doc, 3, rank) for rank in (0, 1)]
    assert {(g.members, g.master_port, g.ports) for g in seen} == {
        ((seen[0].members[0], seen[0].members[1]), 6105, (7001, 7002, 7101, 7102))
    }
    assert [m.address for m in seen[1].members] == ["10.0.0.4", "fe80::1"]  # an IPv6 address whole
    assert [g.node_rank for g in seen] == [0, 1] and {g.attempt for g in seen} == {3}
