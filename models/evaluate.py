"""Evaluation of a scorer against the rules, as inspectors would live with it.

Both scorers run inside the pipeline over the same files (``streams.backtest.Replay``, the very
code of the stream and ``backtest``), so the alert levels and their dates are the ones the stream
would raise. One replay serves both: the second scorer is the pipeline's shadow
(``streams.pipeline.Shadow``), deciding its alerts on the same feature rows. On the way, weekly
point-in-time snapshots (Mondays 00:00 China time) are read and scored by both, with labels "a
dispute within the model's horizon".

Figures, for the model and the rules side by side:

* ranking on weekly snapshots: ROC-AUC, PR-AUC (average precision), Brier score; precision and
  recall at the top k per week and street, k the street's weekly inspection capacity
  (``config/evaluation.yaml``), among the enterprises still worth a warning (``Snapshots.labels``);
* warning: for each enterprise's first dispute, the lead time from its first yellow-or-higher
  risk alert (negative or none: not warned), its distribution and median, and the share of
  disputes warned at least 14 days ahead;
* false alarms: the share of enterprises with no dispute in the data that reach yellow or higher;
  of those reaching orange or red, the share with a dispute within 120 days of the first orange+
  alert (before or after it; enterprises whose 120 days run past the data with no dispute yet are
  left out, their outcome is unknown); orange/red alerts raised during the Spring Festival
  shutdown on enterprises with no dispute.

Collective-incident alerts (30+ workers acting together) are left out of these figures: they are
raised by the incident itself, not by a scorer. When a ``truth.json`` (the simulator's) lies
beside the disputes file, the false-alarm figures are also given for its "healthy" enterprises,
and ``onset_oracle`` says how high a PR-AUC (and a ratio over the rules) any scorer could reach
if nothing is visible before each trouble's onset (``onset_oracle``'s docstring).
"""
from __future__ import annotations

import base64
import html
import io
import json
import statistics
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from alerts.levels import LEVEL_RANK
from config.files import Configs, Thresholds, load_yaml
from models.calendar import CHINA_TZ, in_shutdown
from models.features import FEATURE_NAMES
from models.scoring import Scorer
from models.snapshots import SILENT, Progress, Snapshots, read_disputes, replay_with_snapshots
from models.train import metrics as ranking_metrics
from streams.backtest import Replay

WARNED_DAYS = 14
ORANGE_WINDOW_DAYS = 120
SCORE_CHUNK = 5000


# --- config/evaluation.yaml ----------------------------------------------------------------------
class Capacity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    default: int = Field(ge=0)
    streets: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)

    def for_street(self, street: str) -> int:
        return self.streets.get(street, self.default)


class EvaluationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    config_version: Literal[1]
    capacity_per_week: Capacity


def load_evaluation_config(path: Path) -> EvaluationConfig:
    """The evaluation config; a bad one raises ``config.files.ConfigError`` naming file and key."""
    return load_yaml(path, EvaluationConfig)


# --- the figures ---------------------------------------------------------------------------------
def _day(iso: str) -> int:
    return datetime.fromisoformat(iso).astimezone(CHINA_TZ).date().toordinal()


def first_alerts(alerts: Sequence[dict], rank: int) -> dict[str, dict]:
    """enterprise -> its first risk alert event at ``rank`` or higher (by local day; the earlier
    event on a tie)."""
    first: dict[str, tuple[int, dict]] = {}
    for alert in alerts:
        if alert["category"] == "risk" and LEVEL_RANK[alert["level"]] >= rank:
            day = _day(alert["raised_at"])
            if alert["enterprise_id"] not in first or day < first[alert["enterprise_id"]][0]:
                first[alert["enterprise_id"]] = (day, alert)
    return {eid: alert for eid, (_, alert) in first.items()}


def first_alert_days(alerts: Sequence[dict], rank: int) -> dict[str, int]:
    """enterprise -> local day of its first risk alert event at ``rank`` or higher."""
    return {eid: _day(alert["raised_at"]) for eid, alert in first_alerts(alerts, rank).items()}


