"""Warning levels, size bands, the alert book (dedup), the rules scorer and the routing tree."""
from __future__ import annotations

import re

import pytest

from alerts.dedup import alert_id, decide
from alerts.levels import band_rank, size_band
from alerts.routing import Router
from config.files import LevelsConfig, Matcher, RoutingConfig, load_configs
from config.settings import CONFIG_DIR
from models.features import FEATURE_NAMES
from models.scoring import RulesScorer

CONFIGS = load_configs(CONFIG_DIR)
EID = "91440306BXKFLJ2K06"


# --- levels ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "score, level",
    [
        (0.0, None), (0.1399, None), (0.14, "blue"), (0.1599, "blue"), (0.16, "yellow"),
        (0.5999, "yellow"), (0.60, "orange"), (0.7999, "orange"), (0.80, "red"), (1.0, "red"),
    ],
)
def test_level_for_boundaries(score, level):
    assert CONFIGS.levels.level_for(score) == level


def test_level_for_custom_thresholds():
    levels = LevelsConfig.model_validate({
        "config_version": 1,
        "thresholds": {"blue": 0.1, "yellow": 0.2, "orange": 0.3, "red": 0.4},
        "collective_incident": {"min_workers": 30, "level": "red"},
    })
    assert [levels.level_for(s) for s in (0.09, 0.1, 0.25, 0.3, 0.45)] == [None, "blue", "yellow", "orange", "red"]


@pytest.mark.parametrize(
    "workers, band",
    [
        (0, None), (29, None), (30, "30-50"), (50, "30-50"), (51, "51-200"), (200, "51-200"),
        (201, "201-500"), (500, "201-500"), (501, "501-1000"), (1000, "501-1000"), (1001, "1000+"),
        (25_000, "1000+"),
    ],
)
def test_size_band(workers, band):
    assert size_band(workers) == band


def test_band_rank_orders_bands():
    bands = [None, "30-50", "51-200", "201-500", "501-1000", "1000+"]
    assert [band_rank(b) for b in bands] == [-1, 0, 1, 2, 3, 4]


# --- dedup -----------------------------------------------------------------------------------
def _decide(book, level, signal_id, *, category="risk", band=None, score=0.5):
    return decide(
        book,
        enterprise_id=EID,
        category=category,
        level=level,
        score=score,
        reasons=[{"code": "x", "text": "x", "value": 1.0}],
        signal_id=signal_id,
        observed_at=f"2025-03-01T10:00:00+08:00#{signal_id}",
        model_version="rules-v1",
        size_band=band,
    )


def test_first_decision_raises():
    book: dict = {}
    change = _decide(book, "yellow", "sig-1")
    assert change is not None
    assert change.change == "raised"
    assert change.revision == 1
    assert change.level == "yellow"
    assert change.triggered_by == "sig-1"
    assert change.alert_id == alert_id(EID, "risk", "sig-1")
    assert re.fullmatch(r"AL-[0-9a-f]{16}", change.alert_id)
    assert change.opened_at == change.raised_at == "2025-03-01T10:00:00+08:00#sig-1"
    assert book["risk"]["level"] == "yellow"
    alert = change.to_alert()
    assert alert["status"] == "new"
    assert alert["category"] == "risk"
    assert "size_band" not in alert


def test_alert_id_is_deterministic():
    assert alert_id(EID, "risk", "sig-1") == alert_id(EID, "risk", "sig-1")
    assert alert_id(EID, "risk", "sig-1") != alert_id(EID, "risk", "sig-2")
    assert alert_id(EID, "risk", "sig-1") != alert_id(EID, "collective_incident", "sig-1")
    assert _decide({}, "red", "sig-9").alert_id == _decide({}, "red", "sig-9").alert_id


def test_same_or_lower_level_is_not_news_and_higher_escalates():
    book: dict = {}
    first = _decide(book, "orange", "sig-1")
    assert _decide(book, "orange", "sig-2") is None
    assert _decide(book, "blue", "sig-3") is None
    assert book["risk"]["level"] == "orange"
    assert book["risk"]["revision"] == 1
    up = _decide(book, "red", "sig-4")
    assert up is not None
    assert (up.change, up.revision, up.level) == ("escalated", 2, "red")
    assert up.alert_id == first.alert_id
    assert up.triggered_by == "sig-4"
    assert up.opened_at == first.opened_at
    assert _decide(book, "red", "sig-5") is None
    assert book["risk"]["revision"] == 2


