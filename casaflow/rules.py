"""Incident-rule thresholds, set city-wide and per camera in the inventory (`cameras.yaml`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from casaflow.measures import QUEUING_BELOW_RATIO


class IncidentRules(BaseModel):
    """Thresholds of the incident rules: the inventory's `incident_rules` for the city, which a camera's own
    `incident_rules` mapping overrides field by field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_track_confidence: float = Field(default=0.6, ge=0, le=1, description="tracks never detected this surely are counted but raise nothing")
    still_radius_m: float = Field(default=1.5, gt=0, le=10, description="a track within this radius is stationary")
    stopped_vehicle_s: float = Field(default=6.0, gt=0, le=600, description="standing this long in a lane is a stopped vehicle")
    stopped_clear_s: float = Field(default=3.0, ge=0, le=600, description="no queue, jam or red signal ahead for this long before raising a stopped vehicle or illegal stopping")
    passing_speed_mps: float = Field(default=3.0, gt=0, le=30, description="a vehicle passing a stopped one moves at least this fast")
    min_passing_vehicles: int = Field(default=1, ge=0, le=20, description="vehicles that must pass a stopped vehicle (0: none)")
    queue_gap_m: float = Field(default=12.0, gt=0, le=50, description="a stationary vehicle this close ahead in the lane makes a queue")
    jam_reach_m: float = Field(default=30.0, ge=0, le=200, description="standing traffic this far ahead makes a jam, not a stopped vehicle")
    jam_speed_mps: float = Field(default=2.0, gt=0, le=30, description="traffic ahead slower than this stands")
    lane_halfwidth_m: float = Field(default=1.6, gt=0, le=5, description="lateral tolerance of 'the same lane'")
    signal_reach_m: float = Field(default=120.0, ge=0, le=500, description="queues this far upstream of a stop line may be held by it")
    queue_discharge_s: float = Field(default=15.0, ge=0, le=120, description="a queue still discharges this long after green")
    collision_min_speed_mps: float = Field(default=4.0, gt=0, le=40, description="mean speed over collision_approach_s before standing")
    collision_approach_s: float = Field(default=3.0, gt=0, le=10, description="time before standing that is searched for the contact")
    collision_decel_mps2: float = Field(default=6.0, gt=0, le=30, description="braking harder than this would not have stopped the vehicle behind")
    collision_confirm_s: float = Field(default=1.0, ge=0, le=30, description="both must stand this long after the impact")
    contact_margin_m: float = Field(default=1.0, ge=0, le=5, description="added to the length between two vehicles' anchors when their footprints meet (an anchor at 50 m is off by up to a metre)")
    wrong_way_distance_m: float = Field(default=10.0, gt=0, le=200, description="distance against the segment's direction")
    wrong_way_min_speed_mps: float = Field(default=2.0, gt=0, le=40, description="speed against the direction over that distance")
    wrong_way_margin_m: float = Field(default=0.8, ge=0, le=5, description="depth inside the zone that counts")
    red_light_min_speed_mps: float = Field(default=3.0, ge=0, le=30, description="speed through the stop line that makes a crossing")
    red_light_past_m: float = Field(default=2.0, ge=0, le=20, description="distance beyond the stop line that confirms a crossing")
    signal_stale_s: float = Field(default=2.0, gt=0, le=30, description="a signal reading older than this is unknown")
    signal_min_contrast: float = Field(default=20.0, gt=0, le=500, description="lit lamp score over the next lamp (chroma along the lamp's colour + half the luma above the head's median)")
    speeding_tolerance_kmh: float = Field(default=10.0, ge=0, le=100, description="speed over the limit that is tolerated")
    speeding_distance_m: float = Field(default=20.0, gt=0, le=500, description="minimum distance timed through the zone (edge to edge where both edges are seen)")
    pedestrian_min_s: float = Field(default=1.0, ge=0, le=60, description="time in the lanes before raising")
    pedestrian_max_speed_mps: float = Field(default=3.5, gt=0, le=15, description="faster 'pedestrians' are misread cyclists")
    pedestrian_margin_m: float = Field(default=0.3, ge=0, le=5, description="depth inside the lanes that counts towards pedestrian_min_s")
    pedestrian_standing_depth_m: float = Field(default=1.0, ge=0, le=5, description="depth a pedestrian standing still must reach: near the edge, that is a car's edge read as a pedestrian, or someone at the kerb")
    crossing_clearance_m: float = Field(default=6.0, ge=0, le=50, description="pedestrians this close to a stop line are at a crossing")
    illegal_stopping_s: float | None = Field(default=None, gt=0, le=3600, description="overrides the zones' max_stop_s")
    congestion_ratio: float = Field(default=QUEUING_BELOW_RATIO, gt=0, le=1, description="speed ratio below which a segment is congested")
    congestion_end_ratio: float = Field(default=0.30, gt=0, le=1, description="speed ratio at or above which a congestion ends (hysteresis: no flapping at the threshold)")
    congestion_early_s: float = Field(default=8.0, ge=0, le=3600, description="window time before a running estimate may raise")
    congestion_min_vehicle_s: float = Field(default=60.0, ge=0, le=3600, description="vehicle-seconds a running estimate needs (a few cars standing for a moment are a red queue's tail more often than a jam)")
    congestion_standing_ratio: float = Field(default=0.15, gt=0, le=1, description="speed ratio the last few seconds (the meter's RECENT_S) must be under for a running estimate to raise: traffic at a stand now, not a jam dissolving before its window closes")
    window_s: float = Field(default=60.0, gt=0, le=3600, description="measurement window, as the SegmentMeter's")
    history_s: float = Field(default=120.0, ge=10, le=3600, description="seconds of trajectory kept per track")
    forget_s: float = Field(default=30.0, gt=0, le=600, description="a track unseen this long is forgotten")

    @model_validator(mode="after")
    def _end_above_start(self) -> IncidentRules:
        if self.congestion_end_ratio < self.congestion_ratio:
            raise ValueError(
                f"congestion_end_ratio ({self.congestion_end_ratio}) must be at least congestion_ratio ({self.congestion_ratio})"
            )
        return self

    def with_overrides(self, overrides: dict[str, float | int | None]) -> IncidentRules:
        """These rules with some fields replaced (validated: an unknown field or a bad value raises)."""
        return IncidentRules.model_validate({**self.model_dump(), **overrides}) if overrides else self
