"""The YAML files of ``config/``: their shapes, and a loader whose errors name file, key and fault.

Each file carries ``config_version``; a file written for another version is refused rather than
half-understood.
"""
from __future__ import annotations

import re
import string
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

LEVELS = ("blue", "yellow", "orange", "red")
ROUTING_LABELS = ("category", "level", "district", "street", "community", "grid", "industry")


class ConfigError(Exception):
    """A configuration file is missing, unreadable or invalid; the message is one line."""


class _At(ValueError):
    """A fault found by a whole-model check, with the key path it concerns (for the message)."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc = loc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


# --- levels.yaml -----------------------------------------------------------------------------
class Thresholds(_Strict):
    blue: Probability
    yellow: Probability
    orange: Probability
    red: Probability

    @model_validator(mode="after")
    def _ascending(self) -> "Thresholds":
        values = [self.blue, self.yellow, self.orange, self.red]
        if values != sorted(values) or len(set(values)) != 4:
            raise ValueError("must rise strictly from blue to yellow to orange to red")
        return self


class CollectiveIncident(_Strict):
    min_workers: int = Field(ge=1)
    level: Literal["blue", "yellow", "orange", "red"]


class LevelsConfig(_Strict):
    config_version: Literal[1]
    thresholds: Thresholds
    collective_incident: CollectiveIncident
    # Where blue and yellow come from: "model" takes those a model's card recommends (chosen when
    # it was trained, on its own data, by ``workload_budget``), for scorers that have them;
    # "config" always takes ``thresholds``. Orange and red always come from ``thresholds``.
    yellow_from: Literal["model", "config"] = "model"
    # The share of enterprises with no dispute that yellow may send to a visit in a year.
    workload_budget: Probability = 0.15

    def thresholds_for(self, recommended: dict | None) -> Thresholds:
        """The thresholds a scorer's alerts are levelled by: the configured ones, with blue and
        yellow from ``recommended`` (a model card's ``levels``) when ``yellow_from`` is "model"
        and they fit below orange."""
        if self.yellow_from != "model" or not recommended or "yellow" not in recommended:
            return self.thresholds
        try:
            return Thresholds(blue=recommended["blue"], yellow=recommended["yellow"],
                              orange=self.thresholds.orange, red=self.thresholds.red)
        except (ValidationError, KeyError, TypeError):
            return self.thresholds  # a recommendation at or above orange: the configured levels

    def level_for(self, score: float, thresholds: Thresholds | None = None) -> str | None:
        """The highest level whose threshold the score reaches, or None below blue."""
        thresholds = thresholds or self.thresholds
        for level in reversed(LEVELS):
            if score >= getattr(thresholds, level):
                return level
        return None


# --- rules.yaml ------------------------------------------------------------------------------
class Rule(_Strict):
    code: str = Field(pattern=r"^[a-z0-9_]+$")
    feature: str
    above: float | None = None
    below: float | None = None
    weight: Probability
    unless: list[str] = Field(default_factory=list)
    text: str

    @model_validator(mode="after")
    def _one_bound(self) -> "Rule":
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' or 'below'")
        try:
            self.render(1.0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"text: bad placeholder ({exc}); use {{value}}, {{pct}}, {{drop}}, {{neg}} or {{s}}"
            ) from None
        return self

    def render(self, value: float) -> str:
        """The reason in words, with the placeholders of ``models.features.text_fields``."""
        from models.features import text_fields

        return self.text.format(**text_fields(value))

    def fires(self, value: float) -> bool:
        if self.above is not None:
            return value >= self.above
        return value <= self.below  # type: ignore[operator]


class RulesConfig(_Strict):
    config_version: Literal[1]
    model_version: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    rules: list[Rule] = Field(min_length=1)

    @field_validator("rules")
    @classmethod
    def _unique_codes(cls, rules: list[Rule]) -> list[Rule]:
        codes = [r.code for r in rules]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate rule codes: {', '.join(dupes)}")
        return rules


# --- routing.yaml ----------------------------------------------------------------------------
# The value may not start with '=' or '~': "level == red" is a typo, not a match on "= red".
_MATCHER = re.compile(r"^\s*([a-z_]+)\s*(=~|!~|!=|=)\s*\"?([^\"=~][^\"]*?|)\"?\s*$")


class Matcher(_Strict):
    label: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        match = _MATCHER.match(text)
        if not match:
            raise ValueError(f"matcher {text!r} is not of the form label=value, label!=value, label=~regex")
        label, op, value = match.groups()
        if label not in ROUTING_LABELS:
            raise ValueError(f"matcher {text!r}: unknown label {label!r} (known: {', '.join(ROUTING_LABELS)})")
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"matcher {text!r}: bad regex ({exc})") from None
        return cls(label=label, op=op, value=value)

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit


class Receiver(_Strict):
    queue: str

    @field_validator("queue")
    @classmethod
    def _template(cls, queue: str) -> str:
        kind, _, rest = queue.partition(":")
        if kind not in ("street", "district", "grid") or not rest:
            raise ValueError(f"{queue!r} must start with street:, district: or grid:")
        fields = [f for _, f, _, _ in string.Formatter().parse(rest) if f is not None]
        unknown = [f for f in fields if f not in ROUTING_LABELS]
        if unknown:
            raise ValueError(f"{queue!r} uses unknown label {unknown[0]!r}")
        return queue


class Route(_Strict):
    name: str = ""
    matchers: list[str] = Field(default_factory=list)
    receivers: list[str] = Field(min_length=1)
    # Alertmanager semantics: the first matching route wins unless it says continue.
    continue_: bool = Field(False, alias="continue")

    @field_validator("matchers")
    @classmethod
    def _parse(cls, matchers: list[str]) -> list[str]:
        for text in matchers:
            Matcher.parse(text)
        return matchers

    @cached_property
    def parsed(self) -> tuple[Matcher, ...]:
        return tuple(Matcher.parse(m) for m in self.matchers)


class RouteTree(_Strict):
    receivers: list[str] = Field(min_length=1)
    routes: list[Route] = Field(default_factory=list)


class RoutingConfig(_Strict):
    config_version: Literal[1]
    receivers: dict[str, Receiver] = Field(min_length=1)
    route: RouteTree

    @field_validator("receivers")
    @classmethod
    def _names(cls, receivers: dict[str, Receiver]) -> dict[str, Receiver]:
        for name in receivers:
            if not re.fullmatch(r"[a-z0-9-]+", name):
                raise ValueError(f"receiver name {name!r} must use a-z, 0-9 and '-' (it names a topic)")
        return receivers

    @model_validator(mode="after")
    def _known_receivers(self) -> "RoutingConfig":
        used = [(("route", "receivers", i), r) for i, r in enumerate(self.route.receivers)] + [
            (("route", "routes", j, "receivers", i), r)
            for j, route in enumerate(self.route.routes)
            for i, r in enumerate(route.receivers)
        ]
        for loc, name in used:
            if name not in self.receivers:
                raise _At(loc, f"receiver {name!r} is not under receivers")
        return self


# --- pipeline.yaml ---------------------------------------------------------------------------
class StateConfig(_Strict):
    retention_days: int = Field(ge=30, le=3650)
    utility_window_days: int = Field(ge=28, le=730)
    wage_periods_kept: int = Field(ge=3, le=60)
    inspection_window_days: int = Field(ge=30, le=3650)


class PipelineConfig(_Strict):
    config_version: Literal[1]
    state: StateConfig

    @model_validator(mode="after")
    def _windows_fit(self) -> "PipelineConfig":
        if self.state.utility_window_days > self.state.retention_days:
            raise _At(("state", "utility_window_days"), "cannot exceed state.retention_days")
        return self


# --- sla.yaml --------------------------------------------------------------------------------
class LevelSla(_Strict):
    acknowledge_hours: float = Field(gt=0)
    on_site_hours: float = Field(gt=0)

    @model_validator(mode="after")
    def _order(self) -> "LevelSla":
        if self.on_site_hours < self.acknowledge_hours:
            raise ValueError("on_site_hours cannot come before acknowledge_hours")
        return self


class SlaConfig(_Strict):
    config_version: Literal[1]
    levels: dict[Literal["blue", "yellow", "orange", "red"], LevelSla]

    @field_validator("levels")
    @classmethod
    def _all_levels(cls, levels: dict) -> dict:
        missing = [level for level in LEVELS if level not in levels]
        if missing:
            raise ValueError(f"every level needs an SLA; missing {', '.join(missing)}")
        return levels


# --- loading ---------------------------------------------------------------------------------
def _location(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in ("__root__",)) or "(top level)"


def load_yaml(path: Path, model: type[BaseModel]) -> BaseModel:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of keys to values")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        cause = (err.get("ctx") or {}).get("error")
        loc = tuple(err["loc"]) + tuple(getattr(cause, "loc", ()))
        got = None if loc != tuple(err["loc"]) else err.get("input")
        shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
        message = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{path}: {_location(loc)}: {message}{shown}") from None


class Configs(BaseModel):
    """Every YAML file of the config folder, validated together at start-up."""

    model_config = ConfigDict(frozen=True)
    levels: LevelsConfig
    rules: RulesConfig
    routing: RoutingConfig
    pipeline: PipelineConfig
    sla: SlaConfig


def load_configs(config_dir: Path) -> Configs:
    from models.features import FEATURE_NAMES  # the rule file may only name real features

    configs = Configs(
        levels=load_yaml(config_dir / "levels.yaml", LevelsConfig),
        rules=load_yaml(config_dir / "rules.yaml", RulesConfig),
        routing=load_yaml(config_dir / "routing.yaml", RoutingConfig),
        pipeline=load_yaml(config_dir / "pipeline.yaml", PipelineConfig),
        sla=load_yaml(config_dir / "sla.yaml", SlaConfig),
    )
    for i, rule in enumerate(configs.rules.rules):
        named = [("feature", rule.feature)] + [(f"unless.{j}", n) for j, n in enumerate(rule.unless)]
        for key, name in named:
            if name not in FEATURE_NAMES:
                raise ConfigError(
                    f"{config_dir / 'rules.yaml'}: rules.{i}.{key}: unknown feature {name!r}"
                )
    return configs