def test_level_none_is_no_alert():
    book: dict = {}
    assert _decide(book, None, "sig-1") is None
    assert book == {}
    _decide(book, "blue", "sig-2")
    assert _decide(book, None, "sig-3") is None
    assert book["risk"]["level"] == "blue"


def test_collective_band_growth_escalates():
    book: dict = {}
    first = _decide(book, "red", "cmp-1", category="collective_incident", band="30-50", score=1.0)
    assert first.size_band == "30-50"
    assert first.to_alert()["size_band"] == "30-50"
    assert _decide(book, "red", "cmp-2", category="collective_incident", band="30-50", score=1.0) is None
    grown = _decide(book, "red", "cmp-3", category="collective_incident", band="201-500", score=1.0)
    assert grown is not None
    assert (grown.change, grown.revision, grown.size_band, grown.level) == ("escalated", 2, "201-500", "red")
    assert grown.alert_id == first.alert_id
    # A smaller report later does not shrink the band.
    assert _decide(book, "red", "cmp-4", category="collective_incident", band="51-200", score=1.0) is None
    assert book["collective_incident"]["size_band"] == "201-500"


def test_categories_are_separate_alerts():
    book: dict = {}
    risk = _decide(book, "red", "sig-1")
    collective = _decide(book, "red", "sig-1", category="collective_incident", band="51-200")
    assert risk.change == collective.change == "raised"
    assert risk.alert_id != collective.alert_id
    assert set(book) == {"risk", "collective_incident"}


# --- rules scorer ----------------------------------------------------------------------------
NEUTRAL = {name: 0.0 for name in FEATURE_NAMES} | {
    "electricity_ratio_7d_56d": 1.0,
    "electricity_ratio_28d_56d": 1.0,
    "water_ratio_7d_56d": 1.0,
    "water_ratio_28d_56d": 1.0,
    "electricity_metered": 1.0,
    "water_metered": 1.0,
    "calendar_days_to_festival": 120.0,
}
SCORER = RulesScorer(CONFIGS.rules)


def test_neutral_row_scores_zero():
    scored = SCORER.score_one(NEUTRAL)
    assert scored.score == 0.0
    assert scored.reasons == ()
    assert SCORER.version == "rules-v1"


def test_electricity_drop_reason_in_words():
    scored = SCORER.score_one(NEUTRAL | {"electricity_ratio_7d_56d": 0.22})
    assert scored.score == pytest.approx(0.30)
    assert scored.reasons == (
        {"code": "electricity_drop", "text": "electricity 78% below its own 8-week baseline", "value": 0.22},
    )
    assert CONFIGS.levels.level_for(scored.score) == "yellow"


def test_spring_festival_silences_electricity_rules():
    row = NEUTRAL | {"electricity_ratio_7d_56d": 0.05, "electricity_days_since_reading": 15.0,
                     "water_ratio_7d_56d": 0.1}
    loud = SCORER.score_one(row)
    assert [r["code"] for r in loud.reasons] == [
        "electricity_collapse", "electricity_drop", "electricity_silent", "water_drop",
    ]
    assert loud.score == pytest.approx(1 - 0.65 * 0.70 * 0.80 * 0.85)
    silenced = SCORER.score_one(row | {"calendar_shutdown": 1.0})
    assert silenced.score == 0.0
    assert silenced.reasons == ()


def test_shutdown_does_not_silence_wage_rules():
    scored = SCORER.score_one(NEUTRAL | {"calendar_shutdown": 1.0, "wage_days_overdue_max": 10.0})
    assert [r["code"] for r in scored.reasons] == ["wage_overdue"]
    assert scored.score == pytest.approx(0.40)


def test_reasons_sorted_by_weight_and_rendered():
    row = NEUTRAL | {
        "wage_days_overdue_max": 41.0,
        "findings_owner_absent_90d": 1.0,
        "electricity_ratio_7d_56d": 0.22,
        "headcount_change_3m": -0.3,
    }
    scored = SCORER.score_one(row)
    assert [(r["code"], r["text"]) for r in scored.reasons] == [
        ("owner_absent", "the employer was reported absent (a sign of absconding)"),
        ("wage_overdue_month", "wages overdue for more than a month (41 days)"),
        ("wage_overdue", "wages unpaid 41 days after the statutory pay day (5 days' grace allowed)"),
        ("electricity_drop", "electricity 78% below its own 8-week baseline"),
        ("headcount_fall", "headcount down 30% in three months"),
    ]
    assert scored.reasons[1]["value"] == 41.0
    expected = 1 - 0.25 * 0.45 * 0.60 * 0.70 * 0.80
    assert scored.score == pytest.approx(expected, abs=1e-6)
    assert CONFIGS.levels.level_for(scored.score) == "red"


