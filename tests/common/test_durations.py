"""One ISO 8601 duration reader for the whole project: Batch AI's limits and the idle-time
policy agree on weeks, fractions and what is not a duration."""

from __future__ import annotations

import pytest

from jobrunner.durations import iso_duration_seconds
from policies.compute import iso_seconds
from trainstack.batchai.timespan import parse_duration_seconds

SAME = {"P1W": 604800, "PT1.5S": 1.5, "P7D": 604800, "PT1H30M": 5400, "pt120s": 120, "P1DT2H": 93600}


@pytest.mark.parametrize("text", sorted(SAME))
def test_every_reader_agrees(text: str) -> None:
    assert iso_duration_seconds(text) == SAME[text]
    assert iso_seconds(text) == SAME[text]
    assert parse_duration_seconds(text) == -(-SAME[text] // 1)  # Batch AI counts whole seconds, up


@pytest.mark.parametrize("text", ["P", "PT", "P1DT", "1H", "PT1X", "", "P1M", "P1Y"])
def test_what_is_not_a_fixed_duration_is_refused_by_every_reader(text: str) -> None:
    with pytest.raises(ValueError, match="months or years|not an ISO 8601 duration"):
        iso_duration_seconds(text)
    assert iso_seconds(text) is None
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration_seconds(text)


def test_timespan_text_is_batch_ais_own_form() -> None:
    assert parse_duration_seconds("7.00:00:00") == 604800 and parse_duration_seconds("01:30:00") == 5400
