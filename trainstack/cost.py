"""What a stack costs a month, from the SKU catalog, at minimum and at maximum scale.

Every cluster and pool is priced at `HOURS_PER_MONTH` hours per node: its minimum node count
is what it costs idle, its maximum what it costs flat out. Evictable capacity (low-priority
clusters, Spot pools) is priced at the catalog's Spot price where the catalog has one, at
the on-demand price otherwise (and says so). Each line carries the region and date of the
price it used, because GPU prices differ by region and change.

Of the workspace's own parts only those with a fixed price are counted (the workspace is
free, a container registry has a daily price per tier); storage, Key Vault, Log Analytics
and Application Insights bill by use and are listed as such, not guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.capacity import Capacity, capacities
from policies.model import Resource, SkuFacts, find_sku
from policies.tokens import CONTAINER_REGISTRY, ML_WORKSPACE

HOURS_PER_MONTH = 730
CURRENCY = "USD"

# Container Registry's fixed daily charge per tier (USD list price; storage beyond the
# included amount and network egress are usage-based and left out).
REGISTRY_DAILY_USD = {"Basic": 0.167, "Standard": 0.667, "Premium": 1.667}
REGISTRY_PRICE_REGION = "eastus"
REGISTRY_PRICE_DATE = "2026-01"
DAYS_PER_MONTH = HOURS_PER_MONTH / 24

_USAGE_BASED = {
    "azure-native:storage:StorageAccount": "storage: billed by capacity and transactions",
    "azure-native:keyvault:Vault": "Key Vault: billed per operation",
    "azure-native:operationalinsights:Workspace": "Log Analytics: billed per GB ingested",
    "azure-native:applicationinsights:Component": "Application Insights: billed per GB ingested",
}


@dataclass(frozen=True)
class CostLine:
    """One priced resource. `hourly_usd` is per node; None when the catalog lacks the size."""

    resource: str
    resource_type: str
    kind: str  # cluster | pool | workspace | registry
    vm_size: str | None
    priority: str | None  # dedicated | spot | low-priority
    min_nodes: int
    max_nodes: int
    hourly_usd: float | None
    monthly_min: float
    monthly_max: float
    price_region: str | None
    price_date: str | None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "type": self.resource_type,
            "kind": self.kind,
            "vm_size": self.vm_size,
            "priority": self.priority,
            "min_nodes": self.min_nodes,
            "max_nodes": self.max_nodes,
            "hourly_usd": self.hourly_usd,
            "monthly_min": self.monthly_min,
            "monthly_max": self.monthly_max,
            "price_region": self.price_region,
            "price_date": self.price_date,
            "note": self.note,
        }


@dataclass(frozen=True)
class CostEstimate:
    """The priced lines, their totals, and what could not be priced (`usage_based`, and
    lines whose VM size the catalog does not know)."""

    lines: tuple[CostLine, ...]
    usage_based: tuple[str, ...]
    currency: str = CURRENCY
    hours_per_month: int = HOURS_PER_MONTH

    @property
    def monthly_min(self) -> float:
        return round(sum(line.monthly_min for line in self.lines), 2)

    @property
    def monthly_max(self) -> float:
        return round(sum(line.monthly_max for line in self.lines), 2)

    @property
    def unpriced(self) -> tuple[str, ...]:
        return tuple(line.resource for line in self.lines if line.hourly_usd is None and line.vm_size)

    def as_json(self) -> dict[str, Any]:
        return {
            "monthly_min": self.monthly_min,
            "monthly_max": self.monthly_max,
            "currency": self.currency,
            "hours_per_month": self.hours_per_month,
            "lines": [line.as_json() for line in self.lines],
            "usage_based": list(self.usage_based),
            "unpriced": list(self.unpriced),
        }


def _node_line(c: Capacity, catalog: Mapping[str, SkuFacts]) -> CostLine:
    sku = find_sku(catalog, c.vm_size)
    label = ("low-priority" if c.kind == "cluster" else "spot") if c.evictable else "dedicated"
    note = ""
    hourly: float | None = None
    if sku is None:
        note = f"{c.vm_size or 'no VM size'} is not in the catalog: not priced"
    elif c.evictable and sku.spot_price_per_hour_usd is not None:
        hourly = sku.spot_price_per_hour_usd
    else:
        hourly = sku.price_per_hour_usd
        if c.evictable:
            note = "no Spot price in the catalog: priced on demand"
    per_node_month = (hourly or 0.0) * HOURS_PER_MONTH
    return CostLine(
        resource=c.resource.name,
        resource_type=c.resource.type,
        kind=c.kind,
        vm_size=c.vm_size or None,
        priority=label,
        min_nodes=c.min_nodes,
        max_nodes=c.max_nodes,
        hourly_usd=hourly,
        monthly_min=round(per_node_month * c.min_nodes, 2),
        monthly_max=round(per_node_month * c.max_nodes, 2),
        price_region=sku.price_region if sku else None,
        price_date=sku.price_date if sku else None,
        note=note,
    )


def _fixed_line(r: Resource) -> CostLine | None:
    if r.type == ML_WORKSPACE:
        return CostLine(r.name, r.type, "workspace", None, None, 0, 0, 0.0, 0.0, 0.0, None, None,
                        "no charge for the workspace itself")  # fmt: skip
    if r.type == CONTAINER_REGISTRY:
        tier = str(r.get("sku.name") or "")
        daily = REGISTRY_DAILY_USD.get(tier)
        monthly = round(daily * DAYS_PER_MONTH, 2) if daily is not None else 0.0
        note = (
            f"{tier} tier, included storage only"
            if daily is not None
            else f"unknown tier {tier!r}: not priced"
        )
        return CostLine(r.name, r.type, "registry", None, None, 0, 0, None, monthly, monthly,
                        REGISTRY_PRICE_REGION, REGISTRY_PRICE_DATE, note)  # fmt: skip
    return None


def estimate(resources: Sequence[Resource], catalog: Mapping[str, SkuFacts]) -> CostEstimate:
    """Monthly cost of `resources` at minimum and maximum scale, priced from `catalog`.

    Never fails on an unknown size or tier: the line is kept with no price and a note, and
    the size is listed in `unpriced`, so a review shows what it could not price.
    """
    lines = [_node_line(c, catalog) for c in capacities(resources)]
    lines.extend(line for r in resources if (line := _fixed_line(r)) is not None)
    usage = sorted({f"{r.name} ({_USAGE_BASED[r.type]})" for r in resources if r.type in _USAGE_BASED})
    return CostEstimate(lines=tuple(lines), usage_based=tuple(usage))


def catalog_prices() -> dict[str, SkuFacts]:
    """The GPU catalog (`components.skus`) as the price and retirement facts cost and policies use."""
    from components import skus

    return {
        s.name: SkuFacts(
            name=s.name,
            price_per_hour_usd=s.price_per_hour_usd,
            price_region=s.price_region,
            price_date=s.price_date.isoformat(),
            spot_price_per_hour_usd=s.spot_price_per_hour_usd,
            retired=s.retired,
            successor=s.successor,
        )
        for s in skus.all_skus()
    }