def test_a_model_names_only_signs_an_inspector_can_check():
    """A fitted tree that learnt "headcount up at all" as risk: the score keeps it, but the alert
    does not say "headcount changed +1%"; it names the real sign beside it, and when there is
    none, the overall pattern."""
    from types import SimpleNamespace

    import numpy as np
    from sklearn.tree import DecisionTreeClassifier

    from models.features import NEUTRAL as RESTING
    from models.scoring import ModelScorer

    names = list(FEATURE_NAMES)
    head, power = names.index("headcount_change_3m"), names.index("electricity_ratio_28d_56d")
    X = np.tile([RESTING[n] for n in names], (400, 1))
    # four groups of 100: headcount up 1% or not, meters 40% down or not; half the firms of a
    # group with one of the two end in a dispute, all of those with both, none with neither
    X[:, head] = np.repeat([0.0, 0.01, 0.0, 0.01], 100)
    X[:, power] = np.repeat([1.0, 1.0, 0.6, 0.6], 100)
    y = np.concatenate([np.zeros(100), np.tile([0, 1], 50), np.tile([0, 1], 50), np.ones(100)]).astype(int)
    tree = DecisionTreeClassifier(random_state=0).fit(X, y)
    scorer = ModelScorer(tree, SimpleNamespace(version="m-test", levels=None, reference=None))
    row = dict(zip(names, X[0])) | {"headcount_change_3m": 0.01}
    up_only, up_and_dark = scorer.score([row, row | {"electricity_ratio_28d_56d": 0.6}])
    assert up_only.score == 0.5 and [r["code"] for r in up_only.reasons] == ["pattern"]
    assert up_and_dark.score == 1.0 and [r["code"] for r in up_and_dark.reasons] == ["electricity_ratio_28d_56d"]
    down = scorer.score([row | {"headcount_change_3m": -0.3, "electricity_ratio_28d_56d": 0.6}])[0]
    assert "headcount_change_3m" not in [r["code"] for r in down.reasons]  # a fall the tree never saw: no push


@pytest.mark.parametrize(
    "overdue, level",
    [(5.0, None), (6.0, "yellow"), (31.0, "orange"), (62.0, "red")],
)
def test_wage_overdue_levels_match_the_local_scheme(overdue, level):
    scored = SCORER.score_one(NEUTRAL | {"wage_days_overdue_max": overdue})
    assert CONFIGS.levels.level_for(scored.score) == level


def test_score_batch_matches_score_one():
    rows = [NEUTRAL, NEUTRAL | {"complaints_count_90d": 4.0}, NEUTRAL | {"wage_unpaid_share_past_grace": 0.5}]
    assert SCORER.score(rows) == [SCORER.score_one(r) for r in rows]
    assert SCORER.score(rows)[1].score == pytest.approx(1 - 0.7 * 0.7)
    assert SCORER.score(rows)[2].reasons[0]["text"] == (
        "50% of the last pay period's wages still unpaid after the 5 days' grace")


# --- routing ---------------------------------------------------------------------------------
SHIPPED = Router(CONFIGS.routing)


def _queues(router: Router, **labels: str) -> list[str]:
    return [d.queue for d in router.route(labels)]


@pytest.mark.parametrize(
    "category, level, street, district, queues",
    [
        ("risk", "blue", "xixiang", "baoan", ["street:xixiang"]),
        ("risk", "yellow", "xixiang", "baoan", ["street:xixiang"]),
        ("risk", "orange", "xixiang", "baoan", ["street:xixiang"]),
        ("risk", "red", "xixiang", "baoan", ["street:xixiang", "district:baoan-command"]),
        ("collective_incident", "red", "xixiang", "baoan", ["street:xixiang", "district:baoan-command"]),
        ("collective_incident", "yellow", "xixiang", "baoan", ["street:xixiang", "district:baoan-command"]),
        ("risk", "red", "yuehai", "nanshan", ["street:yuehai", "district:nanshan-command"]),
        ("risk", "yellow", "shajing", "baoan", ["street:shajing"]),
    ],
)
def test_shipped_routes(category, level, street, district, queues):
    assert _queues(SHIPPED, category=category, level=level, street=street, district=district) == queues


