"""A clock the tests set: the store reads the time only through ``Settings.clock``."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


class Clock:
    """Stands still at one moment until a test moves it (``at``, ``advance``)."""

    def __init__(self, tz: str = "Asia/Kolkata", hhmm: str = "08:00"):
        self.tz = ZoneInfo(tz)
        self.moment = datetime.now(self.tz)
        self.at(hhmm)

    def __call__(self) -> float:
        return self.moment.timestamp()

    def at(self, hhmm: str, days: int = 0) -> datetime:
        """Set the time of day (local), on today or ``days`` later; the new moment."""
        hour, minute = (int(x) for x in hhmm.split(":"))
        day = self.moment.date() + timedelta(days=days)
        self.moment = datetime.combine(day, time(hour, minute), self.tz)
        return self.moment

    def advance(self, seconds: float) -> datetime:
        """Move on by ``seconds``; the new moment."""
        self.moment += timedelta(seconds=seconds)
        return self.moment
