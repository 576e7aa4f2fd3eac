"""What a pool looks like to `jobrunner pool status` and autoscale: its nodes and what its
scheduler last said about its queue.

    publish_report(pool_store, PoolReport(leader="vm-0", waiting=(...,), nodes_short=3))
    read_report(pool_store)  -> (PoolReport, waiting in all) | None
    read_nodes(pool_store)   -> (NodeView, ...): one listing of the node blobs

One small blob, `report`, beside the scheduler's others, rewritten by the leader only when
what it says changed (a pass that changes nothing costs no write). `nodes_short` is the
pool's demand in nodes beyond what it has: what autoscale adds.

Failure modes: StoreError from the store; a report that does not parse reads as None.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from jobrunner.errors import NotFoundError
from jobrunner.scheduler.protocol import NODES, PoolStore, node_beat_at
from jobrunner.store.status import utc_now

REPORT_BLOB = "report"
MAX_WAITING = 20  # reasons kept: the first ones are what a user needs


@dataclass(frozen=True)
class PoolReport:
    leader: str
    waiting: tuple[str, ...] = ()
    nodes_short: int = 0
    demand_nodes: int = 0  # nodes the queued work wants beyond the idle ones
    at: str = ""  # when it was written (UTC)

    def same(self, other: PoolReport | None) -> bool:
        return other is not None and (self.leader, self.waiting, self.nodes_short, self.demand_nodes) == (
            other.leader, other.waiting, other.nodes_short, other.demand_nodes,
        )  # fmt: skip


def publish_report(store: PoolStore, report: PoolReport) -> None:
    data = asdict(report) | {"waiting": list(report.waiting[:MAX_WAITING]), "at": utc_now()}
    data["waiting_total"] = len(report.waiting)
    store.put(REPORT_BLOB, json.dumps(data).encode(), {})


def read_report(store: PoolStore) -> tuple[PoolReport, int] | None:
    """The last report and how many runs were waiting in all; None before any leader wrote one."""
    try:
        data, _, _ = store.get(REPORT_BLOB)
        raw = json.loads(data)
        report = PoolReport(
            str(raw["leader"]), tuple(str(w) for w in raw["waiting"]), int(raw["nodes_short"]),
            int(raw.get("demand_nodes", 0)), str(raw.get("at", "")),
        )  # fmt: skip
        return report, int(raw.get("waiting_total", len(report.waiting)))
    except NotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class NodeView:
    """One node as its blob says: its state, the attempt it holds, how long it has been silent."""

    name: str
    state: str
    run: str | None
    attempt: int | None
    address: str
    incarnation: str
    heartbeat_age_s: float


def read_nodes(store: PoolStore) -> tuple[NodeView, ...]:
    """Every node that ever beat in the pool (stale ones included), by name; ages by the store's clock."""
    listing = store.list(NODES)
    out = []
    for e in listing.entries:
        m = e.metadata
        beat = node_beat_at(e)
        state = m.get("state", "?")
        holds = state not in ("done", "stopped")  # a done node shows idle, the run it ended is history
        attempt = m.get("attempt", "") if holds else ""
        out.append(
            NodeView(
                e.name.removeprefix(NODES),
                "idle" if state == "done" else state,
                m.get("run") if holds else None,
                int(attempt) if attempt.isdigit() else None,
                m.get("endpoint", "").split("|")[0],
                m.get("inc", ""),
                round(max(0.0, listing.at - beat), 1),
            )  # fmt: skip
        )
    return tuple(sorted(out, key=lambda n: n.name))
