"""The gang board's placement rules: queue order, moving forward, no deadlock, pruning."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from jobrunner.gang import Board, Entry, Seat


def seat(name: str) -> Seat:
    return Seat(name=name, address="127.0.0.1", port=1000 + int(name[-1]), ports=(2000, 2001))


def entry(job: str, size: int, seq: str) -> Entry:
    return Entry(job_id=job, experiment="e", attempt=1, size=size, seq=seq)


def test_posting_twice_is_one_entry() -> None:
    board = Board().post(entry("j1", 2, "1")).post(entry("j1", 2, "1"))
    assert len(board.entries) == 1


def test_agents_fill_the_earliest_entry_then_it_starts_with_the_first_as_leader() -> None:
    board = Board().post(entry("j2", 2, "2")).post(entry("j1", 2, "1"))
    board = board.place(seat("a0")).place(seat("a1"))
    j1 = board.find("j1", 1)
    assert j1 is not None and j1.started
    assert [m.name for m in j1.members] == ["a0", "a1"]
    gang = j1.gang("a1", extra_ports=2)
    assert gang.node_rank == 1 and gang.leader.name == "a0" and gang.master_port == 1000
    assert board.find("j2", 1).members == ()  # type: ignore[union-attr]


def test_two_gangs_posted_at_once_on_two_agents_do_not_deadlock() -> None:
    # Each agent posted one job and sat in it: the later one must move forward.
    board = Board().post(entry("j1", 2, "1")).post(entry("j2", 2, "2"))
    board = board._replace(
        board.find("j1", 1), board.find("j1", 1).model_copy(update={"members": (seat("a0"),)})
    )  # type: ignore[union-attr,arg-type]
    board = board._replace(
        board.find("j2", 1), board.find("j2", 1).model_copy(update={"members": (seat("a1"),)})
    )  # type: ignore[union-attr,arg-type]
    board = board.place(seat("a1"))
    assert board.find("j1", 1).started  # type: ignore[union-attr]
    assert board.find("j2", 1).members == ()  # type: ignore[union-attr]
    # the agent in the earlier entry stays put
    assert board.place(seat("a0")) == board


def test_started_gang_is_left_and_removed_by_its_last_member() -> None:
    board = Board().post(entry("j1", 2, "1")).place(seat("a0")).place(seat("a1"))
    board = board.leave("a0", "j1", 1)
    assert board.find("j1", 1) is not None
    assert board.leave("a1", "j1", 1).entries == ()


def test_a_member_that_comes_late_still_gets_the_whole_gang() -> None:
    # a0 ran its part and left before a1 read the board: a1 is still rank 1 of 2
    board = Board().post(entry("j1", 2, "1")).place(seat("a0")).place(seat("a1"))
    board = board.leave("a0", "j1", 1)
    late = board.of_agent("a1")
    assert late is not None and [m.name for m in late.members] == ["a1"]
    gang = late.gang("a1", extra_ports=2)
    assert [m.name for m in gang.members] == ["a0", "a1"]
    assert gang.node_rank == 1 and gang.leader.name == "a0" and gang.master_port == 1000
    assert gang.ports == (2000, 2001, 2000, 2001)


def test_dead_waiting_members_are_pruned_but_started_gangs_kept() -> None:
    board = Board().post(entry("j1", 3, "1")).place(seat("a0")).place(seat("a1"))
    assert [m.name for m in board.prune({"a1"}).find("j1", 1).members] == ["a1"]  # type: ignore[union-attr]
    full = Board().post(entry("j2", 1, "1")).place(seat("a0"))
    assert full.prune(set()).find("j2", 1).members[0].name == "a0"  # type: ignore[union-attr]


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=4),
    order=st.permutations(["a0", "a1", "a2"]),
    rounds=st.integers(min_value=1, max_value=3),
)
def test_any_arrival_order_starts_the_earliest_gang(sizes: list[int], order: list[str], rounds: int) -> None:
    """With 3 agents and jobs of at most 3 nodes, repeated placement always starts entry 0."""
    board = Board()
    for i, size in enumerate(sizes):
        board = board.post(entry(f"j{i}", size, f"{i:03d}"))
    for _, name in itertools.product(range(rounds), order):
        board = board.place(seat(name))
    first = board.find("j0", 1)
    assert first is not None and first.started
    seated = [m.name for e in board.entries for m in e.members]
    assert len(seated) == len(set(seated))  # nobody in two gangs
