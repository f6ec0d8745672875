"""The paired bootstrap of `laborwatch models compare`: a real difference is called, none is not."""
from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import numpy as np

from models.compare import paired_bootstrap
from models.evaluate import outside_window, too_early, warning_details, warning_figures, warnings_by_enterprise

DISPUTE_DAY = date(2025, 6, 30)


def _world(n: int = 40, disputed: int = 10, weeks: int = 10):
    ents = [f"E{i:03d}" for i in range(n)]
    ids = np.array([e for e in ents for _ in range(weeks)])
    y = np.array([int(e in ents[:disputed]) for e in ids])
    disputes = {e: [DISPUTE_DAY.toordinal()] for e in ents[:disputed]}
    window = dict(first_day=(DISPUTE_DAY - timedelta(weeks=weeks)).toordinal(), last_day=DISPUTE_DAY.toordinal() + 7)
    return SimpleNamespace(enterprise_ids=ids, **window), y, np.ones(len(y), bool), disputes, set(ents), ents


def _yellow(enterprise: str, day: date) -> dict:
    return {"enterprise_id": enterprise, "category": "risk", "level": "yellow",
            "raised_at": f"{day.isoformat()}T09:00:00+08:00"}


def test_a_scorer_better_on_every_figure_is_called_better_on_each():
    snaps, y, mask, disputes, known, ents = _world()
    rng = np.random.default_rng(1)
    scores = {"candidate": y + 0.01 * rng.random(len(y)), "baseline": rng.random(len(y))}
    alerts = {
        # the candidate warns every dispute 30 days ahead and no calm firm; the baseline warns
        # the disputes 3 days ahead (too late) and sends every calm firm to yellow
        "candidate": [_yellow(e, DISPUTE_DAY - timedelta(days=30)) for e in disputes],
        "baseline": [_yellow(e, DISPUTE_DAY - timedelta(days=3)) for e in disputes]
        + [_yellow(e, DISPUTE_DAY) for e in ents if e not in disputes],
    }
    draws = paired_bootstrap(snaps, y, mask, scores, alerts, disputes, known, repeats=200, seed=0)
    assert len(draws["pr_auc"]) == 200 and np.percentile(draws["pr_auc"], 2.5) > 0.3
    assert len(draws["pr_auc_ratio"]) == 200 and draws["pr_auc_ratio"].min() > 1.5
    assert set(draws["warned_14d_share"]) == {1.0}
    assert set(draws["false_alarm_share"]) == {-1.0}


def test_the_same_scorer_twice_differs_by_nothing_and_draws_repeat_with_the_seed():
    snaps, y, mask, disputes, known, ents = _world()
    p = np.random.default_rng(2).random(len(y))
    same = [_yellow(e, DISPUTE_DAY - timedelta(days=20)) for e in ents[::3]]
    args = (snaps, y, mask, {"candidate": p, "baseline": p.copy()}, {"candidate": same, "baseline": list(same)},
            disputes, known)
    draws = paired_bootstrap(*args, repeats=100, seed=5)
    ratios = draws.pop("pr_auc_ratio")
    assert all(set(values) == {0.0} for values in draws.values()) and set(ratios) == {1.0}
    # with different scorers, the same seed gives the same draws
    other = {"candidate": p, "baseline": np.random.default_rng(3).random(len(y))}
    first = paired_bootstrap(snaps, y, mask, other, args[4], disputes, known, repeats=50, seed=5)
    again = paired_bootstrap(snaps, y, mask, other, args[4], disputes, known, repeats=50, seed=5)
    assert np.array_equal(first["pr_auc"], again["pr_auc"]) and np.ptp(first["pr_auc"]) > 0


def test_disputes_outside_the_data_are_not_the_scorers_to_warn_of():
    """A register of disputes covering years against a few months of signals: only each
    enterprise's first dispute within the data's days is one to warn of, and a firm with a
    dispute at any time is still no no-dispute firm."""
    first, last = date(2025, 4, 1), date(2025, 6, 30)
    day = lambda d: d.toordinal()  # noqa: E731
    disputes = {
        "A": [day(date(2024, 11, 5)), day(date(2025, 6, 1))],  # one before the data, one inside
        "B": [day(date(2025, 9, 1))],  # after the data ends
        "C": [day(date(2025, 5, 20))],  # inside, never warned
    }
    alerts = [_yellow("A", date(2025, 5, 12)), _yellow("D", date(2025, 5, 1))]
    known = {"A", "B", "C", "D"}
    per = warnings_by_enterprise(alerts, disputes, known, (day(first), day(last)))
    assert per.leads == {"A": 20, "C": None} and per.calm == {"D"} and per.alarmed == {"D"}
    figures = warning_figures(alerts, disputes, known, (day(first), day(last)))
    assert (figures["disputes"], figures["warned_14d_share"], figures["false_alarm_share"]) == (2, 0.5, 1.0)
    assert outside_window(disputes, known, (day(first), day(last))) == 2


