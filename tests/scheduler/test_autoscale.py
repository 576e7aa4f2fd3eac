"""The demand gauges on Azurite: queue lengths follow the leader's figures, at most once an
interval, and only when they changed."""

from __future__ import annotations

import uuid

from jobrunner.scheduler.autoscale import MAX_GAUGE, DemandGauges, demand_queue, idle_queue
from jobrunner.store.client import Store


def test_the_gauges_follow_demand_and_idle_nodes(azurite: str) -> None:
    store = Store.connect(azurite)
    pool = f"gauge-{uuid.uuid4().hex[:8]}"
    gauges = DemandGauges(store, pool, min_interval_s=60)
    assert gauges.update(demand_nodes=5, idle_nodes=2, now=0)
    assert (store.queue_length(demand_queue(pool)), store.queue_length(idle_queue(pool))) == (5, 2)
    assert not gauges.update(demand_nodes=1, idle_nodes=0, now=30)  # too soon: autoscale samples a minute
    assert gauges.update(demand_nodes=1, idle_nodes=0, now=61)
    assert (store.queue_length(demand_queue(pool)), store.queue_length(idle_queue(pool))) == (1, 0)
    assert not gauges.update(demand_nodes=1, idle_nodes=0, now=200)  # unchanged: no request
    fresh = DemandGauges(store, pool)  # a new leader corrects what the last one left
    assert fresh.update(demand_nodes=0, idle_nodes=3, now=0)
    assert (store.queue_length(demand_queue(pool)), store.queue_length(idle_queue(pool))) == (0, 3)
    assert MAX_GAUGE >= 1000
