"""Batch AI's durations: .NET TimeSpan text (`7.00:00:00`, `01:30:00`), as its schema's
default is written, or ISO 8601 (`P7D`, `PT1H30M`), as the service returned them."""

from __future__ import annotations

import math
import re

from jobrunner.durations import iso_duration_seconds

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.\d+)?$")


def parse_duration_seconds(text: str) -> int:
    """Whole seconds in a TimeSpan or ISO 8601 duration (fractions round up).

    Raises ValueError naming both accepted forms when `text` is neither, or is zero.
    """
    value = text.strip()
    m = _TIMESPAN.match(value)
    if m:
        seconds = int(m["days"] or 0) * 86400 + int(m["h"]) * 3600 + int(m["m"]) * 60 + int(m["s"])
    else:
        try:
            seconds = math.ceil(iso_duration_seconds(value))
        except ValueError:
            raise ValueError(
                f"{text!r} is not a duration: write days.hours:minutes:seconds (7.00:00:00) or ISO 8601 (P7D)"
            ) from None
    if seconds <= 0:
        raise ValueError(f"{text!r} is no time at all: give the longest the job may run, e.g. 1.00:00:00")
    return seconds
