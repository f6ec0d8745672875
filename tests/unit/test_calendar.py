"""The Spring Festival table: every year a history file can hold, with no typo in it."""
from datetime import date

from models.calendar import SPRING_FESTIVAL, days_to_next_festival, in_shutdown


def test_table_covers_every_year_validation_accepts_today():
    """Validation accepts dates up to 20 years from now (contract: "a date decades away"); a world
    dated in a year missing here would have no shutdown, and its festival would look like
    distress. The range is checked against a fixed day so that the test does not age."""
    years = sorted(SPRING_FESTIVAL)
    assert years == list(range(years[0], years[-1] + 1))
    assert years[0] <= 2006 and years[-1] >= 2046  # 2026 ± 20: extend the table as the years pass


def test_every_new_year_is_a_lunar_year_after_the_last():
    """New Year falls between 21 January and 20 February, and a lunar year is 12 months (353-355
    days) or 13 (383-385): a mistyped day or month breaks one of the two."""
    dates = [SPRING_FESTIVAL[y] for y in sorted(SPRING_FESTIVAL)]
    for year, day in SPRING_FESTIVAL.items():
        assert day.year == year and date(year, 1, 21) <= day <= date(year, 2, 20), day
    for before, after in zip(dates, dates[1:]):
        assert (after - before).days in {353, 354, 355, 383, 384, 385}, (before, after)


def test_a_2013_world_has_its_shutdown():
    """The China Labour Bulletin years (2013-2016) are in the table: a week before New Year's day
    and three weeks after are the shutdown."""
    new_year = date(2013, 2, 10)
    assert in_shutdown(new_year.toordinal() - 7) and in_shutdown(new_year.toordinal() + 21)
    assert not in_shutdown(new_year.toordinal() - 8) and not in_shutdown(new_year.toordinal() + 22)
    assert days_to_next_festival(date(2013, 1, 1)) == 40
