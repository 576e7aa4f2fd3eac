"""`JobStore`: the containers and queues the jobrunner agents use, declared rather than made on
first use (the node identity holds data roles on them, not the right to create them).

In the workspace's storage account: `runs` (every run's spec, status, code, logs and outputs),
`pools` (each pool's published config and its scheduler's blobs: lease, nodes, pending
attempts, run documents) and per pool its submission queue `pool-<name>`, poison queue
`pool-<name>-poison` and the autoscale gauges `pool-<name>-demand` and `pool-<name>-idle`
(`jobrunner.scheduler.autoscale`).
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import storage

from jobrunner.scheduler.autoscale import demand_queue, idle_queue
from jobrunner.store.client import POOLS, RUNS, queue_name
from jobrunner.store.poison import poison_queue


def pool_queues(pool: str) -> tuple[str, str, str, str]:
    """The submission queue, the poison queue and the two autoscale gauges of `pool`."""
    return queue_name(pool), poison_queue(pool), demand_queue(pool), idle_queue(pool)


class JobStore(pulumi.ComponentResource):
    """`runs`, `pools` and each pool's queues in `account_name`."""

    def __init__(
        self,
        name: str,
        *,
        pools: list[str],
        resource_group: pulumi.Input[str],
        account_name: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("trainstack:job_store:JobStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.containers = {
            c: storage.BlobContainer(
                f"{name}-{c}",
                container_name=c,
                account_name=account_name,
                resource_group_name=resource_group,
                public_access=storage.PublicAccess.NONE,
                opts=child,
            )
            for c in (RUNS, POOLS)
        }
        self.queues = {
            q: storage.Queue(
                f"{name}-{q}",
                queue_name=q,
                account_name=account_name,
                resource_group_name=resource_group,
                opts=child,
            )
            for pool in pools
            for q in pool_queues(pool)
        }
        self.register_outputs({"containers": sorted(self.containers), "queues": sorted(self.queues)})
