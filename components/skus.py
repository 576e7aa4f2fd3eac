"""The GPU catalog: every Azure GPU VM size trainstack knows, with its hardware and price.

Validation (`trainstack validate`: an unknown or retired size), cost (`trainstack review`) and
the job runner (`--nproc-per-node gpu` = `gpus`) all read this one table.

Prices are Azure's public pay-as-you-go list prices for Linux VMs in `PRICE_REGION` as of
`PRICE_DATE` (azure.microsoft.com/pricing/details/virtual-machines/linux, Azure Retail Prices
API), in USD per VM-hour. They change; treat them as estimates, not a bill. Spot prices float
daily, so `spot_price_per_hour_usd` is None where no stable figure exists. Retired sizes keep
their last list price so that old Batch AI and stack files can still be costed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

PRICE_REGION = "eastus"
PRICE_DATE = dt.date(2025, 6, 1)


@dataclass(frozen=True)
class GpuSku:
    """One Azure GPU VM size. `name` is spelled as Azure spells it (`Standard_NC24ads_A100_v4`)."""

    name: str
    family: str
    gpu_model: str
    gpus: int
    gpu_memory_gib: int  # per GPU
    vcpus: int
    memory_gib: float
    infiniband: bool
    price_per_hour_usd: float
    spot_price_per_hour_usd: float | None = None
    retired: dt.date | None = None
    successor: str | None = None
    price_region: str = PRICE_REGION
    price_date: dt.date = PRICE_DATE

    @property
    def total_gpu_memory_gib(self) -> int:
        return self.gpus * self.gpu_memory_gib

    def is_retired(self, today: dt.date | None = None) -> bool:
        """True once Azure has retired the size (on or after its retirement date)."""
        return self.retired is not None and (today or dt.date.today()) >= self.retired


_NCV3_RETIRED = dt.date(2025, 9, 30)
# NC (K80), NCv2 (P100) and ND (P40) were retired together.
_KEPLER_PASCAL_RETIRED = dt.date(2023, 9, 6)

_CATALOG: tuple[GpuSku, ...] = (
    # NC A100 v4: PCIe A100 80 GB, no InfiniBand.
    GpuSku("Standard_NC24ads_A100_v4", "NC A100 v4", "A100 80GB PCIe", 1, 80, 24, 220, False, 3.673),
    GpuSku("Standard_NC48ads_A100_v4", "NC A100 v4", "A100 80GB PCIe", 2, 80, 48, 440, False, 7.346),
    GpuSku("Standard_NC96ads_A100_v4", "NC A100 v4", "A100 80GB PCIe", 4, 80, 96, 880, False, 14.692),
    # ND A100 v4: 8 SXM A100 with NVLink and 8 x 200 Gb/s HDR InfiniBand.
    GpuSku("Standard_ND96asr_v4", "ND A100 v4", "A100 40GB SXM", 8, 40, 96, 900, True, 27.197),
    GpuSku("Standard_ND96amsr_A100_v4", "ND A100 v4", "A100 80GB SXM", 8, 80, 96, 1900, True, 32.77),
    # ND H100 v5: 8 SXM H100 with 8 x 400 Gb/s NDR InfiniBand.
    GpuSku("Standard_ND96isr_H100_v5", "ND H100 v5", "H100 80GB SXM", 8, 80, 96, 1900, True, 98.32),
    # NCads H100 v5: H100 NVL 94 GB, PCIe.
    GpuSku("Standard_NC40ads_H100_v5", "NCads H100 v5", "H100 NVL 94GB", 1, 94, 40, 320, False, 6.98),
    GpuSku("Standard_NC80adis_H100_v5", "NCads H100 v5", "H100 NVL 94GB", 2, 94, 80, 640, False, 13.96),
    # NC T4 v3: T4 16 GB, inference and small training.
    GpuSku("Standard_NC4as_T4_v3", "NC T4 v3", "T4 16GB", 1, 16, 4, 28, False, 0.526),
    GpuSku("Standard_NC8as_T4_v3", "NC T4 v3", "T4 16GB", 1, 16, 8, 56, False, 0.752),
    GpuSku("Standard_NC16as_T4_v3", "NC T4 v3", "T4 16GB", 1, 16, 16, 110, False, 1.204),
    GpuSku("Standard_NC64as_T4_v3", "NC T4 v3", "T4 16GB", 4, 16, 64, 440, False, 4.352),
    # Retired: NCv3 (V100 16 GB).
    GpuSku(
        "Standard_NC6s_v3",
        "NCv3",
        "V100 16GB",
        1,
        16,
        6,
        112,
        False,
        3.06,
        retired=_NCV3_RETIRED,
        successor="Standard_NC24ads_A100_v4",
    ),
    GpuSku(
        "Standard_NC12s_v3",
        "NCv3",
        "V100 16GB",
        2,
        16,
        12,
        224,
        False,
        6.12,
        retired=_NCV3_RETIRED,
        successor="Standard_NC48ads_A100_v4",
    ),
    GpuSku(
        "Standard_NC24s_v3",
        "NCv3",
        "V100 16GB",
        4,
        16,
        24,
        448,
        False,
        12.24,
        retired=_NCV3_RETIRED,
        successor="Standard_NC96ads_A100_v4",
    ),
    GpuSku(
        "Standard_NC24rs_v3",
        "NCv3",
        "V100 16GB",
        4,
        16,
        24,
        448,
        True,
        13.464,
        retired=_NCV3_RETIRED,
        successor="Standard_NC96ads_A100_v4",
    ),
    # Retired: NC (K80, 12 GB per GPU), the sizes Batch AI clusters used most.
    GpuSku(
        "Standard_NC6",
        "NC",
        "K80 12GB",
        1,
        12,
        6,
        56,
        False,
        0.90,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_NC4as_T4_v3",
    ),
    GpuSku(
        "Standard_NC12",
        "NC",
        "K80 12GB",
        2,
        12,
        12,
        112,
        False,
        1.80,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_NC16as_T4_v3",
    ),
    GpuSku(
        "Standard_NC24",
        "NC",
        "K80 12GB",
        4,
        12,
        24,
        224,
        False,
        3.60,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_NC64as_T4_v3",
    ),
    GpuSku(
        "Standard_NC24r",
        "NC",
        "K80 12GB",
        4,
        12,
        24,
        224,
        True,
        3.96,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_NC64as_T4_v3",
    ),
    # Retired: NCv2 (P100 16 GB).
    GpuSku(
        "Standard_NC6s_v2",
        "NCv2",
        "P100 16GB",
        1,
        16,
        6,
        112,
        False,
        2.07,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_NC24ads_A100_v4",
    ),
    GpuSku(
        "Standard_NC12s_v2",
        "NCv2",
        "P100 16GB",
        2,
        16,
        12,
        224,
        False,
        4.14,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_NC48ads_A100_v4",
    ),
    GpuSku(
        "Standard_NC24s_v2",
        "NCv2",
        "P100 16GB",
        4,
        16,
        24,
        448,
        False,
        8.28,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_NC96ads_A100_v4",
    ),
    GpuSku(
        "Standard_NC24rs_v2",
        "NCv2",
        "P100 16GB",
        4,
        16,
        24,
        448,
        True,
        9.108,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_NC96ads_A100_v4",
    ),
    # Retired: ND (P40 24 GB).
    GpuSku(
        "Standard_ND6s",
        "ND",
        "P40 24GB",
        1,
        24,
        6,
        112,
        False,
        2.07,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_NC24ads_A100_v4",
    ),
    GpuSku(
        "Standard_ND12s",
        "ND",
        "P40 24GB",
        2,
        24,
        12,
        224,
        False,
        4.14,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_NC48ads_A100_v4",
    ),
    GpuSku(
        "Standard_ND24s",
        "ND",
        "P40 24GB",
        4,
        24,
        24,
        448,
        False,
        8.28,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_NC96ads_A100_v4",
    ),
    GpuSku(
        "Standard_ND24rs",
        "ND",
        "P40 24GB",
        4,
        24,
        24,
        448,
        True,
        9.108,
        retired=_KEPLER_PASCAL_RETIRED,
        successor="Standard_ND96asr_v4",
    ),
)

# Azure treats size names case-insensitively (Batch AI files say `STANDARD_NC6`).
_BY_NAME: dict[str, GpuSku] = {sku.name.lower(): sku for sku in _CATALOG}


def all_skus() -> tuple[GpuSku, ...]:
    """Every size in the catalog, retired ones included, in catalog order."""
    return _CATALOG


def find_sku(name: str) -> GpuSku | None:
    """The catalog entry for a size name (any case, with or without `Standard_`), or None."""
    key = name.strip().lower()
    if not key.startswith("standard_"):
        key = "standard_" + key
    return _BY_NAME.get(key)


def current_skus(today: dt.date | None = None) -> tuple[GpuSku, ...]:
    """The sizes that can still be deployed."""
    return tuple(s for s in _CATALOG if not s.is_retired(today))
