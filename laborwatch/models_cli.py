"""`laborwatch models train`, `evaluate VERSION` (the contract's CLI.md), `compare` and `thresholds`;
registered on the `models` group in laborwatch/cli.py.

Progress goes to stderr; `train` prints the registered version as the last line of stdout.
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Optional

import typer


def _inputs(enterprises: Path, signals: Path, disputes: Path) -> None:
    from laborwatch.cli import _readable

    for path in (enterprises, signals, disputes):
        _readable(path)


def train_model(
    enterprises: Path = typer.Option(..., "--enterprises", help="Registry file (CSV or JSONL)."),
    signals: Path = typer.Option(..., "--signals", help="Signal file (JSONL in arrival order, or the same gzipped)."),
    disputes: Path = typer.Option(..., "--disputes", help="Disputes file (JSONL): the labels."),
    horizon_days: int = typer.Option(60, "--horizon-days", min=1, max=730, help="Label: a dispute within this many days."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the estimators."),
    every_days: int = typer.Option(7, "--every-days", min=1, help="Days between as-of dates (Mondays)."),
    feedback: Optional[Path] = typer.Option(
        None, "--feedback", help="Inspectors' outcomes (JSONL of `laborwatch feedback export`): confirmed problems "
        "join the disputes as positive labels. Only visited enterprises get them (selection bias)."),
) -> None:
    """Train, calibrate and register a model on point-in-time weekly snapshots; print its version last."""
    import numpy as np

    from laborwatch.cli import CliError, _configs, _settings
    from models.drift import reference_bins
    from models.features import CONTEXT_FEATURES, FEATURE_NAMES
    from models.registry import ModelRegistry
    from models.snapshots import read_disputes, replay_with_snapshots, rich_progress
    from models.train import cross_fitted_scores, data_hash, recommend_levels, train

    settings = _settings()
    configs = _configs(settings)
    _inputs(enterprises, signals, disputes)
    labels_from: Path | dict = disputes
    if feedback is not None:
        dispute_days, labels_from = _with_feedback(disputes, feedback)
    try:
        with rich_progress() as progress:
            recorder = _RowRecorder()
            snapshots, replay = replay_with_snapshots(enterprises, signals, configs=configs, every_days=every_days,
                                                      progress=progress, scorer=recorder,
                                                      on_outcome=recorder.keep_ids)
            y, mask = snapshots.labels(labels_from, horizon_days)
            if feedback is not None:
                _report_feedback_rows(snapshots, y, mask, dispute_days, horizon_days)
            result = train(snapshots, y, mask, horizon_days=horizon_days, seed=seed, progress=progress)
            row_ids = recorder.enterprise_ids()
            unseen, fallback = cross_fitted_scores(snapshots, y, mask, result, recorder.matrix(), row_ids,
                                                   progress=progress)
            advance = progress.step("choosing yellow by the workload budget", 1)
            own = result.estimator.predict_proba(recorder.matrix())[:, 1]
            levels = recommend_levels(
                np.column_stack([unseen, own]), row_ids, recorder.days(),
                labels_from if isinstance(labels_from, dict) else read_disputes(labels_from),
                first_day=snapshots.first_day, last_day=snapshots.last_day, budget=configs.levels.workload_budget,
                estimates=("cross-fitted models", "final model"),
            )
            advance(1)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(str(exc).splitlines()[0]) from None
    card = ModelRegistry(settings.resolved_model_dir).register(
        result.estimator,
        model_class=result.model_class,
        params=result.params,
        feature_names=list(FEATURE_NAMES),
        horizon_days=horizon_days,
        data_window=result.data_window,
        data_hash=data_hash(enterprises, signals, disputes, *([feedback] if feedback else []),
                            horizon_days=horizon_days, every_days=every_days),
        seed=seed,
        metrics=result.metrics,
        calibration=result.calibration,
        # Drift (PSI) is measured on the rows the stream scores, one per signal at any hour, so
        # the reference is those rows of the training data, not the Monday-midnight snapshots,
        # with each calendar month's own shares (meters follow the seasons). Context features (a
        # meter exists, days to the festival) move with the calendar by design.
        drift={name: ref for name, ref in reference_bins(
            recorder.matrix(), list(FEATURE_NAMES), months=[date.fromordinal(d).month for d in recorder.days()]
        ).items() if name not in CONTEXT_FEATURES},
        levels=levels,
    )
    typer.echo(replay.account(), err=True)
    for name in ("selection", "holdout"):
        figures = result.metrics[name]
        shown = ", ".join(f"{k} {figures[k]:.3f}" for k in ("pr_auc", "roc_auc", "brier") if figures.get(k) is not None)
        typer.echo(f"{name} fold {result.folds.get('calibration' if name == 'selection' else name)}: "
                   f"{figures['positives']} of {figures['rows']} rows positive; {shown}", err=True)
    if fallback:
        typer.echo(f"levels: {fallback} of the enterprise groups had no dispute to learn from without them; "
                   "their enterprises' rows were scored by the final model", err=True)
    typer.echo(f"levels: {describe_levels(levels)}", err=True)
    typer.echo(f"chose {result.model_class} {result.params} from {len(result.candidates)} candidates; "
               f"registered in {settings.resolved_model_dir}", err=True)
    typer.echo(card.version)


def _with_feedback(disputes: Path, feedback: Path) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """The dispute days, and those plus the days of resolutions that confirmed a problem (see
    alerts.feedback)."""
    from alerts.feedback import positive_days, read_feedback
    from laborwatch.cli import CliError, _readable
    from models.snapshots import read_disputes

    _readable(feedback)
    try:
        days = read_disputes(disputes)
        extra = positive_days(read_feedback(feedback))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(str(exc).splitlines()[0]) from None
    merged = dict(days)
    for enterprise_id, found in extra.items():
        merged[enterprise_id] = sorted(set(days.get(enterprise_id, [])) | set(found))
    typer.echo(f"feedback: {sum(len(v) for v in extra.values())} confirmed outcomes of {len(extra)} enterprises "
               "read", err=True)
    return days, merged


def _report_feedback_rows(snapshots, y, mask, dispute_days: dict[str, list[int]], horizon_days: int) -> None:
    """What the outcomes changed: the weekly rows they made positive. An outcome of an enterprise
    the files do not hold, or outside their window, labels nothing, and saying "added" would
    overstate it."""
    y_disputes, _ = snapshots.labels(dispute_days, horizon_days)
    gained = int(((y == 1) & (y_disputes == 0) & mask).sum())
    if gained:
        typer.echo(f"feedback: {gained} weekly rows positive that the disputes alone left negative "
                   "(visited enterprises only: selection bias)", err=True)
    else:
        typer.echo("feedback: no outcome falls on an enterprise and window of these files; the labels are the "
                   "disputes' alone", err=True)


def evaluate_model(
    version: str = typer.Argument(..., help="Model version (laborwatch models list), or rules-v1."),
    enterprises: Path = typer.Option(..., "--enterprises", help="Registry file (CSV or JSONL)."),
    signals: Path = typer.Option(..., "--signals", help="Signal file (JSONL in arrival order, or the same gzipped)."),
    disputes: Path = typer.Option(..., "--disputes", help="Disputes file (JSONL)."),
    report: Path = typer.Option(..., "--report", help="Folder for metrics.json and report.html."),
) -> None:
    """Evaluate VERSION against the rules on these files; write REPORT/metrics.json and REPORT/report.html."""
    from laborwatch.cli import CliError, _configs, _folder, _settings
    from models.evaluate import evaluate, load_evaluation_config
    from models.registry import ModelLoadError, scorer_for
    from models.scoring import RulesScorer
    from models.snapshots import rich_progress
    from streams.backtest import signal_account

    settings = _settings()
    configs = _configs(settings)
    evaluation = load_evaluation_config(settings.config_dir / "evaluation.yaml")
    _inputs(enterprises, signals, disputes)
    try:
        scorer = scorer_for(settings.resolved_model_dir, configs, version)
    except ModelLoadError as exc:
        raise CliError(str(exc)) from None
    _folder(report)
    try:
        with rich_progress() as progress:
            result = evaluate(scorer, RulesScorer(configs.rules), enterprises, signals, disputes, report, configs,
                              evaluation.capacity_per_week, progress=progress)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(str(exc).splitlines()[0]) from None
    except OSError as exc:
        raise CliError(f"{report}: cannot write ({exc.strerror})") from None
    data = result["data"]
    typer.echo(signal_account(data["signals_accepted"], data["signals_rejected"], data["signals_rejected_first"]),
               err=True)
    _say_disputes_outside(data)
    for target in result["targets"]:
        typer.echo(f"{target['figure']:<32} target {target['target']:<8} model {_short(target['model']):>8}  "
                   f"rules {_short(target['rules']):>8}")
    typer.echo(f"wrote {report / 'metrics.json'} and {report / 'report.html'}")


def compare_models(
    candidate: str = typer.Argument(..., help="The model version to judge (laborwatch models list), or rules-v1."),
    baseline: Optional[str] = typer.Argument(
        None, help="What it is judged against: a model version, or rules-v1 (default: the promoted model, "
        "what the workers score with now)."),
    enterprises: Path = typer.Option(..., "--enterprises", help="Registry file (CSV or JSONL)."),
    signals: Path = typer.Option(..., "--signals", help="Signal file (JSONL in arrival order, or the same gzipped)."),
    disputes: Path = typer.Option(..., "--disputes", help="Disputes file (JSONL)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Folder for comparison.json."),
    repeats: int = typer.Option(1000, "--repeats", min=100, max=100000, help="Bootstrap draws of the enterprises."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap draws."),
) -> None:
    """CANDIDATE against BASELINE on the same files, figure by figure, with paired bootstrap
    intervals over enterprises for PR-AUC, the 14-day warning share and the false alarms; a
    difference is called only when its 95% interval leaves out 0. Compare on a world neither
    model was trained or tuned on."""
    from laborwatch.cli import CliError, _configs, _folder, _settings
    from models.compare import SIDE_BY_SIDE, compare
    from models.evaluate import load_evaluation_config
    from models.registry import ModelLoadError, ModelRegistry, scorer_for
    from models.snapshots import rich_progress

    settings = _settings()
    configs = _configs(settings)
    evaluation = load_evaluation_config(settings.config_dir / "evaluation.yaml")
    _inputs(enterprises, signals, disputes)
    if baseline is None:
        baseline = ModelRegistry(settings.resolved_model_dir).promoted()
        if baseline is None:
            raise CliError("no model is promoted: name the BASELINE version (or rules-v1)")
    try:
        scorers = [scorer_for(settings.resolved_model_dir, configs, version) for version in (candidate, baseline)]
    except ModelLoadError as exc:
        raise CliError(str(exc)) from None
    if report is not None:
        _folder(report)
    try:
        with rich_progress() as progress:
            result = compare(*scorers, enterprises, signals, disputes, configs, evaluation.capacity_per_week,
                             progress=progress, repeats=repeats, seed=seed)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(str(exc).splitlines()[0]) from None
    data = result["data"]
    _say_disputes_outside(data)
    typer.echo(f"{candidate} (candidate) against {baseline} (baseline): {data['enterprises']} enterprises, "
               f"{data['disputes']} disputes, horizon {result['horizon_days']} days; 95% intervals from "
               f"{repeats} paired draws of the enterprises")
    typer.echo(f"{'figure':<30} {'candidate':>9} {'baseline':>9} {'difference':>10}  {'95% interval':<17} verdict")
    for figure, d in result["differences"].items():
        interval = "-" if d["interval"] is None else f"[{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}]"
        verdict = {"candidate": "candidate better", "baseline": "baseline better"}.get(d["better"], "no clear difference")
        if d["interval"] is None:
            verdict = "cannot say"
        difference = "-" if d["difference"] is None else f"{d['difference']:+.3f}"
        typer.echo(f"{figure:<30} {_short(d['candidate']):>9} {_short(d['baseline']):>9} {difference:>10}  "
                   f"{interval:<17} {verdict}")
    ratio = result["pr_auc_ratio"]
    if ratio["value"] is not None:
        shown = "" if ratio["interval"] is None else f"  [{ratio['interval'][0]:.2f}, {ratio['interval'][1]:.2f}]"
        typer.echo(f"{'pr_auc_ratio':<30} {ratio['value']:>9.2f}{shown}  (candidate / baseline)")
    for figure in SIDE_BY_SIDE:
        typer.echo(f"{figure:<30} {_short(result['candidate'].get(figure)):>9} "
                   f"{_short(result['baseline'].get(figure)):>9}")
    if report is not None:
        try:
            (report / "comparison.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        except OSError as exc:
            raise CliError(f"{report}: cannot write ({exc.strerror})") from None
        typer.echo(f"wrote {report / 'comparison.json'}")


def sweep_thresholds(
    version: str = typer.Argument(..., help="Model version (laborwatch models list)."),
    enterprises: Path = typer.Option(..., "--enterprises", help="Registry file (CSV or JSONL)."),
    signals: Path = typer.Option(..., "--signals", help="Signal file (JSONL in arrival order, or the same gzipped)."),
    disputes: Path = typer.Option(..., "--disputes", help="Disputes file (JSONL)."),
    yellow: Optional[str] = typer.Option(None, "--yellow", help="Candidate yellow thresholds, comma-separated "
                                         "(default 0.08 to 0.45 and the one in use)."),
) -> None:
    """What each yellow threshold would do with VERSION on these files: disputes warned 14+ days
    ahead, median lead, no-dispute enterprises sent to yellow. Choose on worlds you do not report on;
    the thresholds live in config/levels.yaml, and blue and yellow in the model's card when training
    chose them (yellow_from: model)."""
    from laborwatch.cli import CliError, _configs, _settings
    from models.registry import ModelLoadError, scorer_for
    from models.snapshots import rich_progress
    from models.thresholds import DEFAULT_CANDIDATES, sweep

    settings = _settings()
    configs = _configs(settings)
    _inputs(enterprises, signals, disputes)
    try:
        candidates = tuple(float(x) for x in yellow.split(",")) if yellow else DEFAULT_CANDIDATES
    except ValueError:
        raise CliError(f"--yellow: {yellow!r} is not a comma-separated list of numbers") from None
    if not all(0 < c < 1 for c in candidates):
        raise CliError("--yellow: thresholds are probabilities between 0 and 1")
    try:
        scorer = scorer_for(settings.resolved_model_dir, configs, version)
    except ModelLoadError as exc:
        raise CliError(str(exc)) from None
    in_use = configs.levels.thresholds_for(scorer.levels)
    current = in_use.yellow
    source = "config/levels.yaml" if in_use is configs.levels.thresholds else "the model's card"
    if not yellow:
        candidates = tuple(sorted({*candidates, current}))
    try:
        with rich_progress() as progress:
            rows = sweep(scorer, configs, enterprises, signals, disputes, candidates, progress=progress)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(str(exc).splitlines()[0]) from None
    typer.echo(f"{'yellow':>7}  {'warned 14d+':>11}  {'median lead':>11}  {'no-dispute yellow+':>18}   "
               f"({rows[0].disputes} disputes, {rows[0].no_dispute_enterprises} enterprises without one)")
    for row in rows:
        mark = f"  <- in use ({source})" if abs(row.yellow - current) < 1e-9 else ""
        typer.echo(f"{row.yellow:>7.3f}  {_share(row.warned_14d_share):>11}  {_short(row.lead_days_median):>11}  "
                   f"{_share(row.false_alarm_share):>18}{mark}")


def _share(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def _say_disputes_outside(data: dict) -> None:
    if data["disputes_outside_data"]:
        typer.echo(f"disputes: {data['disputes_outside_data']} of {data['disputes']} fall outside the signals' days "
                   f"({data['first_day']} to {data['last_day']}) and are not counted as disputes to warn of", err=True)
    if data["disputes_too_early_to_warn"]:
        typer.echo(f"disputes: {data['disputes_too_early_to_warn']} of {data['disputes']} fall in the signals' first "
                   f"14 days (from {data['first_day']}), too early for any scorer to warn of them 14 days ahead, and "
                   "are not counted as disputes to warn of", err=True)


def describe_levels(levels: dict | None) -> str:
    """A card's blue and yellow, and how training chose them, in one sentence."""
    if not levels or levels.get("yellow") is None:
        return "too few enterprises without a dispute in a year to choose yellow; config/levels.yaml's thresholds apply"
    said = f"yellow {levels['yellow']:g}, blue {levels['blue']:g}"
    if "worst_year" not in levels:  # a card from before the worst-year rule
        return said
    return (f"{said}: in its worst year ({levels['worst_year'][0]} to {levels['worst_year'][1]}, of {levels['years']} "
            f"from {levels['window'][0]}), {levels['no_dispute_yellow_share_per_year']:.0%} of the "
            f"{levels['no_dispute_enterprises']} enterprises with no dispute reach yellow, scored by the "
            f"{levels['worst_estimate']} (budget {levels['workload_budget']:.0%}"
            f"{'' if levels['budget_met'] else ', not met'})")


