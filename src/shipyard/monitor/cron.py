"""Schedule expressions: SageMaker's documented cron forms, ``NOW``, and ``rate(...)``.

All at minute 0 in UTC: ``cron(0 * ? * * *)`` hourly, ``cron(0 H ? * * *)`` daily at hour H,
``cron(0 H/N ? * * *)`` every N hours from hour H (``cron(0 0/6 ? * * *)``: every 6 hours), and
``NOW`` (once). ``cron(0 */6 ? * * *)`` is not a documented SageMaker form and is refused.
Beyond SageMaker, ``rate(N minutes|hours|days)`` runs every interval from the schedule's
creation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from shipyard.core.errors import InvalidRequestError

_CRON = re.compile(r"^cron\(0 (\*|\d{1,2}|\d{1,2}/\d{1,2}) \? \* \* \*\)$")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class ScheduleExpression:
    """A parsed schedule expression: hours of the day, an interval, or once."""

    text: str
    hours: tuple[int, ...] = ()
    interval_s: int = 0

    @property
    def is_once(self) -> bool:
        return self.text == "NOW"

    @classmethod
    def parse(cls, text: str) -> ScheduleExpression:
        text = " ".join(str(text).split())
        if text == "NOW":
            return cls(text)
        rate = _RATE.match(text)
        if rate and int(rate.group(1)) > 0:
            return cls(text, interval_s=int(rate.group(1)) * _UNIT_S[rate.group(2).rstrip("s")])
        cron = _CRON.match(text)
        hours = _cron_hours(cron.group(1)) if cron else None
        if not hours:
            raise InvalidRequestError(
                f"schedule expression {text!r} is not supported; use cron(0 * ? * * *), "
                "cron(0 H ? * * *), cron(0 H/N ? * * *) (e.g. cron(0 0/6 ? * * *) for every 6 "
                "hours), rate(N hours) or NOW"
            )
        return cls(text, hours=hours)

    def latest_due(self, now: datetime, since: datetime) -> datetime | None:
        """The latest scheduled time in [since, now], or None."""
        if self.is_once:
            return since if since <= now else None
        if self.interval_s:
            periods = int((now - since).total_seconds() // self.interval_s)
            return since + timedelta(seconds=periods * self.interval_s) if periods >= 1 else None
        for days_back in (0, 1):
            day = (now - timedelta(days=days_back)).replace(minute=0, second=0, microsecond=0)
            for hour in sorted(self.hours, reverse=True):
                moment = day.replace(hour=hour)
                if moment <= now:
                    return moment if moment >= since else None
        return None


def _cron_hours(field_text: str) -> tuple[int, ...]:
    if field_text == "*":
        return tuple(range(24))
    start, _, step = field_text.partition("/")
    first, every = int(start), int(step or 24)
    if not 0 <= first <= 23 or not 1 <= every <= 24:
        return ()
    return tuple(range(first, 24, every))
