"""Human durations (`90s`, `10m`, `2h`, `1d`) as used in config and flags."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str) -> timedelta:
    """`10m` → 10 minutes; a bare number is not accepted (`10` cannot mean seconds by accident), except
    `0`, which means the same in every unit."""
    if str(text).strip() == "0":
        return timedelta(0)
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, like 30s, 10m, 2h or 1d")
    try:
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too long") from None


def option_seconds(text: str, option: str, minimum: float = 0.0, why: str = "") -> float:
    """A duration flag (`--every 5m`) in seconds; malformed, or shorter than `minimum` (never zero), is bad
    input naming the flag and, when given, `why` the minimum is what it is."""
    from pipectl.errors import UsageError

    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if seconds <= 0 or seconds < minimum:
        least = f"at least {format_duration(minimum)}" if minimum else "a positive duration, e.g. 5m"
        raise UsageError(f"{option} must be {least}{f' ({why})' if why else ''}, not {text!r}")
    return seconds


def format_duration(delta: timedelta | float) -> str:
    """Short and exact enough for a finding: `45s`, `12m`, `3h 5m`, `2d 4h`."""
    seconds = int(delta.total_seconds() if isinstance(delta, timedelta) else delta)
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def whole_seconds(seconds: float) -> str:
    """`5s` for a budget of 5.25424 s: what a message says of a deadline (never less than `1s`)."""
    return f"{max(1, round(seconds))}s"