def test_a_dispute_in_the_datas_first_14_days_is_no_scorers_to_warn_of():
    """A feed switched on while a firm is in trouble: a dispute 13 days after the first signal
    cannot be warned 14 days ahead by anyone, so it is counted apart (too_early) and not in the
    warned share; 14 days after, it can, and counts."""
    first, last = date(2025, 4, 1), date(2025, 6, 30)
    window = (first.toordinal(), last.toordinal())
    disputes = {"A": [date(2025, 4, 14).toordinal()], "B": [date(2025, 4, 15).toordinal()]}
    alerts = [_yellow("A", date(2025, 4, 1)), _yellow("B", date(2025, 4, 1))]
    per = warnings_by_enterprise(alerts, disputes, {"A", "B"}, window)
    assert per.leads == {"B": 14} and per.calm == set()
    assert warning_figures(alerts, disputes, {"A", "B"}, window)["warned_14d_share"] == 1.0
    assert too_early(disputes, {"A", "B"}, window) == 1 and outside_window(disputes, {"A", "B"}, window) == 0


def test_the_details_list_each_dispute_misses_first_and_each_alarmed_no_dispute_firm():
    window = (date(2025, 4, 1).toordinal(), date(2025, 6, 30).toordinal())
    disputes = {"A": [date(2025, 6, 1).toordinal()], "B": [date(2025, 6, 10).toordinal()],
                "C": [date(2025, 5, 20).toordinal()], "Z": [date(2025, 12, 1).toordinal()]}
    alerts = [dict(_yellow("A", date(2025, 5, 2)), reasons=[{"text": "wages unpaid 30 days"}, {"text": "x"}]),
              dict(_yellow("B", date(2025, 6, 1)), reasons=[{"text": "electricity down 80%"}]),
              dict(_yellow("A", date(2025, 5, 20)), level="orange", reasons=[{"text": "later"}]),
              dict(_yellow("D", date(2025, 5, 1)), reasons=[{"text": "2 days late"}])]
    registry = {e: {"street": f"s-{e.lower()}"} for e in "ABCD"}
    truth = {"A": {"scenario": "decline"}, "D": {"scenario": "healthy"}}
    got = warning_details(warnings_by_enterprise(alerts, disputes, {"A", "B", "C", "D", "Z"}, window), registry, truth)
    rows = [(r["enterprise_id"], r["lead_days"], r["warned_14d"], r["first_reason"]) for r in got["dispute_warnings"]]
    assert rows == [("C", None, False, None), ("B", 9, False, "electricity down 80%"),
                    ("A", 30, True, "wages unpaid 30 days")]
    assert got["dispute_warnings"][2]["street"] == "s-a" and got["dispute_warnings"][2]["scenario"] == "decline"
    assert got["dispute_warnings"][2]["first_yellow_on"] == "2025-05-02"
    assert got["no_dispute_alarms"] == [{"enterprise_id": "D", "street": "s-d", "first_yellow_on": "2025-05-01",
                                         "first_reason": "2 days late", "scenario": "healthy"}]


def test_permutation_importance_names_the_feature_the_model_reads(monkeypatch):
    """Only one feature decides the labels: shuffling it costs the average precision, shuffling
    any other costs nothing; the bar moves once per feature, and a large sample is measured on a
    draw of PERMUTATION_ROWS rows."""
    from sklearn.linear_model import LogisticRegression

    from models import evaluate
    from models.features import FEATURE_NAMES

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, len(FEATURE_NAMES)))
    key = FEATURE_NAMES.index("wage_days_overdue_max")
    y = (X[:, key] + 0.3 * rng.normal(size=3000) > 1.0).astype(int)
    fitted = LogisticRegression().fit(X, y)
    seen_rows = set()

    class Model:
        def predict_proba(self, rows):
            seen_rows.add(len(rows))
            return fitted.predict_proba(rows)

    model = Model()
    steps = []

    class Recorder(evaluate.Progress):
        def step(self, description, total):
            steps.append([description, total, 0])
            return lambda n=1: steps[-1].__setitem__(2, steps[-1][2] + n)

    monkeypatch.setattr(evaluate, "PERMUTATION_ROWS", 1000)
    found = evaluate.permutation(model, X, y, repeats=3, seed=0, progress=Recorder())
    assert next(iter(found)) == "wage_days_overdue_max" and found["wage_days_overdue_max"]["mean"] > 0.3
    assert all(abs(v["mean"]) < 0.05 for name, v in found.items() if name != "wage_days_overdue_max")
    assert steps == [["permutation feature importance", len(FEATURE_NAMES), len(FEATURE_NAMES)]]
    assert seen_rows == {1000}
