"""Human durations for options such as `--renew-within 30d`."""

from __future__ import annotations

import re
from datetime import timedelta

_RE = re.compile(r"^\s*(\d+)\s*([dhw]?)\s*$", re.IGNORECASE)
_UNITS = {"": "days", "d": "days", "h": "hours", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`30d`, `2w`, `12h` or a bare number of days; raises ValueError otherwise."""
    match = _RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 30d, 2w, 12h)")
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit.lower()]: int(amount)})


def format_duration(value: timedelta) -> str:
    if value.seconds == 0:
        return f"{value.days}d"
    return f"{int(value.total_seconds() // 3600)}h"