def test_shipped_routes_receivers_and_routed_alert():
    deliveries = SHIPPED.route({"category": "risk", "level": "red", "street": "xixiang", "district": "baoan"})
    assert [d.receiver for d in deliveries] == ["street-team", "district-command"]
    assert SHIPPED.receivers == ["street-team", "district-command"]
    alert = {"alert_id": "AL-1", "category": "risk", "level": "red",
             "labels": {"street": "xixiang", "district": "baoan", "level": "blue"}}
    routed = SHIPPED.routed(alert)
    assert routed["queue"] == "street:xixiang"
    assert routed["queues"] == [
        {"receiver": "street-team", "queue": "street:xixiang"},
        {"receiver": "district-command", "queue": "district:baoan-command"},
    ]
    assert routed["alert_id"] == "AL-1"
    assert "queue" not in alert  # not mutated


CUSTOM = Router(RoutingConfig.model_validate({
    "config_version": 1,
    "receivers": {
        "street-team": {"queue": "street:{street}"},
        "district-command": {"queue": "district:{district}-command"},
        "grid-team": {"queue": "grid:{grid}"},
        "factory-desk": {"queue": "district:{district}-factories"},
        "also-street": {"queue": "street:{street}"},
    },
    "route": {
        "receivers": ["street-team"],
        "routes": [
            {"name": "factories, and go on", "matchers": ["industry = manufacturing"],
             "receivers": ["factory-desk"], "continue": True},
            {"name": "serious outside nanshan", "matchers": ['level =~ "orange|red"', "district != nanshan"],
             "receivers": ["district-command"]},
            {"name": "grid teams outside the xi streets", "matchers": ["street !~ xi.*", "category=risk"],
             "receivers": ["grid-team", "also-street", "street-team"]},
        ],
    },
}))


@pytest.mark.parametrize(
    "labels, queues",
    [
        # continue: the factory desk and then the next matching route
        (dict(industry="manufacturing", level="red", district="baoan", street="xixiang", grid="g1"),
         ["district:baoan-factories", "district:baoan-command"]),
        # continue with nothing after it: only the factory desk, not the default
        (dict(industry="manufacturing", level="blue", district="baoan", street="xixiang", grid="g1"),
         ["district:baoan-factories"]),
        # != excludes nanshan; !~ then sends it to the grid (two receivers, one street queue)
        (dict(industry="retail", level="red", district="nanshan", street="yuehai", grid="yh-3"),
         ["grid:yh-3", "street:yuehai"]),
        # =~ is anchored: "orange|red" matches orange
        (dict(industry="retail", level="orange", district="baoan", street="yuehai", grid="g2"),
         ["district:baoan-command"]),
        # nothing matches: the default receivers
        (dict(industry="retail", level="yellow", district="baoan", street="xixiang", grid="g2"),
         ["street:xixiang"]),
        # a missing label is the empty string: "" != nanshan and "" !~ xi.*
        (dict(level="red", street="xixiang"), ["district:-command"]),
        (dict(category="collective_incident", level="yellow", district="baoan", street="yuehai"),
         ["street:yuehai"]),
    ],
)
def test_custom_routes(labels, queues):
    labels.setdefault("category", "risk")
    assert _queues(CUSTOM, **labels) == queues


def test_custom_route_continue_flag_parsed():
    routes = CUSTOM.config.route.routes
    assert [r.continue_ for r in routes] == [True, False, False]


@pytest.mark.parametrize(
    "text, labels, hit",
    [
        ("level = red", {"level": "red"}, True),
        ("level=red", {"level": "reddish"}, False),
        ('street =~ "xi"', {"street": "xixiang"}, False),  # full match, like Alertmanager
        ("street =~ xi.*", {"street": "xixiang"}, True),
        ("street !~ xi.*", {"street": "xixiang"}, False),
        ("district != nanshan", {}, True),
        ("grid = ", {}, True),
    ],
)
def test_matcher(text, labels, hit):
    assert Matcher.parse(text).matches(labels) is hit


@pytest.mark.parametrize("text", ["colour = red", "level", "Level = red", "street =~ (xi"])
def test_matcher_parse_rejects(text):
    with pytest.raises(ValueError):
        Matcher.parse(text)
