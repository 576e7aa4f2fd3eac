"""The pool's demand in nodes, where Azure autoscale can read it: two queues whose lengths are
gauges, kept by the pool's leader.

    gauges = DemandGauges(store, "a100-spot")
    gauges.update(demand_nodes=5, idle_nodes=0, now=time.monotonic())

Azure Monitor autoscale reads a storage queue's `ApproximateMessageCount`, nothing else of
ours, so the leader keeps `pool-<pool>-demand` and `pool-<pool>-idle` as gauges of the nodes
its queued work wants beyond the idle ones and of its idle nodes (as levels: below). The stack's
autoscale rules (`components.gpu_pool.autoscale_profile`) add nodes in steps that follow the
demand (the largest step whose threshold is passed wins) and remove one only while the
demand is zero and a node has stood idle for the whole window (scale-in needs every rule).
A gang larger than the live pool counts in full, so the pool grows until it fits.

The rules only ask whether a gauge has passed a threshold, so the gauges show levels, not
counts: the demand as the largest scale-out step it reaches (`scale_out_steps`: 0, 1, 4, 16,
..., the one home of those thresholds, read by the stack too), the idle nodes as 0 or 1. Every
rule sees the same answer as it would for the exact figure, and a demand that wanders between
5 and 15 nodes costs nothing. A gauge moves at most once a `min_interval_s` (autoscale samples
a minute at a time), and only when its level changed: up by sending the missing messages, down
with one Clear Messages and, unless the level is 0, sending the new level's. The gauge reads 0
in between, for a request's time; both rules that read the demand take its maximum over the
window, so a dip never scales in, and the idle gauge only ever goes down to 0. A leader that
dies leaves the last levels; the next one corrects them.

Failure modes: StoreError propagates; the caller tries again at its next pass.
"""

from __future__ import annotations

from jobrunner.store.client import Store, queue_name

MAX_GAUGE = 1024  # the highest demand level shown: no pool scales by more than this at once
STEP_FACTOR = 4  # each scale-out step is this many times the last
_MARK = "1"


def scale_out_steps(max_nodes: int) -> list[int]:
    """1, 4, 16, ... up to the pool's size: the thresholds of the stack's scale-out rules (a
    demand of 20 nodes adds 16 at once, then 4) and the levels the demand gauge shows."""
    steps, step = [], 1
    while step <= max(1, max_nodes):
        steps.append(step)
        step *= STEP_FACTOR
    return steps


def demand_level(demand_nodes: int) -> int:
    """The largest scale-out step `demand_nodes` reaches, 0 for none: what the gauge shows."""
    passed = [step for step in scale_out_steps(MAX_GAUGE) if step <= demand_nodes]
    return passed[-1] if passed else 0


def idle_level(idle_nodes: int) -> int:
    """1 while any node is idle: the scale-in rule asks for at least one."""
    return 1 if idle_nodes > 0 else 0


def demand_queue(pool: str) -> str:
    return f"{queue_name(pool)}-demand"


def idle_queue(pool: str) -> str:
    return f"{queue_name(pool)}-idle"


class DemandGauges:
    """The two gauges of one pool (see the module docstring)."""

    def __init__(self, store: Store, pool: str, *, min_interval_s: float = 60.0) -> None:
        self.store, self.pool, self.min_interval_s = store, pool, min_interval_s
        self._shown: dict[str, int] = {}
        self._next = 0.0

    def update(self, *, demand_nodes: int, idle_nodes: int, now: float) -> bool:
        """Move the gauges to these figures if due; True when they were checked."""
        wanted = {
            demand_queue(self.pool): demand_level(demand_nodes),
            idle_queue(self.pool): idle_level(idle_nodes),
        }
        if now < self._next or wanted == self._shown:
            return False
        self._next = now + self.min_interval_s
        for queue, count in wanted.items():
            if self._shown.get(queue) != count:
                self._set(queue, count)
                self._shown[queue] = count
        return True

    def _set(self, queue: str, count: int) -> None:
        have = self.store.queue_length(queue)
        if have > count:
            self.store.clear_queue(queue)
            have = 0
        for _ in range(count - have):
            self.store.send(queue, _MARK)