def top_k(snaps: Snapshots, scores: np.ndarray, y: np.ndarray, mask: np.ndarray, capacity: Capacity) -> dict:
    """Precision and recall at the top k, every week and in every street (k its capacity)."""
    hits_total = chosen_total = 0
    weeks = []
    for day in np.unique(snaps.as_of[mask]):
        week = mask & (snaps.as_of == day)
        hits = chosen = 0
        for street in np.unique(snaps.streets[week]):
            rows = np.flatnonzero(week & (snaps.streets == street))
            k = capacity.for_street(str(street))
            # Highest score first; ties in registry order of the id, so the result is repeatable.
            order = sorted(rows, key=lambda i: (-scores[i], snaps.enterprise_ids[i]))[:k]
            hits += int(y[order].sum())
            chosen += len(order)
        positives = int(y[week].sum())
        weeks.append({"as_of": date.fromordinal(int(day)).isoformat(), "visited": chosen, "hits": hits,
                      "positives": positives, "precision": hits / chosen if chosen else None,
                      "recall": hits / positives if positives else None})
        hits_total += hits
        chosen_total += chosen
    positives_total = int(y[mask].sum())
    return {
        "precision_at_k": hits_total / chosen_total if chosen_total else None,
        "recall_at_k": hits_total / positives_total if positives_total else None,
        "visits": chosen_total,
        "weeks": weeks,
    }


@dataclass
class Warnings:
    """Per enterprise: how its first dispute was warned, and whether a calm one was alarmed."""
    leads: dict[str, int | None]  # enterprise with a dispute -> days from its first yellow+ alert to
    #                               its first dispute (None: no yellow+ by that day), sorted by id
    calm: set[str]  # the enterprises with no dispute
    first_yellow: dict[str, dict]  # enterprise that reached yellow or higher -> that first alert event
    disputes: dict[str, int]  # enterprise -> the day of its first dispute within the data

    @property
    def yellow(self) -> set[str]:
        """The enterprises that reached yellow or higher."""
        return set(self.first_yellow)

    @property
    def alarmed(self) -> set[str]:
        """The calm enterprises that reached yellow or higher: false alarms."""
        return self.calm & self.yellow

    @property
    def warned_14d(self) -> set[str]:
        return {eid for eid, lead in self.leads.items() if lead is not None and lead >= WARNED_DAYS}


def warnings_by_enterprise(alerts: Sequence[dict], disputes: dict[str, list[int]], enterprises: set[str],
                           window: tuple[int, int]) -> Warnings:
    """The warned and false-alarm figures per enterprise (``warning_figures`` totals them, the
    paired bootstrap of ``models.compare`` redraws them).

    A dispute to warn of is an enterprise's first within ``window`` (the first and last day of
    the signals replayed) and at least ``WARNED_DAYS`` after its first day: one before the data
    begins or after it ends was never the scorer's to warn of, as when a register of disputes
    covering years meets a few months of signals, and one in the data's first 14 days could not
    be warned 14 days ahead by any scorer (``too_early``), as when a feed is switched on while
    firms are in trouble. An enterprise with a dispute at any time is not a no-dispute enterprise."""
    first = first_alerts(alerts, LEVEL_RANK["yellow"])
    first_dispute = {eid: inside[0] for eid, days in disputes.items() if eid in enterprises
                     and (inside := [d for d in days if window[0] + WARNED_DAYS <= d <= window[1]])}
    leads: dict[str, int | None] = {}
    for eid, day in sorted(first_dispute.items()):
        alert = _day(first[eid]["raised_at"]) if eid in first else None
        leads[eid] = day - alert if alert is not None and alert <= day else None
    return Warnings(leads, enterprises - set(disputes), first, first_dispute)


def outside_window(disputes: dict[str, list[int]], enterprises: set[str], window: tuple[int, int]) -> int:
    """How many disputes of these enterprises fall before the data's first day or after its last."""
    return sum(not window[0] <= d <= window[1] for eid, days in disputes.items() if eid in enterprises for d in days)


def too_early(disputes: dict[str, list[int]], enterprises: set[str], window: tuple[int, int]) -> int:
    """How many disputes of these enterprises fall in the data's first ``WARNED_DAYS`` days: no
    scorer can warn of them 14 days ahead, so they are not disputes to warn of."""
    return sum(window[0] <= d < window[0] + WARNED_DAYS
               for eid, days in disputes.items() if eid in enterprises for d in days)