def _short(value) -> str:
    """A figure in at most three decimals, without trailing zeros (41.5, 100, 0.625)."""
    if value is None:
        return "-"
    return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


class _RowRecorder:
    """A scorer that scores nothing and keeps the feature rows the stream would have scored, with
    each row's enterprise and local day. Packed (8 bytes a number): a million signals take 200 MB,
    not the 2.5 GB of Python lists."""

    version = "row-recorder"

    def __init__(self) -> None:
        from array import array

        self._values = array("d")  # the rows, FEATURE_NAMES order, one after another
        self._rows = 0
        self._enterprise = array("q")  # per row: index into self._names
        self._names: dict[str, int] = {}
        self._days = array("q")  # per row: local day (date ordinal)
        self._matrix = None

    def score(self, rows):
        from models.features import vector
        from models.scoring import Scored

        for row in rows:
            self._values.extend(vector(row))
        self._rows += len(rows)
        self._matrix = None
        return [Scored(score=0.0, reasons=()) for _ in rows]

    def keep_ids(self, outcome) -> None:
        """The enterprise and local day of each row scored in this batch: the pipeline scores the
        accepted signals, one row each, in order. The day is the stream's ``local_day``, as in the
        days the pipeline hands its metrics (drift compares the same calendar months)."""
        from models.state import local_day

        for accepted in outcome.accepted:
            eid = accepted.signal["enterprise_id"]
            self._enterprise.append(self._names.setdefault(eid, len(self._names)))
            self._days.append(local_day(accepted.observed))
        if len(self._days) != self._rows:
            raise RuntimeError(f"{self._rows} rows scored but {len(self._days)} signals accepted")

    def enterprise_ids(self):
        import numpy as np

        names = np.asarray(list(self._names), dtype=str)
        return names[np.frombuffer(self._enterprise, dtype=np.int64)] if len(self._enterprise) else names[:0]

    def days(self):
        import numpy as np

        return np.frombuffer(self._days, dtype=np.int64).copy()

    def matrix(self):
        import numpy as np

        from models.features import FEATURE_NAMES

        if self._matrix is None:
            self._matrix = np.frombuffer(self._values, dtype=float).reshape(self._rows, len(FEATURE_NAMES)).copy()
        return self._matrix
