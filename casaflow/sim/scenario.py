"""Scenario files: what the simulated city looks like, how busy it is, and which incidents to stage.

Built-in scenarios ship as YAML beside this module (`scenarios/NAME.yaml`); a path to a YAML file works too.
"""

from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from casaflow.detections import CLASS_NAMES



class ScenarioError(ValueError):
    """Unknown scenario, unreadable or malformed scenario file."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Model):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class VideoSpec(_Model):
    width_px: int = Field(default=640, ge=160, le=3840, multiple_of=2)
    height_px: int = Field(default=360, ge=120, le=2160, multiple_of=2)
    fps: int = Field(default=25, ge=1, le=60)
    crf: int = Field(default=23, ge=0, le=51, description="libx264 constant rate factor")
    gop: int = Field(default=50, ge=1, le=600, description="keyframe interval, frames")


class NetworkSpec(_Model):
    columns: int = Field(default=3, ge=2, le=12, description="north-south streets")
    rows: int = Field(default=3, ge=2, le=12, description="east-west streets")
    block_m: Range = Field(default=Range(low=170, high=230), description="spacing between parallel streets")
    arterial_lanes: Range = Field(default=Range(low=2, high=3), description="lanes per direction on arterials")
    street_lanes: Range = Field(default=Range(low=1, high=2), description="lanes per direction on streets")
    one_way_share: float = Field(default=0.34, ge=0, le=1, description="share of non-arterial streets that are one-way")
    arterial_speed_kmh: float = Field(default=60, gt=0, le=130)
    street_speed_kmh: float = Field(default=40, gt=0, le=130)
    lane_width_m: float = Field(default=3.3, ge=2.5, le=4.5)


class DemandSpec(_Model):
    free_flow_vph_per_lane: float = Field(default=150, ge=0, le=2000, description="entering demand before the peak")
    peak_vph_per_lane: float = Field(default=620, ge=0, le=2000, description="entering demand at the peak")
    peak_start_s: float = Field(default=90, ge=0, description="recorded time when the ramp to the peak begins")
    peak_ramp_s: float = Field(default=60, gt=0)
    mix: dict[str, float] = Field(
        default={"car": 0.8, "bus": 0.04, "truck": 0.05, "motorcycle": 0.08, "bicycle": 0.03},
        description="vehicle class shares (normalised)",
    )
    pedestrians_per_hour: float = Field(default=900, ge=0, description="walkers entering the sidewalks")

    @field_validator("mix")
    @classmethod
    def _known_classes(cls, mix: dict[str, float]) -> dict[str, float]:
        unknown = set(mix) - (set(CLASS_NAMES) - {"pedestrian"})
        if unknown:
            raise ValueError(f"unknown vehicle classes {sorted(unknown)}")
        if any(share < 0 for share in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError("class shares must be non-negative and not all zero")
        return mix


class CameraSpec(_Model):
    count: int = Field(default=8, ge=1, le=64)
    height_m: Range = Field(default=Range(low=6, high=12))
    pitch_deg: Range = Field(default=Range(low=14, high=24), description="down-tilt below the horizon")
    focal_px: Range = Field(default=Range(low=480, high=620), description="at the video width")
    intersection_share: float = Field(default=0.5, ge=0, le=1, description="cameras facing a signalised stop line")


class IncidentSpec(_Model):
    type: Literal[
        "stopped_vehicle", "collision", "wrong_way", "red_light", "illegal_stopping", "speeding", "pedestrian_on_road"
    ]
    at_s: float = Field(ge=0, description="recorded time around which the incident is staged")
    duration_s: float = Field(default=60, gt=0, description="how long a stop lasts")
    count: int = Field(default=1, ge=1, le=20, description="how many to stage, spread after at_s")


class PoolSpec(_Model):
    """Cameras that replay the clips of another rendered scenario (load tests)."""

    scenario: str = Field(description="the scenario whose rendered clips the cameras replay")
    cameras: int = Field(ge=1, le=10_000)
    districts: dict[str, list[float]] = Field(
        description="district name -> [lat, lon] of its centre; cameras are spread over them"
    )


class Scenario(_Model):
    name: str
    description: str = ""
    city: str = "Casablanca"
    origin_lat: float = Field(default=33.5731, ge=-90, le=90)
    origin_lon: float = Field(default=-7.5898, ge=-180, le=180)
    start_time: datetime = Field(
        default=datetime(2026, 3, 2, 7, 55, tzinfo=timezone.utc),
        description="UTC time of the first recorded frame; a whole minute so that windows align",
    )
    duration_s: float = Field(default=300, gt=0, le=7200)
    warmup_s: float = Field(default=120, ge=0, le=3600, description="simulated before recording starts")
    analysis_fps: float = Field(default=5, gt=0, le=60)
    window_s: float = Field(default=60, gt=0)
    video: VideoSpec = VideoSpec()
    network: NetworkSpec = NetworkSpec()
    demand: DemandSpec = DemandSpec()
    cameras: CameraSpec = CameraSpec()
    incidents: list[IncidentSpec] = Field(default_factory=list)
    pool: PoolSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Scenario":
        if (self.start_time.timestamp() % self.window_s) != 0:
            raise ValueError(f"start_time must be a multiple of window_s ({self.window_s:g} s) since the epoch")
        if 1000 % self.video.fps:
            raise ValueError("video.fps must divide 1000 (one SUMO step of whole milliseconds per frame)")
        return self

    @field_validator("start_time")
    @classmethod
    def _whole_minute_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        if value.second or value.microsecond:
            raise ValueError("start_time must fall on a whole minute")
        return value.astimezone(timezone.utc)


def builtin_scenarios() -> list[str]:
    folder = resources.files("casaflow.sim") / "scenarios"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        try:
            text = path.read_text()
        except OSError as exc:
            raise ScenarioError(f"cannot read scenario file {path}: {exc.strerror or exc}") from exc
        source = str(path)
    else:
        if name_or_path not in builtin_scenarios():
            raise ScenarioError(
                f"unknown scenario {name_or_path!r}; built-in: {', '.join(builtin_scenarios())} (or a path to a .yaml)"
            )
        text = (resources.files("casaflow.sim") / "scenarios" / f"{name_or_path}.yaml").read_text()
        source = name_or_path
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"scenario {source} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario {source} must be a mapping")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ScenarioError(f"scenario {source}: {where}: {first['msg']}") from exc