def warning_figures(alerts: Sequence[dict], disputes: dict[str, list[int]], enterprises: set[str],
                    window: tuple[int, int], healthy: set[str] | None = None, per: Warnings | None = None) -> dict:
    """The alert-level figures of one scorer over the data's ``window`` (its first and last day);
    ``per``: ``warnings_by_enterprise`` of the same, when the caller has it already."""
    last_day = window[1]
    orange = first_alert_days(alerts, LEVEL_RANK["orange"])
    if per is None:
        per = warnings_by_enterprise(alerts, disputes, enterprises, window)
    leads, calm = per.leads, per.calm
    warned = [lead for lead in leads.values() if lead is not None]
    n = len(leads)

    orange_known = {}
    for eid, day in orange.items():
        near = any(abs(d - day) <= ORANGE_WINDOW_DAYS for d in disputes.get(eid, ()))
        if near or day + ORANGE_WINDOW_DAYS <= last_day:
            orange_known[eid] = near
    shutdown = [
        a for a in alerts
        if a["category"] == "risk" and LEVEL_RANK[a["level"]] >= LEVEL_RANK["orange"]
        and a["enterprise_id"] in calm and in_shutdown(_day(a["raised_at"]))
    ]
    out = {
        "disputes": n,
        "lead_days": [leads[e] for e in sorted(leads)],
        "lead_days_median": statistics.median(warned) if warned else None,
        "lead_days_median_all": statistics.median([lead or 0 for lead in leads.values()]) if n else None,
        "warned_share": len(warned) / n if n else None,
        "warned_14d_share": len(per.warned_14d) / n if n else None,
        "no_dispute_enterprises": len(calm),
        "false_alarm_share": len(per.alarmed) / len(calm) if calm else None,
        "orange_red_enterprises": len(orange),
        "orange_red_outcome_known": len(orange_known),
        "orange_red_dispute_120d_share": (sum(orange_known.values()) / len(orange_known)) if orange_known else None,
        "shutdown_orange_red_no_dispute": len(shutdown),
        "shutdown_orange_red_no_dispute_enterprises": len({a["enterprise_id"] for a in shutdown}),
        "alert_events": sum(a["category"] == "risk" for a in alerts),
    }
    if healthy is not None:
        healthy = healthy & enterprises
        out["healthy_enterprises"] = len(healthy)
        out["healthy_false_alarm_share"] = len(healthy & per.yellow) / len(healthy) if healthy else None
        out["healthy_orange_red"] = len(healthy & set(orange))
        out["healthy_shutdown_orange_red"] = sum(a["enterprise_id"] in healthy for a in shutdown)
    return out


def _scores(scorer: Scorer, snaps: Snapshots, progress: Progress, name: str) -> np.ndarray:
    estimator = getattr(scorer, "estimator", None)
    advance = progress.step(f"scoring weekly snapshots ({name})", len(snaps))
    out = np.empty(len(snaps))
    for start in range(0, len(snaps), SCORE_CHUNK):
        stop = min(start + SCORE_CHUNK, len(snaps))
        if estimator is not None:  # what ModelScorer.score returns, without the reasons
            out[start:stop] = np.round(estimator.predict_proba(snaps.X[start:stop])[:, 1], 6)
        else:
            out[start:stop] = [s.score for s in scorer.score(snaps.rows(np.arange(start, stop)))]
        advance(stop - start)
    return out


