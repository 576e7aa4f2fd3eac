"""Early termination of a sweep's trials, as Azure ML defines its three policies.

    reason = should_stop(policy, goal, trial="t3", histories={"t1": [...], "t3": [...]})

A trial's *history* is the values of the primary metric it has logged, in order; each logged
value is one *interval*. A policy looks at a trial when it has just logged its k-th value,
if k is at least `delay_evaluation` (and at least 1) and a multiple of `evaluation_interval`
(0 or unset: every interval). At interval k a trial's *score* is the best of its first k
values (lowest when the goal is to minimize). Only trials that have reached interval k take
part in the comparison, finished ones included.

- bandit: stop the trial if its score is outside the slack of the best score at k: with
  `slack_factor` f, below best / (1 + f) when maximizing, above best * (1 + f) when
  minimizing (for a positive best; the slack widens the same way for a negative one); with
  `slack_amount` a, below best - a or above best + a.
- median_stopping: stop the trial if its score is worse than the median of the other
  trials' running averages (mean of their first k values); needs at least one other trial.
- truncation_selection: rank the scores at k; stop the trial if it is in the worst
  `truncation_percentage` percent (rounded down, so nothing is stopped among too few; a tie
  counts in the trial's favour, so the best trial is never stopped).

Pure functions: the sweep's driver calls `should_stop` for each running trial whose history
grew, and cancels the trial with the reason it returns.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from jobrunner.sweep.models import (
    BanditPolicy,
    EarlyTermination,
    MedianStoppingPolicy,
    TruncationSelectionPolicy,
)


def evaluates_at(policy: EarlyTermination, interval: int) -> bool:
    """Whether `policy` looks at a trial that has just logged its `interval`-th value."""
    every = policy.evaluation_interval or 1
    return interval >= max(policy.delay_evaluation or 0, 1) and interval % every == 0


def _better(goal: str, a: float, b: float) -> bool:
    return a < b if goal == "minimize" else a > b


def _score(goal: str, history: Sequence[float], k: int) -> float:
    head = history[:k]
    return min(head) if goal == "minimize" else max(head)


def should_stop(
    policy: EarlyTermination, goal: str, trial: str, histories: Mapping[str, Sequence[float]]
) -> str | None:
    """The reason to stop `trial` now, or None. `histories` holds every trial of the sweep
    that has logged the metric (running or finished), `trial` among them."""
    history = [v for v in histories[trial] if math.isfinite(v)]
    k = len(history)
    if k == 0 or not evaluates_at(policy, k):
        return None
    peers = {
        name: [v for v in values if math.isfinite(v)] for name, values in histories.items() if name != trial
    }
    peers = {name: values for name, values in peers.items() if len(values) >= k}
    score = _score(goal, history, k)
    if isinstance(policy, BanditPolicy):
        return _bandit(policy, goal, score, k, [_score(goal, v, k) for v in peers.values()])
    if isinstance(policy, MedianStoppingPolicy):
        if not peers:
            return None
        median = statistics.median(statistics.fmean(v[:k]) for v in peers.values())
        if _better(goal, median, score):
            return f"median stopping: best {score:g} by interval {k} is worse than the median {median:g}"
        return None
    assert isinstance(policy, TruncationSelectionPolicy)
    peer_scores = [_score(goal, v, k) for v in peers.values()]
    n = len(peer_scores) + 1
    cut = n * policy.truncation_percentage // 100
    better = sum(_better(goal, other, score) for other in peer_scores)
    if cut and better >= n - cut:  # among the worst `cut`, ties counted in the trial's favour
        return (
            f"truncation selection: {score:g} at interval {k} is in the worst "
            f"{policy.truncation_percentage}% of {n} trials"
        )
    return None


def _bandit(policy: BanditPolicy, goal: str, score: float, k: int, peer_scores: list[float]) -> str | None:
    best = score
    for other in peer_scores:
        if _better(goal, other, best):
            best = other
    if policy.slack_factor is not None:
        f = policy.slack_factor
        # best * (1 + f) and best / (1 + f) for the positive metrics Azure ML describes,
        # written so that the slack also widens (never narrows) for a negative best
        limit = best + abs(best) * f if goal == "minimize" else best - abs(best) * f / (1 + f)
        slack = f"slack_factor {f:g}"
    else:
        assert policy.slack_amount is not None
        a = policy.slack_amount
        limit = best + a if goal == "minimize" else best - a
        slack = f"slack_amount {a:g}"
    if _better(goal, limit, score):
        return f"bandit: best {score:g} by interval {k} is outside {slack} of the best trial's {best:g}"
    return None
