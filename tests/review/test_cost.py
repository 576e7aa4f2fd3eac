"""The monthly estimate at minimum and maximum scale, priced from a hand-made catalog."""

from __future__ import annotations

import pytest

from policies import Resource
from policies import tokens as t
from tests.review import records as rec
from tests.review.records import autoscale, cluster, deep, pool
from trainstack.cost import HOURS_PER_MONTH, REGISTRY_DAILY_USD, estimate

A = "properties.properties."


def test_dedicated_cluster_min_and_max() -> None:
    r = deep(cluster(), **{A + "scaleSettings.minNodeCount": 1})
    cost = estimate([r], rec.CATALOG)
    [line] = cost.lines
    assert (line.kind, line.priority, line.min_nodes, line.max_nodes) == ("cluster", "dedicated", 1, 4)
    assert line.monthly_min == round(3.673 * HOURS_PER_MONTH, 2)
    assert line.monthly_max == round(4 * 3.673 * HOURS_PER_MONTH, 2)
    assert (line.price_region, line.price_date) == ("eastus", "2025-06-01")
    assert cost.as_json()["currency"] == "USD"


def test_low_priority_uses_the_spot_price_when_the_catalog_has_one() -> None:
    r = deep(cluster(), **{A + "vmPriority": "LowPriority"})
    [line] = estimate([r], rec.CATALOG).lines
    assert (line.priority, line.hourly_usd, line.note) == ("low-priority", 1.1, "")


def test_spot_without_a_catalog_spot_price_is_priced_on_demand_and_says_so() -> None:
    [line] = estimate([pool(vm_size="Standard_ND96isr_H100_v5"), autoscale(maximum=2)], rec.CATALOG).lines
    assert line.hourly_usd == 98.32 and "on demand" in line.note
    assert line.monthly_max == round(2 * 98.32 * HOURS_PER_MONTH, 2) and line.monthly_min == 0


def test_pool_without_autoscale_runs_its_fixed_capacity() -> None:
    [line] = estimate([pool(priority="Regular", capacity=2)], rec.CATALOG).lines
    assert (line.min_nodes, line.max_nodes, line.priority) == (2, 2, "dedicated")


def test_autoscale_matched_by_target_uri() -> None:
    setting = deep(
        autoscale("elsewhere", maximum=5),
        targetResourceUri="/subscriptions/s/.../virtualMachineScaleSets/pool-vmss",
    )
    [line] = estimate([pool(), setting], rec.CATALOG).lines
    assert line.max_nodes == 5


def test_unknown_size_is_kept_unpriced() -> None:
    cost = estimate([cluster(vm_size="Standard_Mystery")], rec.CATALOG)
    assert cost.unpriced == ("gpu",) and cost.monthly_max == 0
    assert "not in the catalog" in cost.lines[0].note


@pytest.mark.parametrize("tier", sorted(REGISTRY_DAILY_USD))
def test_workspace_fixed_parts(tier: str) -> None:
    registry = Resource(t.CONTAINER_REGISTRY, "acr", "ws", {"sku": {"name": tier}})
    cost = estimate([rec.workspace(), registry, rec.storage(), rec.vault()], rec.CATALOG)
    by_kind = {line.kind: line for line in cost.lines}
    assert by_kind["workspace"].monthly_max == 0
    assert (
        by_kind["registry"].monthly_min
        == by_kind["registry"].monthly_max
        == round(REGISTRY_DAILY_USD[tier] * 730 / 24, 2)
    )
    assert by_kind["registry"].price_region and by_kind["registry"].price_date
    assert [u.split(" ")[0] for u in cost.usage_based] == ["ws-storage", "ws-vault"]


def test_totals_add_up() -> None:
    cost = estimate(rec.compliant_stack(), rec.CATALOG)
    assert cost.monthly_min == 0
    assert cost.monthly_max == round((4 * 3.673 + 8 * 1.1) * HOURS_PER_MONTH, 2)