def _read_truth(disputes_path: Path) -> dict[str, dict] | None:
    """The simulator's ``truth.json`` beside the disputes file (enterprise -> scenario, onset,
    dispute), or None: real data has no such file."""
    try:
        truth = json.loads((disputes_path.parent / "truth.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(truth, dict) or not all(isinstance(t, dict) for t in truth.values()):
        return None
    return truth


def _truth_healthy(truth: dict[str, dict] | None) -> set[str] | None:
    return None if truth is None else {eid for eid, t in truth.items() if t.get("scenario") == "healthy"}


def onset_oracle(snaps: Snapshots, y: np.ndarray, mask: np.ndarray, truth: dict[str, dict],
                 repeats: int = 20, seed: int = 0) -> dict | None:
    """How high a PR-AUC any scorer can reach when nothing tells a firm in trouble from a healthy
    one before its trouble begins (``truth.json``'s ``onset``: an absconding owner's first missed
    pay day, the first signs of a decline, the first wages held back on a site).

    The oracle knows the labels and the onsets: every labelled row dated after its enterprise's
    onset ranks above every other row, and the rest (the negatives, and the positive rows from
    before the onset, which no signal can yet set apart) come in a random order; its PR-AUC is
    the mean over ``repeats`` orders. It is an upper bound, not a target: a decline's first weeks
    after its onset are barely visible either."""
    from sklearn.metrics import average_precision_score

    yt = y[mask]
    if not 0 < yt.sum() < len(yt):
        return None
    onsets = {eid: date.fromisoformat(t["onset"]).toordinal() for eid, t in truth.items()
              if isinstance(t.get("onset"), str)}
    visible = np.array([bool(y[i]) and snaps.as_of[i] > onsets.get(str(snaps.enterprise_ids[i]), 10**9)
                        for i in range(len(y))])[mask]
    rng = np.random.default_rng(seed)
    ap = [float(average_precision_score(yt, np.where(visible, 2.0, rng.random(len(yt))))) for _ in range(repeats)]
    return {"pr_auc": statistics.fmean(ap), "positives_after_onset_share": float(visible.sum() / yt.sum())}


@dataclass(frozen=True)
class Run:
    """What one scorer raised over the replay."""
    version: str
    thresholds: Thresholds  # the levels its alerts were raised by
    alerts: list[dict]  # unrouted alert events, in order


@dataclass
class Replayed:
    """Two scorers through the pipeline over the same files, in one replay."""
    found: dict[str, list[int]]  # the disputes
    snaps: Snapshots  # the weekly snapshots (features do not depend on the scorer)
    replay: Replay  # the first scorer's replay: the signals' account, the registry, the records
    runs: tuple[Run, Run]  # each scorer's alerts
    y: np.ndarray
    mask: np.ndarray
    scores: tuple[np.ndarray, np.ndarray]  # each scorer's scores of the snapshots

    @property
    def known(self) -> set[str]:
        """The enterprises with any accepted signal."""
        return set(self.replay.records)

    def data(self) -> dict:
        """What the files gave, for ``metrics.json`` and ``comparison.json`` alike: enterprises,
        disputes (and those outside the data or too early to warn of), the data's days, the
        snapshot rows."""
        found, known, snaps = self.found, self.known, self.snaps
        window = (snaps.first_day, snaps.last_day)
        return {
            "enterprises": len(known), "disputes": sum(len(v) for k, v in found.items() if k in known),
            "disputes_outside_data": outside_window(found, known, window),
            "disputes_too_early_to_warn": too_early(found, known, window),
            "first_day": date.fromordinal(snaps.first_day).isoformat(),
            "last_day": date.fromordinal(snaps.last_day).isoformat(),
            "snapshot_rows": int(self.mask.sum()), "snapshot_positives": int(self.y[self.mask].sum()),
        }


def replay_both(first: Scorer, second: Scorer, enterprises: Path, signals: Path, disputes: Path,
                configs: Configs, horizon: int, progress: Progress) -> Replayed:
    found = read_disputes(disputes)
    snaps, replay = replay_with_snapshots(enterprises, signals, configs=configs, scorer=first, shadows=[second],
                                          progress=_Prefixed(progress, f"{first.version} and {second.version}"))
    (shadow,) = replay.pipeline.shadows
    runs = (Run(first.version, replay.pipeline.thresholds, replay.alerts),
            Run(second.version, shadow.thresholds, shadow.alerts))
    y, mask = snaps.labels(found, horizon)
    return Replayed(found, snaps, replay, runs, y, mask,
                    (_scores(first, snaps, progress, first.version), _scores(second, snaps, progress, second.version)))


def scorer_figures(run: Run, scores: np.ndarray, snaps: Snapshots, y: np.ndarray, mask: np.ndarray,
                   found: dict[str, list[int]], known: set[str], capacity: Capacity,
                   registry: dict[str, dict], truth: dict[str, dict] | None) -> dict:
    """One scorer's figures: ranking on the weekly snapshots, top k, and the warnings its alerts
    (``run``) gave, totalled and enterprise by enterprise."""
    window = (snaps.first_day, snaps.last_day)
    figures = {"version": run.version, "thresholds": run.thresholds.model_dump(),
               **ranking_metrics(y[mask], scores[mask])}
    figures.update(top_k(snaps, scores, y, mask, capacity))
    per = warnings_by_enterprise(run.alerts, found, known, window)
    figures.update(warning_figures(run.alerts, found, known, window, _truth_healthy(truth), per))
    figures.update(warning_details(per, registry, truth))
    return figures


def warning_details(per: Warnings, registry: dict[str, dict], truth: dict[str, dict] | None) -> dict:
    """Enterprise by enterprise, what the totals of ``warning_figures`` are made of: each dispute
    to warn of (misses first: never warned, then the shortest leads) and each no-dispute
    enterprise sent to yellow+, with the street, the first yellow-or-higher alert's day and its
    first reason, and the simulator's scenario when a truth.json says it. What an analyst reads
    to see why a dispute was missed or a healthy firm flagged."""
    def row(eid: str) -> dict:
        alert = per.first_yellow.get(eid)
        out = {"enterprise_id": eid, "street": str((registry.get(eid) or {}).get("street", "")),
               "first_yellow_on": date.fromordinal(_day(alert["raised_at"])).isoformat() if alert else None,
               "first_reason": alert["reasons"][0]["text"] if alert and alert.get("reasons") else None}
        if truth is not None:
            out["scenario"] = (truth.get(eid) or {}).get("scenario")
        return out

    rows = [{**row(eid), "dispute_on": date.fromordinal(per.disputes[eid]).isoformat(), "lead_days": lead,
             "warned_14d": eid in per.warned_14d} for eid, lead in per.leads.items()]
    rows.sort(key=lambda r: (r["warned_14d"], -1 if r["lead_days"] is None else r["lead_days"], r["enterprise_id"]))
    alarmed = sorted((row(eid) for eid in per.alarmed), key=lambda r: (r["first_yellow_on"], r["enterprise_id"]))
    return {"dispute_warnings": rows, "no_dispute_alarms": alarmed}


def horizon_of(*scorers: Scorer) -> int:
    """The dispute horizon of the first scorer whose card has one (the rules have none): 60."""
    for scorer in scorers:
        days = getattr(getattr(scorer, "card", None), "horizon_days", None)
        if days:
            return int(days)
    return 60


def evaluate(scorer: Scorer, rules_scorer: Scorer, enterprises: Path, signals: Path, disputes: Path,
             report_dir: Path, configs: Configs, capacity: Capacity, *, horizon_days: int | None = None,
             progress: Progress = SILENT, importance_repeats: int = 5, seed: int = 0) -> dict:
    """Write ``report_dir/metrics.json`` and ``report_dir/report.html``; return the metrics."""
    horizon = horizon_days or horizon_of(scorer)
    both = replay_both(scorer, rules_scorer, enterprises, signals, disputes, configs, horizon, progress)
    found, snaps, y, mask, replay = both.found, both.snaps, both.y, both.mask, both.replay
    scores = dict(zip(("model", "rules"), both.scores))
    known = both.known
    truth = _read_truth(disputes)

    result: dict = {
        "horizon_days": horizon,
        "capacity_per_week": capacity.model_dump(),
        "data": {
            **both.data(),
            "as_of_dates": len(snaps.as_of_dates), "signals_accepted": replay.accepted,
            "signals_rejected": dict(replay.rejected),
            "signals_rejected_first": replay.first_rejected,
        },
    }
    for name, run in zip(("model", "rules"), both.runs):
        result[name] = scorer_figures(run, scores[name], snaps, y, mask, found, known, capacity, replay.registry,
                                      truth)
    m, r = result["model"]["pr_auc"], result["rules"]["pr_auc"]
    result["pr_auc_ratio"] = m / r if m is not None and r else None
    oracle = onset_oracle(snaps, y, mask, truth, seed=seed) if truth is not None else None
    if oracle is not None:
        result["onset_oracle"] = {**oracle, "pr_auc_ratio": oracle["pr_auc"] / r if r else None}
    result["targets"] = targets(result)

    estimator = getattr(scorer, "estimator", None)
    importance = None
    if estimator is not None and 0 < y[mask].sum() < mask.sum():
        importance = permutation(estimator, snaps.X[mask], y[mask], importance_repeats, seed, progress)
        result["model"]["permutation_importance"] = importance
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "metrics.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    advance = progress.step("writing report.html", 1)
    (report_dir / "report.html").write_text(render_html(result, snaps, y, mask, scores, importance), encoding="utf-8")
    advance(1)
    return result


class _Prefixed(Progress):
    def __init__(self, inner: Progress, name: str) -> None:
        self.inner, self.name = inner, name

    def step(self, description: str, total):
        return self.inner.step(f"{description} ({self.name})", total)


#: Rows the permutation importance is measured on, at most (a draw, the same for every feature).
PERMUTATION_ROWS = 50_000


def permutation(estimator, X: np.ndarray, y: np.ndarray, repeats: int, seed: int, progress: Progress) -> dict:
    """Permutation feature importance: the fall in average precision when a feature is shuffled,
    over ``repeats`` shuffles (mean and standard deviation), on at most ``PERMUTATION_ROWS`` rows
    drawn once. Feature by feature, so that the progress bar moves (scikit-learn's
    ``permutation_importance`` does the same in one call)."""
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(seed)
    if len(X) > PERMUTATION_ROWS:
        drawn = np.sort(rng.choice(len(X), PERMUTATION_ROWS, replace=False))
        X, y = X[drawn], y[drawn]
    X = np.array(X, dtype=float)  # a copy: its columns are shuffled in place
    base = average_precision_score(y, estimator.predict_proba(X)[:, 1])
    advance = progress.step("permutation feature importance", len(FEATURE_NAMES))
    out = {}
    for j, name in enumerate(FEATURE_NAMES):
        column = X[:, j].copy()
        falls = []
        for _ in range(repeats):
            X[:, j] = rng.permutation(column)
            falls.append(base - average_precision_score(y, estimator.predict_proba(X)[:, 1]))
        X[:, j] = column
        out[name] = {"mean": float(np.mean(falls)), "std": float(np.std(falls))}
        advance(1)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["mean"]))


