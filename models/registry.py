"""The model registry: content-addressed versions, saved with skops (no pickle), and the
promoted version.

Layout under a root folder: ``<version>/model.skops``, ``<version>/card.json`` and
``promoted.json``. A version is the hash of what made the model (class, parameters, feature
set, data window, data hash, seed), so the same training run registers the same version.
Models shipped with the project (``models/shipped/``) are found after the local ones.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from models.features import FEATURE_NAMES

SHIPPED = Path(__file__).resolve().parent / "shipped"
# Types a model file may contain: scikit-learn, NumPy and SciPy's own. Anything else (a custom
# class, a builtin that executes code) is refused before it is loaded.
TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.")


class ModelLoadError(Exception):
    """A model cannot be registered, found or loaded; the message is one line."""


@dataclass(frozen=True)
class ModelCard:
    version: str
    model_class: str
    params: dict
    feature_names: list[str]
    horizon_days: int
    data_window: list[str]
    data_hash: str
    seed: int
    created_at: str
    metrics: dict = field(default_factory=dict)
    calibration: str = ""
    # Values that mean "nothing unusual" per feature, for explanations (default: features.NEUTRAL).
    reference: dict = field(default_factory=dict)
    # Per feature, the training distribution (models.drift.reference_bins), for drift metrics.
    drift: dict = field(default_factory=dict)
    # Blue and yellow for this model's probabilities, chosen on its own data by the workload budget
    # (models.train.recommend_levels); empty when the data could not tell.
    levels: dict = field(default_factory=dict)


def content_version(model_class: str, params: dict, feature_names: list[str], data_window: list[str],
                    data_hash: str, seed: int, levels: dict | None = None) -> str:
    """The version: a hash of what makes the model, and of the blue and yellow its card brings
    (they decide its alerts as much as the estimator does)."""
    identity = {"class": model_class, "params": params, "features": feature_names, "window": data_window,
                "data": data_hash, "seed": seed}
    if levels:
        identity["levels"] = {k: levels.get(k) for k in ("blue", "yellow")}
    identity = json.dumps(identity, sort_keys=True, default=str)
    return "m-" + hashlib.sha256(identity.encode()).hexdigest()[:16]


class ModelRegistry:
    def __init__(self, root: Path, *, fallbacks: tuple[Path, ...] = (SHIPPED,)):
        self.root = root
        self.fallbacks = fallbacks

    # -- writing ----------------------------------------------------------------------------
    def register(self, estimator, *, model_class: str, params: dict, feature_names: list[str], horizon_days: int,
                 data_window: list[str], data_hash: str, seed: int, metrics: dict, calibration: str,
                 reference: dict | None = None, drift: dict | None = None,
                 levels: dict | None = None) -> ModelCard:
        import skops.io as sio

        version = content_version(model_class, params, feature_names, data_window, data_hash, seed, levels)
        card = ModelCard(
            version=version, model_class=model_class, params=params, feature_names=list(feature_names),
            horizon_days=horizon_days, data_window=list(data_window), data_hash=data_hash, seed=seed,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), metrics=metrics,
            calibration=calibration, reference=reference or {}, drift=drift or {}, levels=levels or {},
        )
        folder = self.root / version
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "model.skops.tmp"
        sio.dump(estimator, tmp)
        os.replace(tmp, folder / "model.skops")
        (folder / "card.json").write_text(json.dumps(asdict(card), indent=2, default=str))
        return card

    def promote(self, version: str) -> ModelCard:
        card = self.card(version)
        self._load_checked(version)  # never promote what a worker would refuse
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "promoted.json.tmp"
        tmp.write_text(json.dumps({"version": version, "promoted_at": datetime.now(timezone.utc).isoformat()}))
        os.replace(tmp, self.root / "promoted.json")
        return card

    # -- reading ----------------------------------------------------------------------------
    def _folder(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise ModelLoadError(f"{version!r} is not a model version")
        for root in (self.root, *self.fallbacks):
            if (root / version / "card.json").exists():
                return root / version
        where = ", ".join(str(root) for root in (self.root, *self.fallbacks))
        raise ModelLoadError(f"model {version} is not in the registry ({where})")

    def card(self, version: str) -> ModelCard:
        path = self._folder(version) / "card.json"
        try:
            return ModelCard(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{path}: not a model card ({exc})") from None

    def cards(self) -> list[ModelCard]:
        found: dict[str, ModelCard] = {}
        for root in (self.root, *self.fallbacks):
            for path in sorted(root.glob("*/card.json")) if root.exists() else []:
                found.setdefault(path.parent.name, self.card(path.parent.name))
        return sorted(found.values(), key=lambda c: c.created_at)

    def promoted(self) -> str | None:
        """The promoted version: this registry's choice, else the shipped default."""
        for root in (self.root, *self.fallbacks):
            path = root / "promoted.json"
            if path.exists():
                return json.loads(path.read_text())["version"]
        return None

    def load(self, version: str):
        """(estimator, card), checked: trusted types only, the pipeline's feature set, predicts."""
        return self._load_checked(version)

    def _load_checked(self, version: str):
        import numpy as np
        import skops.io as sio

        card = self.card(version)
        if list(card.feature_names) != list(FEATURE_NAMES):
            missing = sorted(set(FEATURE_NAMES) - set(card.feature_names))
            extra = sorted(set(card.feature_names) - set(FEATURE_NAMES))
            raise ModelLoadError(
                f"model {version} was trained on another feature set (missing {missing or 'none'}, "
                f"unknown {extra or 'none'}, or another order) than this pipeline computes"
            )
        path = self._folder(version) / "model.skops"
        try:
            untrusted = sio.get_untrusted_types(file=path)
            refused = [t for t in untrusted if not t.startswith(TRUSTED_MODULES)]
            if refused:
                raise ModelLoadError(f"model {version} holds types that are not trusted: {', '.join(refused[:5])}")
            estimator = sio.load(path, trusted=untrusted)
            probabilities = estimator.predict_proba(np.zeros((1, len(FEATURE_NAMES))))
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to load is the same answer
            raise ModelLoadError(f"model {version} cannot be loaded from {path}: {type(exc).__name__}: {exc}") from None
        if probabilities.shape != (1, 2):
            raise ModelLoadError(f"model {version} is not a binary classifier with predict_proba")
        return estimator, card


def scorer_for(model_dir: Path, configs, version: str | None = None):
    """The scorer for ``version``: the rules for the rules' own version, else that model; with
    no version, the promoted model, else the rules (the stream and backtest both use this)."""
    from models.scoring import ModelScorer, RulesScorer

    rules = RulesScorer(configs.rules)
    if version == rules.version:
        return rules
    registry = ModelRegistry(model_dir)
    version = version or registry.promoted()
    if version is None:
        return rules
    estimator, card = registry.load(version)
    # Reasons are computed from blue up: the rows that can raise an alert.
    blue = configs.levels.thresholds_for(card.levels or None).blue
    return ModelScorer(estimator, card, explain_above=blue)
