"""The demand gauges on Azurite: queue lengths follow the leader's figures as the levels the
stack's rules act on, at most once an interval, and only when a level changed."""

from __future__ import annotations

import uuid

from components.gpu_pool import scale_out_steps as stack_steps
from jobrunner.scheduler.autoscale import (
    MAX_GAUGE,
    DemandGauges,
    demand_level,
    demand_queue,
    idle_level,
    idle_queue,
    scale_out_steps,
)
from jobrunner.store.client import Store


def test_levels_answer_every_rule_as_the_exact_figure_would() -> None:
    assert stack_steps is scale_out_steps  # one home for the thresholds
    for demand in range(0, 2 * MAX_GAUGE):
        level = demand_level(demand)
        assert level <= demand
        for step in scale_out_steps(4096):
            if step <= MAX_GAUGE:
                assert (level >= step) == (demand >= step)
        assert (level <= 0) == (demand <= 0)
    assert [idle_level(n) >= 1 for n in (0, 1, 7)] == [False, True, True]


def test_the_gauges_follow_demand_and_idle_nodes(azurite: str) -> None:
    store = Store.connect(azurite)
    pool = f"gauge-{uuid.uuid4().hex[:8]}"
    gauges = DemandGauges(store, pool, min_interval_s=60)
    assert gauges.update(demand_nodes=5, idle_nodes=2, now=0)
    assert (store.queue_length(demand_queue(pool)), store.queue_length(idle_queue(pool))) == (4, 1)
    assert not gauges.update(demand_nodes=1, idle_nodes=0, now=30)  # too soon: autoscale samples a minute
    assert not gauges.update(demand_nodes=7, idle_nodes=3, now=90)  # the same levels: no request
    assert gauges.update(demand_nodes=1, idle_nodes=0, now=91)
    assert (store.queue_length(demand_queue(pool)), store.queue_length(idle_queue(pool))) == (1, 0)
    assert not gauges.update(demand_nodes=1, idle_nodes=0, now=200)  # unchanged: no request
    fresh = DemandGauges(store, pool)  # a new leader corrects what the last one left
    assert fresh.update(demand_nodes=0, idle_nodes=3, now=0)
    assert (store.queue_length(demand_queue(pool)), store.queue_length(idle_queue(pool))) == (0, 1)
    assert fresh.update(demand_nodes=20, idle_nodes=0, now=100)
    assert (store.queue_length(demand_queue(pool)), store.queue_length(idle_queue(pool))) == (16, 0)
    assert MAX_GAUGE >= 1000
