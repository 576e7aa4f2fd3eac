"""The pool's scheduler: who runs which attempt, decided in one place.

`decide` (`jobrunner.scheduler.decide`) is the decision: a pure function from a snapshot of
the pool (its idle live nodes, what runs and until when at the latest, what waits) to the
attempts to start now and why the others wait. Gangs get their N nodes at once, in priority
then store-time submission order, with EASY backfill from `limits.timeout`. It does no I/O,
so it is tested with drawn states (tests/scheduler) and simulated at 1,000 nodes
(`bench/simulate.py`). Around it: `protocol` (the leader's lease, a pass, the nodes' side of
an assignment), `azure_store` (its store calls on Azure Storage), `judge` and `outcome` (how
an attempt ended, settled in the run's status), `report` and `autoscale` (what the pool
shows and what drives its size), `simulation` (the protocol over a simulated store).
"""

from jobrunner.scheduler.decide import (
    Assignment,
    Decision,
    PoolState,
    QueuedJob,
    Reservation,
    RunningJob,
    Waiting,
    decide,
    job_order,
)

__all__ = [
    "Assignment",
    "Decision",
    "PoolState",
    "QueuedJob",
    "Reservation",
    "RunningJob",
    "Waiting",
    "decide",
    "job_order",
]