# --- targets (issue 3) ---------------------------------------------------------------------------
TARGETS = (
    ("warned_14d_share", ">=", 0.80, "disputes warned (yellow+) 14+ days ahead"),
    ("lead_days_median", ">=", 30, "median lead time of warned disputes, days"),
    ("orange_red_dispute_120d_share", ">=", 0.50, "orange/red enterprises with a dispute within 120 days"),
    ("shutdown_orange_red_no_dispute", "==", 0, "orange/red during the Spring Festival shutdown, no-dispute enterprises"),
    ("false_alarm_share", "<=", 0.20, "no-dispute enterprises reaching yellow+"),
)


def targets(result: dict) -> list[dict]:
    out = []
    for key, op, bound, text in TARGETS:
        row = {"figure": key, "target": f"{op} {bound}", "meaning": text}
        for name in ("model", "rules"):
            value = result[name].get(key)
            row[name] = value
            row[f"{name}_met"] = None if value is None else {">=": value >= bound, "<=": value <= bound, "==": value == bound}[op]
        out.append(row)
    ratio = result.get("pr_auc_ratio")
    out.append({"figure": "pr_auc_ratio", "target": ">= 1.5", "meaning": "PR-AUC of the model over the rules'",
                "model": ratio, "model_met": None if ratio is None else ratio >= 1.5, "rules": None, "rules_met": None})
    return out


