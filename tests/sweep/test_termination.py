"""Azure ML's early-termination policies, with ties and equal values drawn."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jobrunner.sweep.models import BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy
from jobrunner.sweep.termination import evaluates_at, should_stop


def bandit(**kw: float) -> BanditPolicy:
    return BanditPolicy.model_validate({"type": "bandit", **kw})


def test_bandit_slack_factor_maximize_matches_azure_mls_example() -> None:
    # best 0.8 at the interval, slack_factor 0.2: anything below 0.8 / 1.2 = 0.667 stops
    policy = bandit(slack_factor=0.2)
    histories = {"best": [0.8], "ok": [0.7], "bad": [0.6]}
    assert should_stop(policy, "maximize", "ok", histories) is None
    reason = should_stop(policy, "maximize", "bad", histories)
    assert reason and "slack_factor 0.2" in reason and "0.8" in reason


def test_bandit_slack_amount_minimize() -> None:
    policy = bandit(slack_amount=0.5)
    histories = {"best": [1.0], "ok": [1.4], "bad": [1.6]}
    assert should_stop(policy, "minimize", "ok", histories) is None
    assert should_stop(policy, "minimize", "bad", histories)


def test_a_trial_is_scored_by_its_best_value_so_far() -> None:
    policy = bandit(slack_amount=0.1)
    histories = {"best": [1.0, 1.0], "recovered": [0.5, 5.0]}
    assert should_stop(policy, "minimize", "recovered", histories) is None


def test_delay_and_interval_decide_when_a_policy_looks() -> None:
    policy = bandit(slack_amount=0.1, evaluation_interval=2, delay_evaluation=3)
    assert [k for k in range(1, 9) if evaluates_at(policy, k)] == [4, 6, 8]
    histories = {"best": [0.0, 0.0, 0.0], "bad": [9.0, 9.0, 9.0]}
    assert should_stop(policy, "minimize", "bad", histories) is None  # interval 3: not looked at
    histories = {"best": [0.0] * 4, "bad": [9.0] * 4}
    assert should_stop(policy, "minimize", "bad", histories)


def test_peers_that_have_not_reached_the_interval_are_not_compared() -> None:
    policy = bandit(slack_amount=0.1)
    histories = {"fast": [9.0, 9.0], "slow": [0.0]}
    assert should_stop(policy, "minimize", "fast", histories) is None  # slow has no 2nd value


def test_median_stopping_compares_with_the_others_running_averages() -> None:
    policy = MedianStoppingPolicy.model_validate({"type": "median_stopping"})
    histories = {"a": [1.0, 3.0], "b": [2.0, 2.0], "c": [5.0, 5.0], "me": [4.0, 3.5]}
    # running averages at interval 2: a 2.0, b 2.0, c 5.0 -> median 2.0; my best 3.5 is worse
    assert should_stop(policy, "minimize", "me", histories)
    assert should_stop(policy, "maximize", "me", histories) is None
    assert should_stop(policy, "minimize", "me", {"me": [4.0]}) is None  # no one to compare with


def test_truncation_selection_stops_the_worst_percentage() -> None:
    policy = TruncationSelectionPolicy.model_validate(
        {"type": "truncation_selection", "truncation_percentage": 25}
    )
    histories = {"a": [1.0], "b": [2.0], "c": [3.0], "d": [4.0]}
    assert should_stop(policy, "minimize", "d", histories)
    assert should_stop(policy, "minimize", "c", histories) is None
    assert should_stop(policy, "maximize", "a", histories)
    three = {"a": [1.0], "b": [2.0], "c": [3.0]}  # 25 % of 3 rounds down to none
    assert should_stop(policy, "minimize", "c", three) is None


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.sampled_from([-2.0, 0.0, 1.0, 1.0, 2.0]), min_size=1, max_size=6),
    goal=st.sampled_from(["minimize", "maximize"]),
    pct=st.integers(1, 99),
)
def test_no_policy_ever_stops_the_best_trial_even_among_ties(
    values: list[float], goal: str, pct: int
) -> None:
    histories = {f"t{i}": [v] for i, v in enumerate(values)}
    best = min(values) if goal == "minimize" else max(values)
    leader = next(name for name, h in histories.items() if h[0] == best)
    policies = [
        bandit(slack_factor=0.5),
        bandit(slack_amount=0.1),
        MedianStoppingPolicy.model_validate({"type": "median_stopping"}),
        TruncationSelectionPolicy.model_validate(
            {"type": "truncation_selection", "truncation_percentage": pct}
        ),
    ]
    for policy in policies:
        assert should_stop(policy, goal, leader, histories) is None, policy
