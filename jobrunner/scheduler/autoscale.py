"""The pool's demand in nodes, where Azure autoscale can read it: two queues whose lengths are
gauges, kept by the pool's leader.

    gauges = DemandGauges(store, "a100-spot")
    gauges.update(demand_nodes=5, idle_nodes=0, now=time.monotonic())

Azure Monitor autoscale reads a storage queue's `ApproximateMessageCount`, nothing else of
ours, so the leader keeps `pool-<pool>-demand` as long as the nodes its queued work wants
beyond the idle ones, and `pool-<pool>-idle` as long as its idle nodes. The stack's
autoscale rules (`components.gpu_pool.autoscale_profile`) add nodes in steps that follow the
demand (the largest step whose threshold is passed wins) and remove one only while the
demand is zero and a node has stood idle for the whole window (scale-in needs every rule).
A gang larger than the live pool counts in full, so the pool grows until it fits.

Gauges move at most once a `min_interval_s` (autoscale samples a minute at a time), and only
when the figure changed; each step costs a message sent, or received and deleted. A leader
that dies leaves the last figures; the next one corrects them.

Failure modes: StoreError propagates; the caller tries again at its next pass.
"""

from __future__ import annotations

from jobrunner.store.client import Store, queue_name

MAX_GAUGE = 1000  # no pool scales by more than this at once; bounds the writes of a step
_MARK = "1"


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
        wanted = {demand_queue(self.pool): demand_nodes, idle_queue(self.pool): idle_nodes}
        wanted = {q: max(0, min(MAX_GAUGE, n)) for q, n in wanted.items()}
        if now < self._next or wanted == self._shown:
            return False
        self._next = now + self.min_interval_s
        for queue, count in wanted.items():
            self._set(queue, count)
            self._shown[queue] = count
        return True

    def _set(self, queue: str, count: int) -> None:
        have = self.store.queue_length(queue)
        for _ in range(count - have):
            self.store.send(queue, _MARK)
        for _ in range(have - count):
            message = self.store.receive(queue, visibility_timeout_s=30)
            if message is None:
                break
            self.store.delete_message(queue, message)