# --- report.html ---------------------------------------------------------------------------------
def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(result: dict, snaps: Snapshots, y: np.ndarray, mask: np.ndarray, scores: dict,
           importance: dict | None) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve

    names = {"model": result["model"]["version"], "rules": result["rules"]["version"]}
    out = []
    yt = y[mask]
    both = 0 < yt.sum() < len(yt)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for key, p in scores.items():
        if both:
            precision, recall, _ = precision_recall_curve(yt, p[mask])
            ax.step(recall, precision, where="post", label=f"{names[key]} (PR-AUC {result[key]['pr_auc']:.3f})")
    if both:
        ax.axhline(yt.mean(), color="grey", ls=":", label=f"base rate {yt.mean():.3f}")
    else:
        ax.text(0.5, 0.5, "no dispute (or only disputes) in the labelled weeks", ha="center")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, weekly snapshots", xlim=(0, 1), ylim=(0, 1.02))
    if both:
        ax.legend(loc="upper right", fontsize=8)
    out.append(("Precision-recall", _png(fig)))

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="perfectly calibrated")
    for key, p in scores.items():
        if both:
            true, predicted = calibration_curve(yt, p[mask], n_bins=10, strategy="uniform")
            ax.plot(predicted, true, marker="o", label=names[key])
    ax.set(xlabel="mean predicted probability", ylabel=f"share with a dispute within {result['horizon_days']} days",
           title="Calibration (10 equal-width bins)", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    out.append(("Calibration", _png(fig)))

    fig, ax = plt.subplots(figsize=(8, 4))
    for key in scores:
        weeks = result[key]["weeks"]
        ax.plot([date.fromisoformat(w["as_of"]) for w in weeks],
                [np.nan if w["precision"] is None else w["precision"] for w in weeks], marker=".", label=names[key])
    ax.set(ylabel="precision at k", title="Precision at the top k per street, by week", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    out.append(("Precision at k by week", _png(fig)))

    fig, ax = plt.subplots(figsize=(6, 4.5))
    leads = {key: [d for d in result[key]["lead_days"] if d is not None] for key in scores}
    top = max([60, *(max(v) for v in leads.values() if v)])
    bins = np.arange(0, top + 15, 14)
    ax.hist([leads[k] for k in scores], bins=bins, label=[
        f"{names[k]} (warned {len(leads[k])} of {result[k]['disputes']})" for k in scores])
    ax.axvline(WARNED_DAYS, color="grey", ls=":")
    ax.set(xlabel="days from the first yellow+ alert to the dispute", ylabel="disputes", title="Lead time")
    ax.legend(fontsize=8)
    out.append(("Lead time", _png(fig)))

    fig, ax = plt.subplots(figsize=(6, 6))
    if importance:
        items = list(importance.items())[::-1]
        ax.barh([k for k, _ in items], [v["mean"] for _, v in items], xerr=[v["std"] for _, v in items], color="tab:blue")
    else:
        ax.text(0.5, 0.5, "no estimator or no positives: not computed", ha="center")
    ax.set(xlabel="fall in average precision when shuffled", title=f"Permutation importance ({names['model']})")
    ax.tick_params(axis="y", labelsize=7)
    out.append(("Permutation feature importance", _png(fig)))
    return out


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):  # counts by reason
        return html.escape(", ".join(f"{k} {v}" for k, v in value.items()) or "none")
    return html.escape(str(value))


SUMMARY_KEYS = (
    "roc_auc", "pr_auc", "brier", "precision_at_k", "recall_at_k", "disputes", "warned_share", "warned_14d_share",
    "lead_days_median", "lead_days_median_all", "false_alarm_share", "orange_red_enterprises",
    "orange_red_dispute_120d_share", "shutdown_orange_red_no_dispute", "healthy_false_alarm_share",
    "healthy_orange_red", "alert_events",
)


def _oracle_html(result: dict) -> str:
    oracle = result.get("onset_oracle")
    if not oracle:
        return ""
    return (f" An oracle that knows when each trouble began (truth.json), with nothing visible before it, would"
            f" reach PR-AUC {_fmt(oracle['pr_auc'])}, a ratio of {_fmt(oracle['pr_auc_ratio'])} over the rules"
            f" ({oracle['positives_after_onset_share']:.0%} of the positive weeks come after the onset).")


def _details_html(figures: dict) -> str:
    """The model's disputes (misses first) and its no-dispute enterprises at yellow+, one row each."""
    scenario = any("scenario" in r for r in figures["dispute_warnings"] + figures["no_dispute_alarms"])

    def cells(r: dict, keys: tuple[str, ...]) -> str:
        return "".join(f"<td>{_fmt(r.get(k))}</td>" for k in keys)

    head = ("enterprise_id", "street", *(("scenario",) if scenario else ()))
    disputes = "".join(
        f"<tr class='{'' if r['warned_14d'] else 'miss'}'>"
        f"{cells(r, (*head, 'dispute_on', 'first_yellow_on', 'lead_days', 'first_reason'))}</tr>"
        for r in figures["dispute_warnings"])
    alarms = "".join(f"<tr>{cells(r, (*head, 'first_yellow_on', 'first_reason'))}</tr>"
                     for r in figures["no_dispute_alarms"])
    th = lambda names: "".join(f"<th>{html.escape(n)}</th>" for n in names)  # noqa: E731
    return (f"<h2>Disputes, misses first ({html.escape(figures['version'])})</h2>"
            f"<p>A miss (shaded) is a dispute not warned yellow or higher 14 or more days ahead; the reason is the"
            f" first one of the first yellow-or-higher alert.</p>"
            f"<table class='detail'><tr>{th((*head, 'dispute', 'first yellow+', 'lead, days', 'first reason'))}</tr>"
            f"{disputes}</table>"
            f"<h2>No-dispute enterprises sent to yellow+ ({html.escape(figures['version'])})</h2>"
            f"<table class='detail'><tr>{th((*head, 'first yellow+', 'first reason'))}</tr>{alarms}</table>")


def render_html(result: dict, snaps: Snapshots, y: np.ndarray, mask: np.ndarray, scores: dict,
                importance: dict | None) -> str:
    plots = _plots(result, snaps, y, mask, scores, importance)
    m, r = result["model"], result["rules"]
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(m.get(k))}</td><td>{_fmt(r.get(k))}</td></tr>"
        for k in SUMMARY_KEYS if k in m or k in r
    )
    goals = "".join(
        f"<tr><td>{html.escape(t['meaning'])}</td><td>{html.escape(t['target'])}</td>"
        f"<td class='{'ok' if t['model_met'] else 'no'}'>{_fmt(t['model'])}</td>"
        f"<td>{_fmt(t['rules'])}</td></tr>"
        for t in result["targets"]
    )
    data = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in result["data"].items()
        if k != "signals_rejected_first"
    ) + "".join(
        f"<tr><td>rejected line {d['line']}</td><td>{_fmt(d['reason'] + ': ' + d['detail'])}</td></tr>"
        for d in result["data"]["signals_rejected_first"]
    )
    details = _details_html(m)
    figures = "".join(
        f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'><figcaption>{html.escape(title)}"
        "</figcaption></figure>" for title, png in plots
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LaborWatch evaluation: {html.escape(m['version'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }} td, th {{ border: 1px solid #ccc; padding: .25rem .6rem; }}
th {{ background: #f3f3f3; }} td.ok {{ background: #e5f5e0; }} td.no {{ background: #fde0dd; }}
tr.miss td {{ background: #fde0dd; }} table.detail td:not(:last-child) {{ white-space: nowrap; }}
figure {{ display: inline-block; margin: 1rem; vertical-align: top; }} figcaption {{ text-align: center; }}
</style></head><body>
<h1>Evaluation of {html.escape(m['version'])} against {html.escape(r['version'])}</h1>
<p>Horizon {result['horizon_days']} days; weekly snapshots on Mondays 00:00 China time; alert levels from the
pipeline replayed over the files exactly as the stream would raise them.
PR-AUC ratio model/rules: <b>{_fmt(result['pr_auc_ratio'])}</b>.{_oracle_html(result)}</p>
<p><b>Selection bias.</b> Labels from the inspectors' outcomes (<code>models train --feedback</code>) exist only
for enterprises that were alerted and visited: an unvisited enterprise with arrears counts as a negative, and
the alerted ones are over-represented. Figures measured on such labels flatter the model that chose the
visits; compare on the dispute file, which does not depend on who was visited.</p>
<h2>Targets</h2>
<table><tr><th>figure</th><th>target</th><th>{html.escape(m['version'])}</th><th>{html.escape(r['version'])}</th></tr>{goals}</table>
<h2>Figures</h2>
<table><tr><th>figure</th><th>{html.escape(m['version'])}</th><th>{html.escape(r['version'])}</th></tr>{rows}</table>
<h2>Data</h2><table>{data}</table>
<h2>Plots</h2>
{figures}
{details}
</body></html>
"""
