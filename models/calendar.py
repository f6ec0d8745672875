"""Calendar facts the features need: the Spring Festival and China Standard Time."""
from __future__ import annotations

from datetime import date, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8))

# Chinese New Year (the first day of the Spring Festival), from the lunisolar calendar, for the
# years a history file can hold (validation refuses dates more than 20 years from now). Outside
# the table there is no shutdown and the festival is "366 days away", so worlds there lose the
# feature: extend it rather than let that happen.
SPRING_FESTIVAL = {
    2000: date(2000, 2, 5), 2001: date(2001, 1, 24), 2002: date(2002, 2, 12), 2003: date(2003, 2, 1),
    2004: date(2004, 1, 22), 2005: date(2005, 2, 9), 2006: date(2006, 1, 29), 2007: date(2007, 2, 18),
    2008: date(2008, 2, 7), 2009: date(2009, 1, 26), 2010: date(2010, 2, 14), 2011: date(2011, 2, 3),
    2012: date(2012, 1, 23), 2013: date(2013, 2, 10), 2014: date(2014, 1, 31), 2015: date(2015, 2, 19),
    2016: date(2016, 2, 8), 2017: date(2017, 1, 28), 2018: date(2018, 2, 16), 2019: date(2019, 2, 5),
    2020: date(2020, 1, 25), 2021: date(2021, 2, 12), 2022: date(2022, 2, 1), 2023: date(2023, 1, 22),
    2024: date(2024, 2, 10), 2025: date(2025, 1, 29), 2026: date(2026, 2, 17), 2027: date(2027, 2, 6),
    2028: date(2028, 1, 26), 2029: date(2029, 2, 13), 2030: date(2030, 2, 3), 2031: date(2031, 1, 23),
    2032: date(2032, 2, 11), 2033: date(2033, 1, 31), 2034: date(2034, 2, 19), 2035: date(2035, 2, 8),
    2036: date(2036, 1, 28), 2037: date(2037, 2, 15), 2038: date(2038, 2, 4), 2039: date(2039, 1, 24),
    2040: date(2040, 2, 12), 2041: date(2041, 2, 1), 2042: date(2042, 1, 22), 2043: date(2043, 2, 10),
    2044: date(2044, 1, 30), 2045: date(2045, 2, 17), 2046: date(2046, 2, 6), 2047: date(2047, 1, 26),
    2048: date(2048, 2, 14), 2049: date(2049, 2, 2), 2050: date(2050, 1, 23),
}

# Factories close for two to three weeks: workers travel home about a week before New Year's
# day and come back two or three weeks after it. Near-zero meters in this window are normal.
SHUTDOWN_BEFORE_DAYS = 7
SHUTDOWN_AFTER_DAYS = 21

_SHUTDOWN_DAYS: frozenset[int] = frozenset(
    d.toordinal() + offset
    for d in SPRING_FESTIVAL.values()
    for offset in range(-SHUTDOWN_BEFORE_DAYS, SHUTDOWN_AFTER_DAYS + 1)
)


def in_shutdown(day_ordinal: int) -> bool:
    """True on days of the Spring Festival shutdown (day as a proleptic ordinal)."""
    return day_ordinal in _SHUTDOWN_DAYS


def days_to_next_festival(day: date) -> int:
    """Days from ``day`` to the next New Year's day (0 on the day); 366 past the table's end."""
    upcoming = [d for d in SPRING_FESTIVAL.values() if d >= day]
    return (min(upcoming) - day).days if upcoming else 366
