"""The camera inventory (`cameras.yaml`): the contract between the city, the simulator and the pipeline.

One pydantic model per concern, `extra="forbid"` so that a typo fails loudly. Image coordinates are
pixels of the camera's frame; ground coordinates are metres in the city's local east/north frame.
"""

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from casaflow.rules import IncidentRules

PointUV = Annotated[list[float], Field(min_length=2, max_length=2, description="image point [u, v], pixels")]
LonLat = Annotated[list[float], Field(min_length=2, max_length=2, description="[lon, lat], degrees")]


class InventoryError(ValueError):
    """The inventory file is missing, unreadable or does not follow the contract."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Calibration(_Model):
    homography: list[list[float]] = Field(
        description="3x3 matrix mapping image pixels [u, v, 1] to ground metres [x, y, 1] (up to scale)"
    )

    @field_validator("homography")
    @classmethod
    def _is_3x3_invertible(cls, value: list[list[float]]) -> list[list[float]]:
        matrix = np.asarray(value, dtype=np.float64)
        if matrix.shape != (3, 3) or not np.isfinite(matrix).all():
            raise ValueError("homography must be a 3x3 matrix of finite numbers")
        if abs(np.linalg.det(matrix)) < 1e-12:
            raise ValueError("homography must be invertible")
        return value

    @property
    def image_to_ground(self) -> np.ndarray:
        return np.asarray(self.homography, dtype=np.float64)


class Segment(_Model):
    id: str = Field(min_length=1, description="globally unique segment id")
    name: str = Field(default="", description="street name and direction, for operators")
    zone: list[PointUV] = Field(min_length=3, description="image polygon of the segment's lanes in view")
    count_line: list[PointUV] = Field(min_length=2, max_length=2, description="image line across the lanes")
    direction_deg: float = Field(ge=0, lt=360, description="travel bearing, compass degrees")
    lanes: int = Field(ge=1, le=8)
    length_m: float = Field(gt=0, description="length of the zone along the road")
    speed_limit_kmh: float = Field(gt=0, le=150)
    geometry: list[LonLat] = Field(min_length=2, description="segment centre line in lon/lat, for the map")


class StopLine(_Model):
    id: str = Field(min_length=1)
    segment_id: str = Field(description="the approach segment this stop line ends")
    line: list[PointUV] = Field(min_length=2, max_length=2, description="image line of the stop line")
    signal_region: list[float] = Field(
        min_length=4, max_length=4, description="image box [x1, y1, x2, y2] of the signal head"
    )


class NoStoppingZone(_Model):
    id: str = Field(min_length=1)
    segment_id: str
    zone: list[PointUV] = Field(min_length=3, description="image polygon where stopping is forbidden")
    max_stop_s: float = Field(default=30.0, gt=0, description="stops longer than this are infractions")


class Camera(_Model):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(min_length=1, description="anything PyAV opens; relative paths are relative to the inventory")
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    analysis_fps: float = Field(default=5.0, gt=0, le=60)
    name: str = ""
    district: str = ""
    calibration: Calibration
    segments: list[Segment] = Field(min_length=1)
    stop_lines: list[StopLine] = Field(default_factory=list)
    no_stopping_zones: list[NoStoppingZone] = Field(default_factory=list)
    incident_rules: dict[str, float | int | None] = Field(
        default_factory=dict, description="this camera's overrides of the city's incident_rules, field by field"
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> "Camera":
        segment_ids = {segment.id for segment in self.segments}
        for item in (*self.stop_lines, *self.no_stopping_zones):
            if item.segment_id not in segment_ids:
                raise ValueError(f"{item.id} refers to unknown segment {item.segment_id!r}")
        return self

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)


class Inventory(_Model):
    city: str = Field(min_length=1)
    start_time: datetime | None = Field(
        default=None, description="UTC time of pts 0 for recorded or simulated clips"
    )
    incident_rules: IncidentRules = Field(default_factory=IncidentRules, description="city-wide incident thresholds")
    cameras: list[Camera] = Field(min_length=1)

    @field_validator("start_time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> "Inventory":
        for kind, ids in (
            ("camera", [camera.id for camera in self.cameras]),
            ("segment", [segment.id for camera in self.cameras for segment in camera.segments]),
        ):
            duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(ids) != len(set(ids)) else []
            if duplicates:
                raise ValueError(f"duplicate {kind} ids: {', '.join(duplicates[:5])}")
        return self

    @model_validator(mode="after")
    def _camera_rules_apply(self) -> "Inventory":
        for camera in self.cameras:
            try:
                self.rules_for(camera)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise ValueError(f"camera {camera.id} incident_rules.{first['loc'][0]}: {first['msg']}") from None
        return self

    def rules_for(self, camera: Camera) -> IncidentRules:
        """The city's incident rules with the camera's overrides."""
        return self.incident_rules.with_overrides(camera.incident_rules)

    def segment_bearings_deg(self) -> dict[str, float]:
        """Every segment's travel bearing, by segment id."""
        return {segment.id: segment.direction_deg for camera in self.cameras for segment in camera.segments}

    def camera(self, camera_id: str) -> Camera:
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(camera_id)


def redact_url(url: str) -> str:
    """The URL with any user:password replaced by `***`, safe for logs and API responses."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate `cameras.yaml`; raises InventoryError with a one-line reason."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise InventoryError(f"inventory {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise InventoryError(f"inventory {path} must be a mapping with 'city' and 'cameras'")
    try:
        return Inventory.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InventoryError(f"inventory {path}: {where}: {first['msg']} ({exc.error_count()} error(s))") from exc


def save_inventory(inventory: Inventory, path: str | Path) -> None:
    """Write `cameras.yaml` (timestamps as ISO 8601 UTC). Of the city's incident rules only those set away
    from the defaults are written: the others keep following the code's defaults as they improve."""
    data = inventory.model_dump(mode="json", exclude_defaults=False)
    data["incident_rules"] = inventory.incident_rules.model_dump(mode="json", exclude_defaults=True)
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120))
