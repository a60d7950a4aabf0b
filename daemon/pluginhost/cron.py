"""A small cron: five fields (minute hour day-of-month month day-of-week), local time.

Each field takes ``*``, numbers, ranges ``a-b``, steps ``*/n`` or ``a-b/n``, lists
``a,b``, and month/day names (``jan``, ``mon``). Day-of-week 0 and 7 are Sunday. As in
Vixie cron, when both day fields are restricted a day matches if *either* does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_FIELDS: list[tuple[str, int, int, list[str]]] = [
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("weekday", 0, 7, _DAYS),
]


def _value(text: str, lo: int, names: list[str]) -> int:
    low = text.lower()
    if low in names:
        return names.index(low) + (1 if lo == 1 else 0)
    return int(text)


def _field(text: str, name: str, lo: int, hi: int, names: list[str]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = _value(a, lo, names), _value(b, lo, names)
        else:
            start = _value(base, lo, names)
            end = hi if step_text else start
        if not (lo <= start <= end <= hi) or step < 1:
            raise ValueError(f"cron {name} field {part!r} is out of range {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        parts = expression.split()
        if len(parts) != 5:
            raise ValueError(f"cron {expression!r}: needs 5 fields (minute hour day month weekday)")
        try:
            sets = [_field(t, *spec) for t, spec in zip(parts, _FIELDS, strict=True)]
        except ValueError as exc:
            raise ValueError(f"cron {expression!r}: {exc}") from None
        weekdays = frozenset(d % 7 for d in sets[4])
        minutes, hours, days, months = sets[:4]
        return cls(minutes, hours, days, months, weekdays, parts[2] == "*", parts[4] == "*")

    def _day_matches(self, when: datetime) -> bool:
        day = when.day in self.days
        weekday = (when.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday

    def next_after(self, when: datetime) -> datetime:
        """The first matching minute strictly after ``when``."""
        t = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        raise ValueError("this cron expression never matches (e.g. 31 February)")
