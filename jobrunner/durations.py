"""ISO 8601 durations (`PT1H30M`, `P7D`, `P1W`, `PT1.5S`), read in one place, by `isodate`.

Every reader of a duration in the project (Batch AI's `maxWallClockTime`, the policy on a
cluster's idle time before scale-down, ...) goes through `iso_duration_seconds`, so that
they agree on what a duration is.
"""

from __future__ import annotations

import isodate  # type: ignore[import-untyped]  # isodate ships no type information


def iso_duration_seconds(text: str) -> float:
    """Seconds in the ISO 8601 duration `text` (case and surrounding space do not matter).

    Raises ValueError saying why when `text` is not a duration, is empty (`P`, `PT`), or
    counts months or years, which have no fixed length in seconds.
    """
    value = text.strip().upper()
    if value in ("P", "PT") or value.endswith("T") or not value.lstrip("+-").startswith("P"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration (like PT1H30M or P7D)")
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError, OverflowError):
        raise ValueError(f"{text!r} is not an ISO 8601 duration (like PT1H30M or P7D)") from None
    if isinstance(parsed, isodate.Duration):
        if parsed.years or parsed.months:
            raise ValueError(f"{text!r} counts months or years, which have no fixed length: use days (P30D)")
        parsed = parsed.tdelta
    return float(parsed.total_seconds())
