"""Batch AI's durations: .NET TimeSpan text (`7.00:00:00`, `01:30:00`), as its schema's
default is written, or ISO 8601 (`P7D`, `PT1H30M`), as the service returned them."""

from __future__ import annotations

import re

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.\d+)?$")
_ISO = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration_seconds(text: str) -> int:
    """Whole seconds in a TimeSpan or ISO 8601 duration (fractions round up).

    Raises ValueError naming both accepted forms when `text` is neither, or is zero.
    """
    value = text.strip()
    m = _TIMESPAN.match(value)
    if m:
        seconds = int(m["days"] or 0) * 86400 + int(m["h"]) * 3600 + int(m["m"]) * 60 + int(m["s"])
    else:
        m = _ISO.match(value.upper())
        if not m or value.upper() in ("P", "PT") or value.upper().endswith("T"):
            raise ValueError(
                f"{text!r} is not a duration: write days.hours:minutes:seconds (7.00:00:00) or ISO 8601 (P7D)"
            )
        whole = float(m["s"] or 0)
        seconds = (int(m["weeks"] or 0) * 7 + int(m["days"] or 0)) * 86400 + int(m["h"] or 0) * 3600
        seconds += int(m["m"] or 0) * 60 + int(-(-whole // 1))
    if seconds <= 0:
        raise ValueError(f"{text!r} is no time at all: give the longest the job may run, e.g. 1.00:00:00")
    return seconds
