"""The ``detect:`` section: assets, their models and rules, and how alerts debounce.

Config models only: importing this module loads no numpy and no onnxruntime, so
``check-config`` stays light.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from edge_agent.detect.lifecycle import Chatter, Gate
from edge_agent.detect.runstate import check as check_run_state
from edge_agent.schema import Duration, OnOff, StrictModel, switch


class DebounceConfig(StrictModel):
    """``k`` of the last ``n`` scored windows, and (optionally) held ``for``."""

    k: int = Field(default=3, ge=1)
    n: int = Field(default=5, ge=1)
    for_: Duration = Field(default=0.0, alias="for")

    def gate(self) -> Gate:
        """The lifecycle gate."""
        return Gate(min(self.k, self.n), self.n, self.for_)


class CalibrateConfig(StrictModel):
    """What ``edge-agent calibrate`` accepts before it writes a card."""

    min_windows: int = Field(default=3600, ge=1)
    max_change: float = Field(default=2.0, gt=1.0)


class RebaselineConfig(StrictModel):
    """The automatic "new normal": an alert open ``after`` on a steady state re-baselines."""

    auto: OnOff = "off"
    after: Duration = 1800.0
    steady: float = Field(default=0.5, gt=0.0)


class PrognosisConfig(StrictModel):
    """How an asset's remaining life is estimated and how often it goes upstream.

    ``type``: ``model`` (the asset's model is a prognostic one: its RUL output),
    ``trend`` (a robust linear trend of the health index of the asset's anomaly
    model, extrapolated to the alarm threshold), ``auto`` (``model`` when the
    model's card says ``prognostic``, else ``trend``).
    """

    type: Literal["auto", "model", "trend"] = "auto"
    every: Duration = Field(default=60.0, gt=0.0)
    window: Duration = Field(default=3600.0, gt=0.0)
    min_points: int = Field(default=30, ge=3)
    confidence: float = Field(default=0.9, gt=0.0, lt=1.0)


class AssetConfig(StrictModel):
    """A machine watched by an anomaly model or a prognostic model."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-.]+$")
    model: str
    signals: list[str] = Field(min_length=1)
    mode: Literal["live", "shadow"] = "live"
    threads: int = Field(default=1, ge=1)
    engine: Literal["auto", "onnxruntime"] = "auto"
    """``auto``: the numpy engine when it runs the ONNX graph exactly, else onnxruntime."""
    threshold: float | None = Field(default=None, gt=0.0)
    clear_below: float = Field(default=0.8, gt=0.0, le=1.0)
    critical_above: float = Field(default=2.0, ge=1.0)
    raise_after: DebounceConfig = Field(default_factory=DebounceConfig)
    clear_after: DebounceConfig = Field(default_factory=lambda: DebounceConfig(k=5, n=5))
    fill_limit: Duration | None = None
    settle: Duration = 2.0
    reload: Annotated[Literal["watch", "off"], switch] = "watch"
    run_state: str | None = None
    calibrate: CalibrateConfig = Field(default_factory=CalibrateConfig)
    rebaseline: RebaselineConfig = Field(default_factory=RebaselineConfig)
    prognosis: PrognosisConfig | None = None

    @field_validator("run_state")
    @classmethod
    def _run_state(cls, value: str | None) -> str | None:
        return None if value is None else check_run_state(value)


class _RuleBase(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-.]+$")
    signal: str
    asset: str = ""
    severity: Literal["info", "warning", "critical"] = "warning"
    for_: Duration = Field(default=0.0, alias="for")
    clear_for: Duration = 0.0
    max_age: Duration = 60.0
    run_state: str | None = None

    @field_validator("run_state")
    @classmethod
    def _run_state(cls, value: str | None) -> str | None:
        return None if value is None else check_run_state(value)

    @property
    def asset_name(self) -> str:
        """The asset of the alert: ``asset``, else the signal's source name."""
        return self.asset or self.signal.split(".", 1)[0]


class ThresholdRuleConfig(_RuleBase):
    """The value above ``above`` or below ``below`` for ``for``."""

    type: Literal["threshold"]
    above: float | None = None
    below: float | None = None
    hysteresis: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _one_limit(self) -> ThresholdRuleConfig:
        if self.above is None and self.below is None:
            raise ValueError("a threshold rule needs `above`, `below` or both")
        return self


class RateRuleConfig(_RuleBase):
    """A change larger than ``max_change`` within ``over``."""

    type: Literal["rate"]
    max_change: float = Field(gt=0.0)
    over: Duration = 60.0
    hysteresis: float = Field(default=0.0, ge=0.0)


class FlatlineRuleConfig(_RuleBase):
    """A stuck sensor: no change beyond ``tolerance`` during ``for``."""

    type: Literal["flatline"]
    tolerance: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _needs_span(self) -> FlatlineRuleConfig:
        if self.for_ <= 0:
            raise ValueError("a flatline rule needs `for` (how long a value may stay unchanged)")
        return self


class BadQualityRuleConfig(_RuleBase):
    """BAD quality (or silence for ``max_age``) lasting ``for``."""

    type: Literal["bad_quality"]


RuleConfig = Annotated[
    ThresholdRuleConfig | RateRuleConfig | FlatlineRuleConfig | BadQualityRuleConfig,
    Field(discriminator="type"),
]


class AlarmsConfig(StrictModel):
    """Alarm management shared by every alert: chattering and shelving."""

    chatter_count: int = Field(default=3, ge=1)
    chatter_within: Duration = 600.0
    chatter_hold: Duration = 600.0
    max_shelve: Duration = Field(default=8 * 3600.0, gt=0.0)

    def chatter(self) -> Chatter:
        """The lifecycle's chattering settings."""
        return Chatter(self.chatter_count, self.chatter_within, self.chatter_hold)


class DetectConfig(StrictModel):
    """Config of detection: assets scored by models, and rules."""

    interval: Duration = 1.0
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    assets: list[AssetConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    source_down: Annotated[Duration | Literal["off"], switch] = 30.0
    """A source whose link stays down this long raises a "<source>-down" alert."""

    @field_validator("assets")
    @classmethod
    def _assets_unique(cls, assets: list[AssetConfig]) -> list[AssetConfig]:
        names = Counter(a.name for a in assets)
        twice = sorted(n for n, times in names.items() if times > 1)
        if twice:
            raise ValueError(f"asset name(s) used twice: {twice}")
        return assets

    @model_validator(mode="after")
    def _causes_unique(self) -> DetectConfig:
        # The cause keys the open alert: (asset, "model") is the asset's model.
        keys = Counter((r.asset_name, r.name) for r in self.rules)
        keys.update((a.name, "model") for a in self.assets)
        twice = sorted({f"{a}/{n}" for (a, n), times in keys.items() if times > 1})
        if twice:
            raise ValueError(f"alert cause(s) used twice for one asset: {twice}")
        return self
