"""Incident and infraction detection over one camera's tracks: the rules of DESIGN.md's incident types.

Every rule reads the tracks' ground trajectories (metres, the camera's homography) against the
inventory's zones, mapped once from the image to the ground, for the tracks detected at least once with
`min_track_confidence` (the meter counts fainter tracks too; an alert needs an object someone can see):
- `speeding`: the speed along the segment over the passage of its front through its zone, timed from
  edge to edge as a speed trap times it (or to where the track was lost), over at least
  `speeding_distance_m` timed without an identity switch, above the limit plus `speeding_tolerance_kmh`: a
  section speed, so a driver braking hard from a speed into a queue ahead is judged on the section, not
  on its first metres; raised as the vehicle leaves the zone (or `LOST_S` after it was lost in it);
  starts at zone entry;
- `wrong_way`: at least `wrong_way_distance_m` travelled against the segment's direction inside its zone,
  at `wrong_way_min_speed_mps` or more, half of it at least in view (not in one leap over a gap in the
  track) and without an identity switch; starts at zone entry;
- `red_light`: the vehicle's front (moving median; placed a typical length ahead of the anchor for traffic
  driving away from the camera) crosses a stop line at `red_light_min_speed_mps` or more (net) and goes
  `red_light_past_m` beyond it while the signal, read from its image region or an external feed, is red;
  judged on its settled points, or on all of them `LOST_S` after it was lost if two lie past the line (the
  last by its anchor's error more); not a turner that stood at the line on green (`_waited_on_green`): it
  clears the junction;
  starts at the crossing (a queue standing at the line jitters across it without moving);
- `stopped_vehicle`: stationary in a segment's zone for `stopped_vehicle_s` while the segment's other
  traffic moves past it, with no stationary vehicle just ahead in its lane (a queue), no standing traffic
  ahead in its lane or the next (a jam), the road ahead in view for a queue's gap, and no red signal
  holding it for the last `stopped_clear_s` (a queue ahead that loses its track for a moment does not make
  a breakdown); starts when it stood;
- `illegal_stopping`: stationary in a no-stopping zone beyond the zone's `max_stop_s`, neither queued nor
  stuck in a jam in its own lane for the last `stopped_clear_s` (one held up behind a standing vehicle
  follows it off when it leaves); starts at the stop plus the allowed time;
- `collision`: a vehicle that arrived moving (`collision_min_speed_mps` over `collision_approach_s`) and
  stands with its footprint meeting another standing vehicle's in the same lane (closer than the shorter
  vehicle's length plus `contact_margin_m`, or having driven into it) by the time it stood, the two seen
  apart first (one truck can have two boxes): the impact is what stopped it; starts at the contact. Or a
  standing vehicle that one behind it in its lane was closing on too fast to stop (more than
  `collision_decel_mps2` needed in the gap to its typical length, at `VANISHED_STRIKER_MIN_MPS` or faster)
  and without braking when it vanished there: one box covers both after the impact (a two-wheeler, which
  filters past standing traffic and vanishes behind it, at `TWO_WHEELER_STRIKER_MIN_MPS` or faster; where
  traffic comes towards the camera the one ahead hides it).
  Towards the camera, also one behind seen stopping against it, harder than `collision_decel_mps2` allows,
  before it was hidden;
- `pedestrian_on_road`: a pedestrian inside a segment's zone, away from stop-line crossings, for
  `pedestrian_min_s` since it stepped `pedestrian_margin_m` in, now deeper in than two pixels of its box's
  bottom edge span on the ground (`ANCHOR_ERROR_PX`; seed 246 cam03: pedestrians walking along the sidewalk
  at the far end of the view, where a pixel spans 0.8 m, raised three times; seed 255 cam08: a jaywalker
  crossed the 1.7 m of a lane deeper than that in 0.9 s), if standing still at least
  `pedestrian_standing_depth_m` into it (a car's edge read as a pedestrian, or someone at the kerb, stands
  within an anchor's error of the edge: seeds 222 cam04, 234 cam02; a jaywalker walks in), at walking pace
  (`pedestrian_max_speed_mps`: faster is a misread cyclist), not detected as a car lately
  (`FOUR_WHEELERS_SEEN_S`: a track switched onto a car keeps its votes), and after a leap onto another road
  user judged from the leap, on mostly pedestrians' boxes since; starts when it stepped in;
- `congestion`: a segment whose speed ratio is below `congestion_ratio` (the queuing and stationary jam
  classes), raised early from the meter's open window (`SegmentMeter.open_windows`: the closed windows'
  space-mean speed, so far) once it holds `congestion_min_vehicle_s` (two cars standing for a moment at a red
  out of sight read near zero; 90 of them right after a window at level of service C or better, tried against
  red queues about to discharge, found the same 191 of 195 jams of 22 tuning seeds with the same 8 false
  alarms, 1.2 s later on average) and its traffic is at a stand now (`OpenWindow.recent_speed_ratio` under
  `congestion_standing_ratio`: on the ten tuning seeds, half the false alarms were raised as a slow first half
  of a window began to flow, which then closed at 0.27 to 0.35, and waiting for a stand delayed the true jams
  by 0.9 s on average; on held-out seeds 249-250 it prevented none and delayed them by 4.8 s); then confirmed
  or ended by the closed windows; ends at the first closed window at or above `congestion_end_ratio`
  (hysteresis, so a segment hovering at the threshold raises one incident, not one per window); starts at the
  first window's start. A queue standing that long at a red is a jam by the window's speed too: waiting for a
  green to discharge it delayed every early raise on the twelve tuning seeds (by 6 to 34 s) and held back none
  that the closed window did not confirm.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Literal

import numpy as np
import pyarrow as pa

from casaflow.detections import CLASS_IDS, TYPICAL_LENGTH_M, Detections
from casaflow.geo import EARTH_RADIUS_M, LocalFrame
from casaflow.geometry import along_across_m, apply_homography, away_from_camera_xy, points_in_polygon
from casaflow.inventory import Camera
from casaflow.kinematics import leap_times_s, leaps_since, longest_unseen_s, too_young_since
from casaflow.measurement import MAX_GAP_S, OpenWindow, SegmentWindow
from casaflow.rules import IncidentRules
from casaflow.tracking import Track

INCIDENT_TYPES: tuple[str, ...] = (
    "stopped_vehicle",
    "collision",
    "wrong_way",
    "red_light",
    "illegal_stopping",
    "speeding",
    "pedestrian_on_road",
    "congestion",
)
INCIDENT_STATUSES: tuple[str, ...] = ("open", "acknowledged", "dispatched", "resolved")
SIGNAL_STATES: tuple[str, ...] = ("r", "y", "g")
SignalState = Literal["r", "y", "g"]
SignalFeed = Callable[[str, datetime], "SignalState | None"]
"""An external signal feed: `(stop_line_id, ts) -> 'r' | 'y' | 'g' | None`; None falls back to the image."""

SEVERITY: MappingProxyType = MappingProxyType(
    {
        "collision": 3,
        "pedestrian_on_road": 3,
        "wrong_way": 3,
        "stopped_vehicle": 2,
        "red_light": 2,
        "congestion": 2,
        "speeding": 1,
        "illegal_stopping": 1,
    }
)
"""Default severity by type: 1 low, 2 medium, 3 high."""


PEDESTRIAN = CLASS_IDS["pedestrian"]
ARRIVAL_S = 1.0
"""A striker's arrival speed is fitted over this long before it stood."""
STOP_SPOT_M = 1.0
"""Where a vehicle stands is known to about this: a shorter distance to go is taken as this."""
DRIVE_OFF_CONFIRM_S = 3.0
"""A stationary incident ends this long after its track drove off the spot unless a vehicle stands there
again: at range, a passer's box overlaps the standing car's, the track slides onto it and drives off
smoothly, and the car is found again under a new id (seed 243 cam01: a broken-down car 190 m away raised
three times in 80 s, the second a second after the first ended)."""
FOUR_WHEELERS_SEEN_S = 1.0
"""A 'pedestrian' whose boxes over this long were mostly cars, buses or trucks follows one: a track that
switched from a pedestrian onto a car keeps its votes for many seconds (seeds 222 cam01, 223 cam03). Boxes
of two-wheelers do not count against it: a jaywalker seen side-on is read as a motorcycle (seed 224)."""
FOUR_WHEELERS = frozenset({CLASS_IDS["car"], CLASS_IDS["bus"], CLASS_IDS["truck"]})
"""Classes the detector does not mistake a pedestrian for (it does a motorcycle, for one seen side-on)."""
LENGTH_CLASS_SEEN_S = 2.0
"""A four-wheeler is as long as the four-wheeler class of `LENGTH_CLASS_SHARE` of its boxes over this long,
where that differs from its votes: a track switched from a truck onto a car keeps the truck's votes for many
seconds, and a front placed a truck's length ahead of the car crossed the stop line it stood behind (seed 240
cam02)."""
LENGTH_CLASS_SHARE = 0.8
"""Share of its recent boxes a class needs to give a four-wheeler its length (far boxes flicker between
classes)."""
PEDESTRIAN_MIN_VOTE_SHARE = 1 / 3
"""A two-wheeler's track with at least this share of its class votes for pedestrians may be one walking."""
WALKING_MPS = 0.5
"""A pedestrian whose net speed over `PEDESTRIAN_PACE_S` is slower than this stands still
(`pedestrian_standing_depth_m`); a standing box's jitter has a path."""
PEDESTRIAN_PACE_S = 3.0
"""A 'pedestrian' is also judged by its net speed over this long: a far cyclist's box jitters and slows
for a second now and then, while its class flickers to pedestrian."""
SPEEDING_EXIT_M = 1.0
"""A front this far past a zone's edge has left it: within an anchor's error of the edge, a speeder braking
to a stand at the far end of the view may still be inside, and a passage lasts until the front leaves
(seed 222 cam01: a car braked from 85 km/h to stand 0.1 m out by its anchor, inside by the truth)."""
MEDIAN_STEPS = 3
"""A passage is judged on at least this many steps seen, so that their median is one road user's motion."""
SPEED_TRAP_MAX_GAP_S = 0.5
"""A zone edge's crossing is interpolated between points at most this far apart."""
LOST_S = 0.5
"""A vehicle unseen this long has ended, as far as the camera can measure it, its passage through a zone
and its crossing of a stop line: both are judged on the points it has."""
TWO_WHEELERS = frozenset({CLASS_IDS["motorcycle"], CLASS_IDS["bicycle"]})
"""They filter past standing traffic and vanish behind it: judged as strikers only from a higher speed."""
TWO_WHEELER_STRIKER_MIN_MPS = 9.0
"""A two-wheeler is judged to have struck a standing vehicle only if it came at least this fast (32 km/h):
two-wheelers filter up to standing traffic and stop close behind it, and their small boxes lag the stop
(seed 216 cam01: a bicycle at 5.8 m/s stopped against a standing car's rear)."""


def striker_min_speed_mps(class_id: int, min_speed_mps: float) -> float:
    """The speed a striker of `class_id` must have come at: two-wheelers at least `TWO_WHEELER_STRIKER_MIN_MPS`."""
    return max(min_speed_mps, TWO_WHEELER_STRIKER_MIN_MPS) if class_id in TWO_WHEELERS else min_speed_mps


STRUCK_HELD_S = 1.0
"""A standing vehicle lost from sight is held where it stood this long in the search for the contact: the
striker's box can hide it, or take it in, just before the impact (seed 233 cam07)."""
VANISHED_STRIKER_MIN_MPS = 7.0
"""A striker inferred from a track that vanished behind a standing vehicle must have been this fast (25 km/h):
the inference rests on an absence, and cars closing up on a queue at 4.5-5.7 m/s vanished there behind the
standing car or a neighbour (seeds 216 cam03, 218 cam04); a striker seen standing against the struck one
(`_collision`) needs only `collision_min_speed_mps`."""
COLLISION_MAX_UNSEEN_S = 0.6
"""Both vehicles of a collision must be seen standing through the confirmation time (the striker's first,
the struck one's last), and the striker arriving over its last `ARRIVAL_S` (one that vanished, over its last
second seen), never unseen longer than this: a stop, or a speed, inferred across a gap is one track lost and
found on another road user (seed 216 cam04: a car driving on at 7 m/s, lost for 1 s, then found on the car
beside it; seed 223 cam03: a standing car's track lost for 5 s, then found 5 m on, in a bus's path; seed 241
cam08: a car's track lost behind the car ahead for 0.8 s, then found on that standing car; seed 246 cam03: a
car braking to 3 km/h behind a standing car, lost for 1 s, then found on it 7 m on, as if at 7 m/s)."""
BRAKING_SPEED_RATIO = 0.8
"""A vehicle whose speed over its last second fell below this fraction of the two seconds before was
braking for what stood ahead: hidden just behind it, it stopped there far more often than it hit it."""
WRONG_WAY_SEEN_SHARE = 0.5
"""At least this share of the wrong-way distance must be seen driven, in steps each shorter than it: a
track unseen for 3 s behind a standing queue came back 10 m back against it (seed 223 cam03: its box had
jumped to the car behind), while a wrong-way driver hidden for a second by a passing car was seen driving
9 m of its 17."""
SMOOTHING_LAG = 2
"""Points at a trajectory's end whose moving median (window 5) still depends on the edge padding."""
LENGTH_UNCERTAINTY = 0.3
"""One vehicle's length is off its class's typical length by up to this fraction (buses run 10-18 m, trucks
7-12 m): a front placed a typical length ahead of the rear must be this far past a stop line, or
`red_light_past_m` if more, to have crossed it, and two anchors a length apart may be this much further."""
RED_LIGHT_MAX_GAP_S = 1.0
"""A crossing is judged only where the track was seen within this long either side of it: across a longer
gap it may have switched to another road user (seed 232 cam03: a car lost behind a truck just short of the
line; its track took a car crossing the junction 2.2 s later)."""
WAITING_MAX_MPS = 1.0
"""A vehicle at a stop line slower than this (net, over a second) is waiting there."""
NEXT_LANE_HALFWIDTHS = 3
"""A vehicle within this many lane half-widths across is in the same lane or the next one."""
ANCHOR_ERROR_PX = 2.0
"""A box's bottom edge, where its ground point comes from, is off by up to this many pixels: far away, that
is metres on the ground."""
MIN_HEADING_COS = 0.8
"""A vehicle's motion within about 37 degrees of a segment's direction travels along it."""
ACROSS_COS = 0.5
"""Motion more than 60 degrees off a segment's direction crosses it."""

INCIDENT_SCHEMA = pa.schema(
    [
        ("incident_id", pa.string()),
        ("type", pa.string()),
        ("camera_id", pa.string()),
        ("segment_id", pa.string()),
        ("start_ts", pa.timestamp("ms", tz="UTC")),
        ("detected_ts", pa.timestamp("ms", tz="UTC")),
        ("lon", pa.float64()),
        ("lat", pa.float64()),
        ("severity", pa.int64()),
        ("object_ids", pa.list_(pa.string())),
        ("clip_path", pa.string()),
        ("status", pa.string()),
    ]
)
"""The history's `incidents.parquet` (DESIGN.md contract)."""


@dataclass(frozen=True)
class Incident:
    """One incident or infraction, as the core raises it and the aggregator stores it.

    Attributes:
        incident_id: Stable and deterministic: the same event seen in the same frames gets the same id.
        type: One of `INCIDENT_TYPES`.
        camera_id: The camera that saw it.
        segment_id: The segment it happened on.
        start_ts: UTC time the event began, as the system saw it.
        detected_ts: UTC time the alert was raised (the frame's ts).
        lon: Longitude of the event, degrees.
        lat: Latitude of the event, degrees.
        severity: 1 low, 2 medium, 3 high.
        object_ids: Track keys involved, `"{camera_id}/{track_id}"`.
        clip_path: Evidence clip, None until written.
        status: One of `INCIDENT_STATUSES`.
        end_ts: UTC time it ended, None while it lasts (or for instantaneous infractions).
    """

    incident_id: str
    type: str
    camera_id: str
    segment_id: str
    start_ts: datetime
    detected_ts: datetime
    lon: float
    lat: float
    severity: int
    object_ids: tuple[str, ...] = ()
    clip_path: str | None = None
    status: str = "open"
    end_ts: datetime | None = None

    def __post_init__(self) -> None:
        if self.type not in INCIDENT_TYPES:
            raise ValueError(f"unknown incident type {self.type!r}")
        if self.status not in INCIDENT_STATUSES:
            raise ValueError(f"unknown incident status {self.status!r}")
        if not 1 <= self.severity <= 3:
            raise ValueError(f"severity must be 1..3, got {self.severity}")
        if self.start_ts.tzinfo is None or self.detected_ts.tzinfo is None:
            raise ValueError("start_ts and detected_ts must be timezone-aware (UTC)")
        object.__setattr__(self, "object_ids", tuple(self.object_ids))

    def as_row(self) -> dict:
        """The row of the history's `incidents.parquet` (columns of `INCIDENT_SCHEMA`)."""
        return {
            "incident_id": self.incident_id,
            "type": self.type,
            "camera_id": self.camera_id,
            "segment_id": self.segment_id,
            "start_ts": self.start_ts,
            "detected_ts": self.detected_ts,
            "lon": self.lon,
            "lat": self.lat,
            "severity": self.severity,
            "object_ids": list(self.object_ids),
            "clip_path": self.clip_path,
            "status": self.status,
        }


def incident_id(type_: str, camera_id: str, segment_id: str, track_ids: Sequence[int], start_s: float) -> str:
    """`type:camera:segment:track ids:start epoch ms`, the start rounded to the second."""
    tracks = "+".join(str(t) for t in sorted(track_ids)) or "-"
    return f"{type_}:{camera_id}:{segment_id}:{tracks}:{int(round(start_s)) * 1000}"


# -- free functions over arrays ---------------------------------------------------------------------


MIN_SIGNAL_HEAD_PX = 9
"""Shortest signal head region that is read: three stacked lamps of at least 3 px."""


def readable_signal_region(region_xyxy: Sequence[float]) -> bool:
    """Whether a signal head region can be read: at least `MIN_SIGNAL_HEAD_PX` tall and taller than wide.
    A head cut by the frame's edge shows a lamp or two that cannot be told apart: reading one as red
    flagged every vehicle on a green (31 false red-light alarms in two minutes of one camera)."""
    width, height = region_xyxy[2] - region_xyxy[0], region_xyxy[3] - region_xyxy[1]
    return height >= MIN_SIGNAL_HEAD_PX and height >= width


LAMP_CHROMA_DIRECTIONS = np.array([[-0.37, 0.93], [-0.90, 0.45], [-0.24, -0.97]])
"""Unit (U - 128, V - 128) directions of a lit red, amber and green lamp (BT.601 of RGB (255, 50, 35),
(255, 182, 0) and (70, 255, 150)); green lamps are often cyan-green, which keeps V low and U near 128."""


def signal_state(yuv: np.ndarray, region_xyxy: Sequence[float], *, min_contrast: float = 20.0) -> SignalState | None:
    """Reads a three-lamp signal head (red top, amber middle, green bottom) from a YUV420 frame.

    Each third of the region is scored by the 85th percentile, over its pixels, of the chroma along its own
    lamp's colour (`LAMP_CHROMA_DIRECTIONS`) plus half the luma above the region's median: a lit lamp is
    saturated in its colour and bright. Judged by brightness and saturation alone, the sky beside a
    5 px wide head and the lamp's chroma bleeding across thirds (chroma has half the resolution) left the
    lit lamp too small a margin: on seed 204 every green of cam04 and most reds of cam01 read as unknown.
    A pixel's chroma counts only for the lamp colour nearest its hue: red and amber lie 41 degrees apart, so
    a lit red lamp bleeding into the amber third scored three quarters of its strength there as amber
    (seed 218 cam03 read no red in four minutes, seed 223 cam01 none for the first 2 s of each red: 610
    unknown readings of 20,400 on six seeds' heads, 34 with the nearest hue, none read differently).

    Args:
        yuv: (H*3//2, W) uint8 frame, Y then U then V planes (`Frame.yuv`).
        region_xyxy: `x1, y1, x2, y2` pixels of the signal head.
        min_contrast: Score margin of the best third over the second one.

    Returns:
        'r', 'y' or 'g', or None when no lamp stands out, or the region (clipped to the frame) is not
        `readable_signal_region`.
    """
    height = yuv.shape[0] * 2 // 3
    width = yuv.shape[1]
    x1, y1 = max(int(math.floor(region_xyxy[0])), 0), max(int(math.floor(region_xyxy[1])), 0)
    x2, y2 = min(int(math.ceil(region_xyxy[2])), width), min(int(math.ceil(region_xyxy[3])), height)
    if x2 - x1 < 1 or not readable_signal_region((x1, y1, x2, y2)):
        return None
    chroma_rows = height // 4
    u_plane = yuv[height : height + chroma_rows].reshape(height // 2, width // 2)
    v_plane = yuv[height + chroma_rows : height + 2 * chroma_rows].reshape(height // 2, width // 2)
    rows, cols = np.arange(y1, y2), np.arange(x1, x2)
    luma = yuv[y1:y2, x1:x2].astype(np.float32)
    chroma = np.stack((u_plane[np.ix_(rows // 2, cols // 2)], v_plane[np.ix_(rows // 2, cols // 2)]), -1).astype(np.float32) - 128.0
    along = chroma @ LAMP_CHROMA_DIRECTIONS.T
    own_colour = np.where(along == along.max(axis=-1, keepdims=True), np.maximum(along, 0.0), 0.0)
    brightness = 0.5 * np.maximum(luma - np.median(luma), 0.0)
    bounds = np.linspace(0, y2 - y1, 4).round().astype(int)
    thirds = np.array([
        np.percentile(own_colour[a:b, :, lamp] + brightness[a:b], 85) if b > a else 0.0
        for lamp, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
    ])
    order = np.argsort(thirds)
    if thirds[order[2]] - thirds[order[1]] < min_contrast:
        return None
    return SIGNAL_STATES[int(order[2])]


def inside_depth_m(points_xy: np.ndarray, polygon_xy: np.ndarray) -> np.ndarray:
    """Signed distance of points to a polygon's boundary: positive inside, negative outside.

    Args:
        points_xy: (n, 2) ground points, metres.
        polygon_xy: (m, 2) polygon vertices, metres.

    Returns:
        (n,) float64 metres.
    """
    points_xy = np.asarray(points_xy, np.float64).reshape(-1, 2)
    a = polygon_xy
    b = np.roll(polygon_xy, -1, axis=0)
    edge = b - a
    length2 = np.maximum((edge**2).sum(1), 1e-12)
    rel = points_xy[:, None, :] - a[None, :, :]
    along = np.clip((rel * edge[None]).sum(-1) / length2, 0.0, 1.0)
    nearest = a[None] + along[..., None] * edge[None]
    distance = np.sqrt(((points_xy[:, None, :] - nearest) ** 2).sum(-1)).min(axis=1)
    return np.where(points_in_polygon(points_xy, polygon_xy), distance, -distance)


def trailing_run_start(mask: np.ndarray) -> int:
    """Index where the run of True values ending at the last element starts; len(mask) if it is False."""
    n = len(mask)
    if n == 0 or not mask[-1]:
        return n
    false = np.flatnonzero(~np.asarray(mask, bool))
    return int(false[-1]) + 1 if false.size else 0


def moving_median(xy: np.ndarray, *, window: int = 5) -> np.ndarray:
    """(n, 2) points -> (n, 2) centred moving median (edges padded), robust to single-frame jumps."""
    if len(xy) < 3:
        return xy.copy()
    half = window // 2
    padded = np.pad(xy, ((half, half), (0, 0)), mode="edge")
    views = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    return np.median(views, axis=-1)


def stationary_start(xy_m: np.ndarray, *, radius_m: float, smoothed: bool = False) -> int:
    """Index of the first point of the trailing stationary run: every (moving-median) point within radius_m
    of the last one from there on. Equal to len(xy_m) - 1 for a moving track. `smoothed`: xy_m already is."""
    smooth = xy_m if smoothed else moving_median(xy_m)
    distance = np.linalg.norm(smooth - smooth[-1], axis=1)
    return min(trailing_run_start(distance <= radius_m), len(xy_m) - 1)


def fitted_speed_mps(t_s: np.ndarray, along_m: np.ndarray) -> float:
    """Least-squares slope of position along the road over time, m/s (signed); 0 for fewer than 2 points."""
    if len(t_s) < 2 or t_s[-1] <= t_s[0]:
        return 0.0
    t = t_s - t_s.mean()
    return float((t * (along_m - along_m.mean())).sum() / (t * t).sum())


def speed_trap(t_s: np.ndarray, front_m: np.ndarray, entry_m: float, exit_m: float, *, first: int = 0,
               last: int | None = None) -> tuple[float, float]:
    """(distance timed, m; speed, m/s) of a passage as a speed trap (and the simulator's truth) times it: the
    distance between the front's crossings of `entry_m` and `exit_m` (positions along the road) over the time
    between them, each interpolated between the points either side of it if they are at most
    `SPEED_TRAP_MAX_GAP_S` apart.
    The passage is the points `first` to `last` (default: all); those either side only place its crossings
    (a track's point before a gap, or on another vehicle before a switch, is no part of it). Where the first
    point inside has none just before it (found there, or cut by the picture's edge until then) and is less
    than a step in, the entry is put back at its first step's speed; otherwise the passage is timed from its
    first point inside, and to its last. (0, 0) for fewer than two points inside."""
    passage_m = front_m[first : len(front_m) if last is None else last + 1]
    inside = np.flatnonzero((passage_m >= entry_m) & (passage_m <= exit_m)) + first
    if len(inside) < 2:
        return 0.0, 0.0
    p, q = int(inside[0]), int(inside[-1])
    entry_s, entered_m = float(t_s[p]), float(front_m[p])
    if p > 0 and t_s[p] - t_s[p - 1] <= SPEED_TRAP_MAX_GAP_S and front_m[p - 1] < entry_m:
        entry_s -= (front_m[p] - entry_m) / (front_m[p] - front_m[p - 1]) * (t_s[p] - t_s[p - 1])
        entered_m = entry_m
    else:
        step_m, step_s = front_m[p + 1] - front_m[p], max(t_s[p + 1] - t_s[p], 1e-6)
        if 0 < front_m[p] - entry_m <= step_m:
            entry_s -= (front_m[p] - entry_m) / step_m * step_s
            entered_m = entry_m
    exit_s, left_m = float(t_s[q]), float(front_m[q])
    if q + 1 < len(t_s) and t_s[q + 1] - t_s[q] <= SPEED_TRAP_MAX_GAP_S and front_m[q + 1] > exit_m:
        exit_s += (exit_m - front_m[q]) / (front_m[q + 1] - front_m[q]) * (t_s[q + 1] - t_s[q])
        left_m = exit_m
    return float(left_m - entered_m), float((left_m - entered_m) / max(exit_s - entry_s, 1e-6))


def path_speed_mps(t_s: np.ndarray, xy_m: np.ndarray, *, start_s: float, end_s: float) -> float:
    """Mean speed (path length / time) of the points in [start_s, end_s]; 0 for fewer than 2 points."""
    keep = (t_s >= start_s) & (t_s <= end_s)
    if keep.sum() < 2:
        return 0.0
    t, xy = t_s[keep], xy_m[keep]
    if t[-1] <= t[0]:
        return 0.0
    return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum() / (t[-1] - t[0]))


def net_speed_mps(t_s: np.ndarray, xy_m: np.ndarray, *, start_s: float, end_s: float) -> float:
    """Net displacement / time between the first and last points in [start_s, end_s]; 0 for fewer than 2.
    Unlike `path_speed_mps`, a standing object's jitter nets out."""
    keep = np.flatnonzero((t_s >= start_s) & (t_s <= end_s))
    if len(keep) < 2 or t_s[keep[-1]] <= t_s[keep[0]]:
        return 0.0
    return float(np.linalg.norm(xy_m[keep[-1]] - xy_m[keep[0]]) / (t_s[keep[-1]] - t_s[keep[0]]))


def fastest_net_mps(t_s: np.ndarray, xy_m: np.ndarray, *, over_s: float) -> float:
    """Highest net speed between points about `over_s` apart (at least half that); 0 if none are."""
    earlier = np.searchsorted(t_s, t_s - over_s)
    dt_s = t_s - t_s[earlier]
    ok = dt_s >= over_s / 2
    if not ok.any():
        return 0.0
    return float((np.linalg.norm(xy_m[ok] - xy_m[earlier[ok]], axis=1) / dt_s[ok]).max())


def local_frame_for(camera: Camera) -> LocalFrame:
    """Estimates the city's local frame origin from the segments: the ground centroid of each zone against
    the mid-point of its lon/lat centre line (the inventory has no origin of its own)."""
    homography = camera.calibration.image_to_ground
    offsets = []
    for segment in camera.segments:
        centre_xy = apply_homography(homography, np.asarray(segment.zone, np.float64)).mean(axis=0)
        lon, lat = np.asarray(segment.geometry, np.float64).mean(axis=0)
        lat0 = lat - math.degrees(centre_xy[1] / EARTH_RADIUS_M)
        lon0 = lon - math.degrees(centre_xy[0] / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
        if math.isfinite(lon0) and math.isfinite(lat0):
            offsets.append((lon0, lat0))
    if not offsets:
        return LocalFrame(camera.lon, camera.lat)
    lon0, lat0 = np.median(np.asarray(offsets), axis=0)
    return LocalFrame(float(lon0), float(lat0))


# -- per-camera state -------------------------------------------------------------------------------


@dataclass
class _History:
    """One track's recent ground points and their relation to the camera's zones."""

    track_id: int
    class_id: int
    t_s: np.ndarray
    xy_m: np.ndarray
    segment_depth_m: np.ndarray
    """(n, segments) signed depth inside each segment's zone."""
    front_depth_m: np.ndarray
    """(n, segments) the same for the front, a typical length ahead of the anchor for traffic driving away
    from the camera (the anchor is its rear): where a speed trap, and the simulator's truth, time a passage."""
    no_stopping_depth_m: np.ndarray
    """(n, zones) signed depth inside each no-stopping zone."""
    stop_offset_m: np.ndarray
    """(n, stop lines) signed distance beyond each stop line, along the travel direction."""
    stop_lateral: np.ndarray
    """(n, stop lines) position along each stop line, 0..1 between its ends."""
    last_seen_s: float = 0.0
    four_wheeler_share: float = 0.0
    """Share of its boxes over the last `FOUR_WHEELERS_SEEN_S` detected as cars, buses or trucks
    (`Track.class_share`)."""
    pedestrian_vote_share: float = 0.0
    """Share of a two-wheeler's class votes that went to pedestrians (`Track.vote_share`)."""
    recent_classes: tuple[tuple[float, int], ...] = ()
    """A pedestrian's last matched boxes, `(time_s, class_id)` (`Track.recent_classes`)."""
    length_class_id: int = 0
    """The class whose typical length it has (`LENGTH_CLASS_SEEN_S`)."""
    _smooth_xy_m: np.ndarray | None = None

    @property
    def smooth_xy_m(self) -> np.ndarray:
        """Moving median of `xy_m`, computed once per new point and shared by every rule."""
        if self._smooth_xy_m is None:
            self._smooth_xy_m = moving_median(self.xy_m)
        return self._smooth_xy_m

    def upto(self, n: int) -> _History:
        """The history of its first n points: where it went before a gap."""
        arrays = ("t_s", "xy_m", "segment_depth_m", "front_depth_m", "no_stopping_depth_m", "stop_offset_m",
                  "stop_lateral")
        cut = {name: getattr(self, name)[:n] for name in arrays}
        return replace(self, **cut, _smooth_xy_m=None)

    @property
    def is_vehicle(self) -> bool:
        return self.class_id != PEDESTRIAN

    @property
    def length_m(self) -> float:
        return TYPICAL_LENGTH_M[self.length_class_id]

    @property
    def front_in_zone(self) -> np.ndarray:
        """(n, segments) whether the front is in each segment's zone as a speed passage counts it: it leaves
        `SPEEDING_EXIT_M` past the edge."""
        return self.front_depth_m >= -SPEEDING_EXIT_M


@dataclass
class _Open:
    """An open incident's vehicle, which ends it (with the other vehicle, for a collision) when it moves off
    its spot (or is forgotten)."""

    incident: Incident
    track_id: int
    stop_xy_m: np.ndarray
    at_spot_s: float
    """When its vehicle was last seen on the spot."""
    drove_off_s: float | None = None
    """When its track drove off the spot, if it has since (`DRIVE_OFF_CONFIRM_S`)."""


@dataclass
class _StopLineGeometry:
    id: str
    segment_index: int
    start_xy_m: np.ndarray
    unit_xy: np.ndarray
    length_m: float
    normal_xy: np.ndarray
    region_xyxy: list[float]
    anchor_is_rear: bool
    """Traffic crosses the line driving away from the camera: a track's anchor (the footprint's end nearest the
    camera) is its rear, a length behind the front that the law, and the simulator's truth, judge."""
    states: deque = field(default_factory=deque)
    """(ts_s, state) readings, state None when unknown, for `IncidentRules.history_s`: a crossing still in a
    track's history is judged against the signal it had (seed 248 cam01: a turner that waited at the line on
    green crossed it into red; a minute on, the green had gone from a minute's readings, not the crossing)."""


class IncidentDetector:
    """Applies the incident rules to one camera's tracks, frame after frame.

    Args:
        camera: The camera's inventory entry (segments, stop lines, no-stopping zones, homography).
        rules: Thresholds (the camera's, overrides applied: `CameraPipeline` does it).
        signal_feed: Optional external signal states; wins over the image when it returns a state.
    """

    def __init__(self, camera: Camera, *, rules: IncidentRules | None = None, signal_feed: SignalFeed | None = None):
        self.camera = camera
        self.rules = rules or IncidentRules()
        self.signal_feed = signal_feed
        self.local_frame = local_frame_for(camera)
        homography = camera.calibration.image_to_ground
        self._homography = homography
        self._ground_to_image = np.linalg.inv(np.asarray(homography, np.float64).reshape(3, 3))
        self._segment_ids = [s.id for s in camera.segments]
        self._segment_zone_xy = [apply_homography(homography, np.asarray(s.zone, np.float64)) for s in camera.segments]
        bearings = np.radians([s.direction_deg for s in camera.segments])
        self._segment_dir_xy = np.stack([np.sin(bearings), np.cos(bearings)], axis=1)
        self._segment_towards_camera = [
            bool(away_from_camera_xy(homography, np.asarray(seg.zone, np.float64).mean(axis=0))[0] @ direction < 0)
            for seg, direction in zip(camera.segments, self._segment_dir_xy)
        ]
        self._segment_along_m = [(float(along.min()), float(along.max())) for along in (
            zone @ direction for zone, direction in zip(self._segment_zone_xy, self._segment_dir_xy))]
        """Each zone's extent along its travel direction: where a speed trap's entry and exit lines are."""
        self._limits_kmh = np.array([s.speed_limit_kmh for s in camera.segments])
        self._no_stopping = list(camera.no_stopping_zones)
        self._no_stopping_xy = [apply_homography(homography, np.asarray(z.zone, np.float64)) for z in self._no_stopping]
        self._stop_lines = [self._stop_line_geometry(line) for line in camera.stop_lines]
        self._histories: dict[int, _History] = {}
        self._raised: set[tuple[str, int]] = set()
        self._open: dict[tuple[str, int], _Open] = {}
        self._congestion: dict[int, Incident] = {}
        self._lost: list[_History] = []
        self._vanished: list[tuple[_History, np.ndarray | None]] = []
        """`_vanished_vehicles` of this frame."""
        self._last_update_s = -math.inf
        """Four-wheelers not seen this frame, last seen within `collision_confirm_s` + 10 s."""
        self._clear_since_s: dict[int, float] = {}
        """Per standing track: since when no queue, jam or signal has held it (stopped-vehicle debounce)."""

    def _stop_line_geometry(self, line) -> _StopLineGeometry:
        ends = apply_homography(self._homography, np.asarray(line.line, np.float64))
        vector = ends[1] - ends[0]
        length = float(np.linalg.norm(vector))
        unit = vector / max(length, 1e-9)
        normal = np.array([unit[1], -unit[0]])
        index = self._segment_ids.index(line.segment_id)
        if normal @ self._segment_dir_xy[index] < 0:
            normal = -normal
        middle_uv = np.asarray(line.line, np.float64).mean(axis=0, keepdims=True)
        anchor_is_rear = bool(away_from_camera_xy(self._homography, middle_uv)[0] @ normal > 0)
        return _StopLineGeometry(line.id, index, ends[0], unit, length, normal, list(line.signal_region), anchor_is_rear)

    # -- public -------------------------------------------------------------------------------------

    def update(
        self,
        frame_ts: datetime,
        tracked: Detections,
        tracks: Sequence[Track],
        *,
        frame_yuv: np.ndarray | None = None,
        windows: Sequence[SegmentWindow] = (),
        open_windows: Mapping[str, OpenWindow] = MappingProxyType({}),
    ) -> list[Incident]:
        """Feeds one analysed frame.

        Args:
            frame_ts: UTC time of the frame.
            tracked: The frame's tracked detections (kept for the rules' callers; the tracks carry the state).
            tracks: The confirmed tracks of this frame (`ByteTracker.confirmed_tracks`), with ground trajectories.
            frame_yuv: (H*3//2, W) uint8 frame, to read the signals; None leaves them to the feed.
            windows: Segment windows that closed at this frame (`SegmentMeter.update`).
            open_windows: The segments' current windows so far (`SegmentMeter.open_windows`), for
                congestion raised before its window closes.

        Returns:
            Newly raised incidents (`end_ts` None) and incidents that ended at this frame (a copy of the
            raised one with `end_ts` set: congestion runs, stopped vehicles moving off). Both carry the
            same id, so an idempotent store upserts them alike.
        """
        now_s = frame_ts.timestamp()
        self._read_signals(now_s, frame_ts, frame_yuv)
        current = self._ingest(tracks, now_s)
        self._lost = self._lost_vehicles(current, now_s)
        self._vanished = self._vanished_vehicles(current, now_s)
        raised: list[Incident] = []
        for history in current:
            if history.is_vehicle:
                raised += self._vehicle_rules(history, current, now_s, frame_ts)
            if not history.is_vehicle or self._walking_across(history, now_s):
                raised += self._pedestrian_rule(history, now_s, frame_ts)
        raised += self._judge_lost(now_s, frame_ts)
        raised += self._congestion_rules(now_s, frame_ts, windows, open_windows)
        self._last_update_s = now_s
        ended = self._end_stationary(current, now_s)
        self._forget(now_s)
        return raised + ended

    def close(self, last_ts: datetime, windows: Sequence[SegmentWindow]) -> list[Incident]:
        """Judges windows closed without a frame (`SegmentMeter.flush` at the end of a clip or a shutdown),
        at the last frame's time `last_ts`: the congestion they raise or end. Only windows the frames reached
        the end of (within `MAX_GAP_S`): a shutdown's partial window is no window's measure."""
        reached = [w for w in windows if (w.window_end - last_ts).total_seconds() <= MAX_GAP_S]
        return self._congestion_rules(last_ts.timestamp(), last_ts, reached, {})

    def signal(self, stop_line_id: str, ts: datetime) -> SignalState | None:
        """The last known state of a stop line's signal at `ts` (None if unknown or stale)."""
        for line in self._stop_lines:
            if line.id == stop_line_id:
                return self._state_at(line, ts.timestamp())
        raise KeyError(stop_line_id)

    # -- state --------------------------------------------------------------------------------------

    def _read_signals(self, now_s: float, frame_ts: datetime, frame_yuv: np.ndarray | None) -> None:
        for line in self._stop_lines:
            state = self.signal_feed(line.id, frame_ts) if self.signal_feed is not None else None
            if state is None and frame_yuv is not None:
                state = signal_state(frame_yuv, line.region_xyxy, min_contrast=self.rules.signal_min_contrast)
            line.states.append((now_s, state))
            while line.states and now_s - line.states[0][0] > self.rules.history_s:
                line.states.popleft()

    def _state_at(self, line: _StopLineGeometry, t_s: float) -> SignalState | None:
        for reading_s, state in reversed(line.states):
            if reading_s <= t_s + 1e-6:
                return state if t_s - reading_s <= self.rules.signal_stale_s else None
        return None

    def _held_by_signal(self, line: _StopLineGeometry, now_s: float) -> bool:
        """Whether a queue at this stop line may still stand: red or amber now, or within the discharge time
        (an unknown state holds nothing, so the other queue checks decide)."""
        if self._state_at(line, now_s) in ("r", "y"):
            return True
        for reading_s, state in reversed(line.states):
            if now_s - reading_s > self.rules.queue_discharge_s:
                return False
            if state in ("r", "y"):
                return True
        return False

    def _ingest(self, tracks: Sequence[Track], now_s: float) -> list[_History]:
        current = []
        for track in tracks:
            if track.peak_confidence < self.rules.min_track_confidence:
                continue
            history = self._histories.get(track.track_id)
            last_s = -math.inf if history is None else float(history.t_s[-1]) if len(history.t_s) else -math.inf
            fresh = []
            for ts, x_m, y_m in reversed(track.ground_trajectory):
                t_s = ts.timestamp()
                if t_s <= last_s:
                    break
                fresh.append((t_s, x_m, y_m))
            if history is None:
                history = self._empty_history(track.track_id)
                self._histories[track.track_id] = history
            history.class_id = history.length_class_id = track.class_id
            if history.class_id in FOUR_WHEELERS:
                recent = track.recent_class_counts(window_s=LENGTH_CLASS_SEEN_S)
                followed = int(np.argmax(recent))
                if followed in FOUR_WHEELERS and recent[followed] >= LENGTH_CLASS_SHARE * recent.sum():
                    history.length_class_id = followed
            if not history.is_vehicle:
                history.four_wheeler_share = track.class_share(FOUR_WHEELERS, window_s=FOUR_WHEELERS_SEEN_S)
                history.recent_classes = tuple(track.recent_classes)
            elif history.class_id in TWO_WHEELERS:
                history.pedestrian_vote_share = track.vote_share([PEDESTRIAN])
            history.last_seen_s = now_s
            if fresh:
                self._append(history, np.asarray(fresh[::-1], np.float64), now_s)
            if len(history.t_s):
                current.append(history)
        return current

    def _empty_history(self, track_id: int) -> _History:
        return _History(
            track_id=track_id,
            class_id=0,
            t_s=np.empty(0),
            xy_m=np.empty((0, 2)),
            segment_depth_m=np.empty((0, len(self._segment_ids))),
            front_depth_m=np.empty((0, len(self._segment_ids))),
            no_stopping_depth_m=np.empty((0, len(self._no_stopping))),
            stop_offset_m=np.empty((0, len(self._stop_lines))),
            stop_lateral=np.empty((0, len(self._stop_lines))),
        )

    def _append(self, history: _History, points: np.ndarray, now_s: float) -> None:
        xy = points[:, 1:3]
        n = len(points)
        seg = np.stack([inside_depth_m(xy, zone) for zone in self._segment_zone_xy], axis=1)
        front = np.stack([
            depth if towards else inside_depth_m(xy + history.length_m * direction, zone)
            for depth, zone, direction, towards in zip(seg.T, self._segment_zone_xy, self._segment_dir_xy, self._segment_towards_camera)
        ], axis=1)
        nostop = (
            np.stack([inside_depth_m(xy, zone) for zone in self._no_stopping_xy], axis=1)
            if self._no_stopping
            else np.empty((n, 0))
        )
        offset = np.empty((n, len(self._stop_lines)))
        lateral = np.empty((n, len(self._stop_lines)))
        for k, line in enumerate(self._stop_lines):
            rel = xy - line.start_xy_m
            offset[:, k] = rel @ line.normal_xy
            lateral[:, k] = rel @ line.unit_xy / max(line.length_m, 1e-9)
        keep = history.t_s >= now_s - self.rules.history_s
        history.t_s = np.concatenate([history.t_s[keep], points[:, 0]])
        history.xy_m = np.concatenate([history.xy_m[keep], xy])
        history.segment_depth_m = np.concatenate([history.segment_depth_m[keep], seg])
        history.front_depth_m = np.concatenate([history.front_depth_m[keep], front])
        history.no_stopping_depth_m = np.concatenate([history.no_stopping_depth_m[keep], nostop])
        history.stop_offset_m = np.concatenate([history.stop_offset_m[keep], offset])
        history.stop_lateral = np.concatenate([history.stop_lateral[keep], lateral])
        history._smooth_xy_m = None

    def _anchor_error_m(self, xy_m: np.ndarray) -> np.ndarray:
        """(n,) ground distance that `ANCHOR_ERROR_PX` of a box's bottom edge spans at each point (n, 2): how far
        a point may be off where its box places it."""
        anchor_uv = apply_homography(self._ground_to_image, xy_m)
        return ANCHOR_ERROR_PX * np.linalg.norm(away_from_camera_xy(self._homography, anchor_uv, px=1.0), axis=1)

    def _forget(self, now_s: float) -> None:
        for track_id in [t for t, h in self._histories.items() if now_s - h.last_seen_s > self.rules.forget_s]:
            del self._histories[track_id]
            self._clear_since_s.pop(track_id, None)
            for key in [k for k in self._raised if k[1] == track_id]:
                self._raised.discard(key)

    # -- rules --------------------------------------------------------------------------------------

    def _incident(self, type_: str, segment_index: int, track_ids: Sequence[int], *, start_s: float,
                  frame_ts: datetime, xy_m: np.ndarray, severity: int | None = None) -> Incident:
        segment_id = self._segment_ids[segment_index]
        lon, lat = self.local_frame.to_lonlat(xy_m)[0]
        return Incident(
            incident_id=incident_id(type_, self.camera.id, segment_id, track_ids, start_s),
            type=type_,
            camera_id=self.camera.id,
            segment_id=segment_id,
            start_ts=datetime.fromtimestamp(start_s, tz=timezone.utc),
            detected_ts=frame_ts,
            lon=float(lon),
            lat=float(lat),
            severity=SEVERITY[type_] if severity is None else severity,
            object_ids=tuple(f"{self.camera.id}/{t}" for t in track_ids),
        )

    def _raise_once(self, type_: str, track_ids: Sequence[int], make: Callable[[], Incident | None]) -> list[Incident]:
        if any((type_, t) in self._raised for t in track_ids):
            return []
        incident = make()
        if incident is None:
            return []
        self._raised.update((type_, t) for t in track_ids)
        return [incident]

    def _vehicle_rules(self, history: _History, current: list[_History], now_s: float, frame_ts: datetime) -> list[Incident]:
        raised: list[Incident] = []
        rules = self.rules
        t, xy = history.t_s, history.xy_m
        inside = history.segment_depth_m >= 0
        for s in np.flatnonzero(inside[-1]):
            run = trailing_run_start(inside[:, s])
            if self._wrong_way(history, s, run, xy[run:] @ self._segment_dir_xy[s]):
                raised += self._raise_once("wrong_way", [history.track_id], lambda s=s, run=run: self._incident(
                    "wrong_way", s, [history.track_id], start_s=t[run], frame_ts=frame_ts, xy_m=xy[-1]))
        front_inside = history.front_in_zone
        if len(t) >= 2:
            for s in np.flatnonzero(front_inside[-2] & ~front_inside[-1]):
                raised += self._speeding(history, s, trailing_run_start(front_inside[:-1, s]), len(t) - 1, frame_ts)
        raised += self._red_light(history, frame_ts)
        if len(t) >= 2:
            raised += self._stationary_rules(history, current, now_s, frame_ts)
        return raised

    def _speeding(self, history: _History, s: int, start: int, end: int, frame_ts: datetime) -> list[Incident]:
        """Judges the passage of the front through segment `s`'s zone made of the history's points `start` to
        `end` - 1, timed from edge to edge (`speed_trap`): a vehicle slowing down, driving away, over the
        stretch its front drove. A least-squares fit over the points inside read seed 242 cam01's car, braking
        from 70 km/h, at 48.9 km/h where the truth timed 50.5 (40 + 10 tolerated). Most of its steps, at least
        `MEDIAN_STEPS` seen, must be as fast (their median at least half the speed): a young track's leap onto
        another vehicle, which `leaps_since` cannot tell from motion yet, is one long step among short ones
        (seed 241 cam05: a motorcycle at 26 km/h, its track born 12 m behind it, read 109 km/h over its two
        steps seen, one of them that leap). A leap inside the passage mixes two vehicles; one onto its first
        point (seed 241 cam01: a track switched from a car leaving the picture onto a truck coming into it at
        70 km/h) leaves the passage to the vehicle it switched to, timed without the point before; one onto the
        point after its last (the step out of the zone) ends it unseen, timed to its last point inside (seed
        245 cam06: a car at 61 km/h, seen to 21 m short of the far edge, whose track then leapt 30 m onto a car
        ahead, across the edge, read 118 km/h; 65 without the leap)."""
        rules = self.rules
        t, xy = history.t_s[:end], history.xy_m[:end]
        along = xy[start:] @ self._segment_dir_xy[s]
        if len(along) <= MEDIAN_STEPS:
            return []
        with_exit = min(end + 1, len(history.t_s))
        leapt_s = leap_times_s(history.t_s[:with_exit], history.xy_m[:with_exit], since_s=t[start])
        if ((leapt_s > t[start]) & (leapt_s <= t[-1])).any():
            return []
        before = start if start == 0 or (leapt_s == t[start]).any() else start - 1
        leapt_out = with_exit > end and bool((leapt_s == history.t_s[end]).any())
        after = end if leapt_out else with_exit
        front_ahead_m = 0.0 if self._segment_towards_camera[s] else history.length_m
        front_m = history.xy_m[before:after] @ self._segment_dir_xy[s] + front_ahead_m
        timed_m, speed_mps = speed_trap(history.t_s[before:after], front_m, *self._segment_along_m[s],
                                        first=start - before, last=end - 1 - before)
        excess_kmh = speed_mps * 3.6 - self._limits_kmh[s]
        if timed_m < rules.speeding_distance_m or excess_kmh <= rules.speeding_tolerance_kmh:
            return []
        if np.median(np.diff(along) / np.diff(t[start:])) < speed_mps / 2:
            return []
        return self._raise_once("speeding", [history.track_id], lambda: self._incident(
            "speeding", s, [history.track_id], start_s=t[start], frame_ts=frame_ts, xy_m=xy[-1],
            severity=2 if excess_kmh > rules.speeding_tolerance_kmh + 20 else 1))

    def _judge_lost(self, now_s: float, frame_ts: datetime) -> list[Incident]:
        """Judges the vehicles lost `LOST_S` ago once, on the points they have: hidden, too far to detect, or
        cut by the picture's edge, whose box gives none. A passage through a zone (seed 240 cam05: a bus at
        70 km/h coming towards the camera, its front inside the zone when the bottom edge cut its box), and
        a crossing of a stop line whose last points the moving median had not settled (seed 236 cam03: a
        runner hidden behind a bus just past the line)."""
        raised: list[Incident] = []
        for history in self._histories.values():
            lost_s = history.t_s[-1] + LOST_S if len(history.t_s) else math.inf
            if not history.is_vehicle or not self._last_update_s < lost_s <= now_s:
                continue
            front_inside = history.front_in_zone
            for s in np.flatnonzero(front_inside[-1]):
                raised += self._speeding(history, s, trailing_run_start(front_inside[:, s]), len(history.t_s), frame_ts)
            raised += self._red_light(history, frame_ts, lost=True)
        return raised

    def _wrong_way(self, history: _History, s: int, run: int, along: np.ndarray) -> bool:
        """Whether the track drove `wrong_way_distance_m` against segment `s` (inside its zone), at
        `wrong_way_min_speed_mps` or faster and without an identity switch: a queue whose ids slide back
        from car to car moves backwards slowly, and in leaps; a track that jumps from a car to one going the
        other way reverses. A track too young to tell a switch from motion (`leaps_since`) is not judged."""
        rules = self.rules
        deep = history.segment_depth_m[run:, s] >= rules.wrong_way_margin_m
        if deep.sum() < 2:
            return False
        deep_t, deep_along = history.t_s[run:][deep], along[deep]
        behind = np.flatnonzero(deep_along - deep_along[-1] >= rules.wrong_way_distance_m)
        if not behind.size:
            return False
        since_s = float(deep_t[behind[-1]])
        longest_s = rules.wrong_way_distance_m / rules.wrong_way_min_speed_mps
        if deep_t[-1] - since_s > longest_s:
            return False
        first = behind[deep_t[behind] >= deep_t[-1] - longest_s][0]
        back_m = -np.diff(deep_along[first:])
        seen_m = back_m[back_m <= WRONG_WAY_SEEN_SHARE * rules.wrong_way_distance_m].clip(min=0.0).sum()
        if seen_m < WRONG_WAY_SEEN_SHARE * rules.wrong_way_distance_m:
            return False
        if too_young_since(history.t_s, since_s):
            return False
        return not leaps_since(history.t_s, history.xy_m, since_s=since_s, reversals=True)

    def _red_light(self, history: _History, frame_ts: datetime, *, lost: bool = False) -> list[Incident]:
        """Judges the crossing of each stop line on the points whose moving median has settled, or, for a
        track `lost`, on all of them if its last two lie past the line, the last by its anchor's error more
        (at the end, the median is the last point alone, and no later point confirms it: seed 242 cam04, a
        motorcycle stopping at the line, whose box slid 2.5 m on as another road user went by, then lost)."""
        raised = []
        if ("red_light", history.track_id) in self._raised:
            return raised
        settled = len(history.t_s) if lost else len(history.t_s) - SMOOTHING_LAG
        for k, line in enumerate(self._stop_lines):
            front_ahead_m = history.length_m if line.anchor_is_rear else 0.0
            past_m = max(self.rules.red_light_past_m, LENGTH_UNCERTAINTY * front_ahead_m)
            anchor_m = history.stop_offset_m[:, k : k + 1]
            if settled < 2 or anchor_m[max(settled - 3, 0) : settled + 2].max() + front_ahead_m < past_m:
                continue  # the last settled median comes from these points: none is past the line
            offset = moving_median(anchor_m)[:settled, 0] + front_ahead_m
            if offset[-1] < past_m:
                continue
            if lost and (offset[-2] < 0 or offset[-1] < past_m + self._anchor_error_m(history.xy_m[-1:])[0]):
                continue
            behind = np.flatnonzero(offset < 0)
            if not behind.size:
                continue
            i = int(behind[-1])
            if i + 1 >= len(offset) or too_young_since(history.t_s, history.t_s[i]):
                continue
            if history.t_s[i + 1] - history.t_s[i] > RED_LIGHT_MAX_GAP_S:
                continue
            fraction = -offset[i] / (offset[i + 1] - offset[i])
            crossing_s = history.t_s[i] + fraction * (history.t_s[i + 1] - history.t_s[i])
            lateral = history.stop_lateral[i, k] + fraction * (history.stop_lateral[i + 1, k] - history.stop_lateral[i, k])
            margin = self.rules.lane_halfwidth_m / max(line.length_m, 1e-9)
            if not -margin <= lateral <= 1 + margin:
                continue
            speed_mps = net_speed_mps(history.t_s[:settled], history.smooth_xy_m[:settled], start_s=crossing_s - 1.0,
                                      end_s=crossing_s + 1.0)
            if speed_mps < self.rules.red_light_min_speed_mps:
                continue  # net displacement: a standing vehicle's jitter is no crossing
            crossing_xy = history.xy_m[i] + fraction * (history.xy_m[i + 1] - history.xy_m[i])
            if self._state_at(line, crossing_s) != "r":
                continue
            if self._waited_on_green(history, line, offset, i, past_m):
                continue
            if leaps_since(history.t_s, history.xy_m, since_s=crossing_s - 1.0):
                continue  # an identity switch carried the track over the line
            raised += self._raise_once("red_light", [history.track_id], lambda line=line, c=crossing_s, xy=crossing_xy: self._incident(
                "red_light", line.segment_index, [history.track_id], start_s=c, frame_ts=frame_ts, xy_m=xy))
        return raised

    def _waited_on_green(self, history: _History, line: _StopLineGeometry, front_m: np.ndarray, upto: int,
                         past_m: float) -> bool:
        """Whether the vehicle stood at the stop line while its signal showed green, before it crossed (its front
        `front_m` within the front's error of the line: `past_m` and its anchor's error): a turner waiting in the
        junction for a gap in the oncoming traffic, which clears it as the signal changes (seed 248 cam01: two
        left turners, standing at the line from green through amber, crossed it 0.6 s into red)."""
        t, smooth_xy = history.t_s[: upto + 1], history.smooth_xy_m[: upto + 1]
        at_line = np.flatnonzero(front_m[: upto + 1] >= -past_m - self._anchor_error_m(history.xy_m[: upto + 1]))
        for j in at_line.tolist():
            if (self._state_at(line, float(t[j])) == "g"
                    and net_speed_mps(t, smooth_xy, start_s=t[j] - 0.5, end_s=t[j] + 0.5) < WAITING_MAX_MPS):
                return True
        return False

    def _stationary_rules(self, history: _History, current: list[_History], now_s: float, frame_ts: datetime) -> list[Incident]:
        rules = self.rules
        t, xy = history.t_s, history.xy_m
        k = stationary_start(history.smooth_xy_m, radius_m=rules.still_radius_m, smoothed=True)
        stood_s = float(t[k])
        standing_s = now_s - stood_s
        if standing_s <= 0 or now_s - t[-1] > MAX_GAP_S:
            return []
        stop_xy = np.median(xy[k:], axis=0)
        raised: list[Incident] = []
        raised += self._collision(history, current, k, now_s, frame_ts, stop_xy)
        raised += self._struck_from_behind(history, stood_s, frame_ts, stop_xy)
        in_no_stopping = False
        for z, zone in enumerate(self._no_stopping):
            if inside_depth_m(stop_xy, self._no_stopping_xy[z])[0] < 0:
                continue
            in_no_stopping = True
            allowed_s = rules.illegal_stopping_s or zone.max_stop_s
            if standing_s < allowed_s - rules.stopped_clear_s:
                self._clear_since_s.pop(history.track_id, None)
                continue
            s = self._segment_ids.index(zone.segment_id)
            clear_s = self._clear_s(history, current, s, stop_xy, now_s, jam_halfwidths=1)
            if standing_s >= allowed_s and clear_s >= rules.stopped_clear_s:
                raised += self._raise_stationary("illegal_stopping", s, history, start_s=stood_s + allowed_s,
                                                 frame_ts=frame_ts, stop_xy=stop_xy)
        if in_no_stopping:
            return raised
        depths = history.segment_depth_m[-1]
        if standing_s < rules.stopped_vehicle_s - rules.stopped_clear_s or depths.max() < 0:
            self._clear_since_s.pop(history.track_id, None)
            return raised
        if any(("collision", history.track_id) == key for key in self._raised):
            return raised
        s = int(np.argmax(depths))
        clear_s = self._clear_s(history, current, s, stop_xy, now_s)
        if standing_s < rules.stopped_vehicle_s or clear_s < rules.stopped_clear_s:
            return raised
        if self._passers(history, current, s, stop_xy, stood_s) < rules.min_passing_vehicles:
            return raised
        return raised + self._raise_stationary("stopped_vehicle", s, history, start_s=stood_s, frame_ts=frame_ts,
                                               stop_xy=stop_xy)

    def _raise_stationary(self, type_: str, s: int, history: _History, *, start_s: float, frame_ts: datetime,
                          stop_xy: np.ndarray) -> list[Incident]:
        raised = self._raise_once(type_, [history.track_id], lambda: self._incident(
            type_, s, [history.track_id], start_s=start_s, frame_ts=frame_ts, xy_m=stop_xy))
        for incident in raised:
            self._open[(type_, history.track_id)] = _Open(incident, history.track_id, stop_xy, history.last_seen_s)
        return raised

    def _clear_s(self, history: _History, current: list[_History], s: int, stop_xy: np.ndarray, now_s: float, *,
                 jam_halfwidths: int = NEXT_LANE_HALFWIDTHS) -> float:
        """How long nothing has held up the vehicle standing at stop_xy on segment s (no queue, jam or red
        signal ahead of it; `_jammed` over `jam_halfwidths`); 0 while something does. A vehicle whose queue
        has just left takes a moment to follow it."""
        if (self._queued(history, current, s, stop_xy, now_s)
                or self._jammed(history, current, s, stop_xy, now_s, halfwidths=jam_halfwidths)):
            self._clear_since_s.pop(history.track_id, None)
            return 0.0
        return now_s - self._clear_since_s.setdefault(history.track_id, now_s)

    def _queued(self, history: _History, current: list[_History], s: int, stop_xy: np.ndarray, now_s: float) -> bool:
        """Whether a vehicle standing at stop_xy on segment s is in a queue: a stationary vehicle just ahead
        in its lane, or a stop line of the segment within reach whose signal holds traffic. A vehicle lost
        while it stood there counts for the `_lost_vehicles` horizon: the vehicle behind it hides it (seed 251
        cam01: a bus queued behind a bus at a stop, whose box covered the one ahead until they drove off)."""
        rules = self.rules
        direction = self._segment_dir_xy[s]
        for line in self._stop_lines:
            if line.segment_index != s:
                continue
            offset = float((stop_xy - line.start_xy_m) @ line.normal_xy)
            if -rules.signal_reach_m <= offset <= rules.red_light_past_m and self._held_by_signal(line, now_s):
                return True
        for other in [*current, *self._lost]:
            if other is history or not other.is_vehicle:
                continue
            along, lateral = along_across_m(other.xy_m[-1] - stop_xy, direction)
            if 0.5 < along <= rules.queue_gap_m + history.length_m and lateral <= rules.lane_halfwidth_m:
                seen_s = float(other.t_s[-1])
                if path_speed_mps(other.t_s, other.xy_m, start_s=seen_s - 2.0, end_s=seen_s) < 1.0:
                    return True
        return False

    def _jammed(self, history: _History, current: list[_History], s: int, stop_xy: np.ndarray, now_s: float, *,
                halfwidths: int = NEXT_LANE_HALFWIDTHS) -> bool:
        """Whether the segment's traffic ahead of stop_xy stands too, within `halfwidths` lane half-widths
        across (its lane or the next one): a jam. A broken-down vehicle holds up the traffic behind and beside
        it, but the road ahead of it is clear; a car parked at the kerb has traffic driving past it in the next
        lane, whatever the lanes beyond do (seed 245 cam05: stood in a no-stopping zone while the lane two over
        crept in a jam), and in a no-stopping zone only its own lane holds it up (seed 251 cam06: parked with
        its lane clear ahead while the next one crept past it in a jam). The segment's traffic has
        been in its zone, and stands on past its far end (seed 245 cam05: a truck 21 m behind a standing car
        just out of the zone). A vehicle too near the end of the view for that to be seen counts as jammed:
        closer than a queue's gap, or, on a congested segment, than the jam's reach."""
        rules = self.rules
        direction = self._segment_dir_xy[s]
        visible_ahead_m = float(((self._segment_zone_xy[s] - stop_xy) @ direction).max())
        if visible_ahead_m < (rules.jam_reach_m if s in self._congestion else rules.queue_gap_m):
            return True
        for other in current:
            if other is history or not other.is_vehicle:
                continue
            along, lateral = along_across_m(other.xy_m[-1] - stop_xy, direction)
            if not 0.5 < along <= rules.jam_reach_m or lateral > halfwidths * rules.lane_halfwidth_m:
                continue
            if (path_speed_mps(other.t_s, other.xy_m, start_s=now_s - 2.0, end_s=now_s) < rules.jam_speed_mps
                    and (other.segment_depth_m[:, s] >= 0).any()):
                return True
        return False

    def _passers(self, history: _History, current: list[_History], s: int, stop_xy: np.ndarray, stood_s: float) -> int:
        """Vehicles that drove past stop_xy, in segment s's direction, since stood_s: traffic of segment s,
        seen in its zone at least once, judged from their last point behind it (seed 238 cam04: the one
        passer turned in from a side street 22 m to the side). On a one-lane road they overtake through the
        oncoming lanes; a wrong-way driver there, never in the zone, passes nothing."""
        direction = self._segment_dir_xy[s]
        count = 0
        for other in self._histories.values():
            if other is history or not other.is_vehicle:
                continue
            keep = other.t_s >= stood_s
            if keep.sum() < 2 or not (other.segment_depth_m[keep, s] >= 0).any():
                continue
            along, lateral = along_across_m(other.xy_m[keep] - stop_xy, direction)
            behind = np.flatnonzero(along < -1.0)
            if not behind.size:
                continue
            ahead = np.flatnonzero((along > 1.0) & (np.arange(len(along)) > behind[0]))
            if not ahead.size:
                continue
            j = int(ahead[0])
            i = int(behind[behind < j][-1])
            if lateral[i:j + 1].max() > 12.0:
                continue
            times = other.t_s[keep]
            if (along[j] - along[i]) / max(times[j] - times[i], 1e-6) >= self.rules.passing_speed_mps:
                count += 1
        return count

    def _collision(self, history: _History, current: list[_History], k: int, now_s: float, frame_ts: datetime,
                   stop_xy: np.ndarray) -> list[Incident]:
        """A vehicle that arrived moving and now stands with its footprint meeting another standing vehicle's
        in the same lane (closer than a vehicle length, or having driven into it: the order along the lane
        swapped). A queue keeps a gap, and nobody passes through the vehicle ahead. The struck vehicle may
        have vanished at the impact: the striker's box, nearer the camera, hides it. A track born within its
        approach is not judged: a road user coming out from behind another looks like one arriving fast."""
        rules = self.rules
        t, xy = history.t_s, history.xy_m
        stood_s = float(t[k])
        standing_s = now_s - stood_s
        if not rules.collision_confirm_s <= standing_s <= rules.collision_confirm_s + 10.0:
            return []
        if longest_unseen_s(t, stood_s - ARRIVAL_S, stood_s + rules.collision_confirm_s) > COLLISION_MAX_UNSEEN_S:
            return []
        approach_from_s = stood_s - rules.collision_approach_s
        approach = np.flatnonzero((t >= approach_from_s) & (t <= stood_s))
        if len(approach) < 2 or too_young_since(t, approach_from_s):
            return []
        depths = history.segment_depth_m[-1]
        s = int(np.argmax(depths))
        first, last = approach[0], approach[-1]
        travel_xy = history.smooth_xy_m[last] - history.smooth_xy_m[first]
        travel_m = float(np.linalg.norm(travel_xy))
        min_speed_mps = striker_min_speed_mps(history.class_id, rules.collision_min_speed_mps)
        if depths[s] < 0 or travel_m < min_speed_mps * max(t[last] - t[first], 1e-6):
            return []  # the net (median-filtered) travel: a jittering box of a creeping bus has a long path
        heading = travel_xy / travel_m
        if heading @ self._segment_dir_xy[s] < MIN_HEADING_COS or leaps_since(t, xy, since_s=approach_from_s):
            return []
        along = history.smooth_xy_m[approach] @ self._segment_dir_xy[s]
        if (np.maximum.accumulate(along) - along).max() > rules.still_radius_m:
            return []  # went backwards on the way in: two objects' track (an identity switch), not a striker
        if self._stopping_decel_mps2(history, stood_s, stop_xy, heading) < rules.collision_decel_mps2:
            return []  # braked to a stop, as a queue's next car does: an impact stops it in a few metres
        for other in [*current, *self._lost]:
            if other is history or not other.is_vehicle or len(other.t_s) < 2 or other.segment_depth_m[-1, s] < 0:
                continue
            if other.t_s[0] > approach_from_s or not ((other.t_s >= approach_from_s) & (other.t_s < stood_s)).any():
                continue  # not there all along as the striker came (seed 222 cam02: a track found again 20 m on)
            if leaps_since(other.t_s, other.xy_m, since_s=approach_from_s):
                continue
            seen_s = float(other.t_s[-1])
            if path_speed_mps(other.t_s, other.smooth_xy_m, start_s=seen_s - rules.collision_confirm_s, end_s=seen_s) > 1.0:
                continue  # median-filtered: a standing motorcycle's box jitters
            if longest_unseen_s(other.t_s, seen_s - rules.collision_confirm_s, seen_s) > COLLISION_MAX_UNSEEN_S:
                continue
            contact_s = self._contact_s(history, other, s, heading, start_s=approach_from_s,
                                        end_s=stood_s + rules.collision_confirm_s)  # the impact is what stopped it
            if contact_s is None:
                continue
            return self._raise_collision(history, other, s, start_s=contact_s, frame_ts=frame_ts, stop_xy=stop_xy)
        return []

    def _stopping_decel_mps2(self, history: _History, stood_s: float, stop_xy: np.ndarray, heading: np.ndarray) -> float:
        """Deceleration that stops the vehicle where it stood from its mean speed over the second before it
        reached the spot: v^2 / 2d, d the distance still to go from the middle of that second (exact for a
        steady braking; a vehicle stopped by an impact was still at speed half a second before), and its
        anchor's error: far away, a box that lags a braking vehicle and catches up as it stops reads a shorter
        distance (seed 246 cam06: a motorcycle braking at 4.5 m/s2 behind a standing car, 1.4 m a pixel-pair,
        read 6.5)."""
        t = history.t_s
        before = np.flatnonzero((t >= stood_s - ARRIVAL_S) & (t <= stood_s))
        if len(before) < 2:
            return 0.0
        along = history.smooth_xy_m[before] @ heading
        speed_mps = fitted_speed_mps(t[before], along)
        anchor_error_m = float(np.median(self._anchor_error_m(history.xy_m[before])))
        to_go_m = float(stop_xy @ heading - along.mean()) + anchor_error_m
        return speed_mps**2 / (2 * max(to_go_m, STOP_SPOT_M)) if speed_mps > 0 else 0.0

    def _struck_from_behind(self, history: _History, stood_s: float, frame_ts: datetime,
                            stop_xy: np.ndarray) -> list[Incident]:
        """A standing vehicle struck by one behind it in its lane whose track vanished at the impact
        (`_vanished_vehicles`): after it one box covers both. A striker that vanished close behind it was about to hit
        it, too fast to stop (it would have needed more than `collision_decel_mps2`, and was not braking:
        `BRAKING_SPEED_RATIO`); where traffic drives away from the camera it vanishes behind the standing one,
        where it comes towards the camera the standing one hides it (seed 238 cam07: lost at 10 m/s a metre
        or two before the impact).
        Towards the camera a striker seen to stop against it before it was hidden is judged on how it
        stopped (`_stopped_on_impact`, seed 216 cam05)."""
        depths = history.segment_depth_m[-1]
        s = int(np.argmax(depths))
        if depths[s] < 0 or ("collision", history.track_id) in self._open:
            return []
        rules = self.rules
        for other, found_xy in self._vanished:
            if other.track_id == history.track_id or other.t_s[-1] < stood_s:
                continue
            if found_xy is not None:
                along_m, lateral_m = along_across_m(stop_xy - found_xy, self._segment_dir_xy[s])
                if lateral_m <= rules.lane_halfwidth_m and along_m >= -rules.contact_margin_m:
                    continue  # found again behind it in its lane: itself, judged as seen (`_collision`)
            impact_s = self._vanished_at_speed(other, history, stop_xy, s)
            if impact_s is None and self._segment_towards_camera[s]:
                impact_s = self._stopped_on_impact(other, history, stood_s, stop_xy, s)
            if impact_s is not None:
                return self._raise_collision(history, other, s, start_s=impact_s, frame_ts=frame_ts, stop_xy=stop_xy)
        return []

    def _vanished_vehicles(self, current: list[_History], now_s: float) -> list[tuple[_History, np.ndarray | None]]:
        """Vehicles whose tracks vanished a confirmation time ago (`collision_confirm_s`, within a
        second) and were lost since, or found again only after more than `COLLISION_MAX_UNSEEN_S`, perhaps on
        another road user (seed 254 cam05: a car passing the struck truck in the next lane took the hidden
        striker's track a second after the impact). Each is cut at the point it vanished and paired with the
        point it was found again at (None if lost since). Found once per frame, as `_lost_vehicles`."""
        confirm_s = self.rules.collision_confirm_s
        vanished: list[tuple[_History, np.ndarray | None]] = []
        for other in [*current, *self._lost]:
            if not other.is_vehicle:
                continue
            n = int(np.searchsorted(other.t_s, now_s - confirm_s, side="right"))
            if n < 3 or now_s - other.t_s[n - 1] > confirm_s + 1.0:
                continue
            if n == len(other.t_s):
                vanished.append((other, None))
            elif other.t_s[n] - other.t_s[n - 1] > COLLISION_MAX_UNSEEN_S:
                vanished.append((other.upto(n), other.xy_m[n]))
        return vanished

    def _vanished_at_speed(self, other: _History, struck: _History, stop_xy: np.ndarray, s: int) -> float | None:
        """When `other` would have hit the standing vehicle at stop_xy, had it gone on as it was when it
        vanished: close behind it, at `VANISHED_STRIKER_MIN_MPS` or faster (a two-wheeler at
        `TWO_WHEELER_STRIKER_MIN_MPS`: seed 258 cam05, a motorcycle at 60 km/h hidden behind a standing one it
        struck; 253 cam05, one at 37 km/h behind a car), not braking, too fast to stop in the
        gap to the struck vehicle's typical length (its `LENGTH_UNCERTAINTY` would have a car braking 10 m
        behind a bus, hidden by it, too close to stop: seed 249 cam05)."""
        rules = self.rules
        direction = self._segment_dir_xy[s]
        last_s = float(other.t_s[-1])
        if longest_unseen_s(other.t_s, last_s - ARRIVAL_S, last_s) > COLLISION_MAX_UNSEEN_S:
            return None  # its speed read across a gap: a track found again on another road user
        along_m, lateral_m = along_across_m(stop_xy - other.smooth_xy_m[-1], direction)
        recent = other.t_s >= last_s - 1.0
        speed_mps = fitted_speed_mps(other.t_s[recent], other.smooth_xy_m[recent] @ direction)
        gap_m = along_m - self._contact_reach_m(struck, other, s, length_uncertainty=0.0)
        min_speed_mps = striker_min_speed_mps(other.class_id, VANISHED_STRIKER_MIN_MPS)
        if lateral_m > rules.lane_halfwidth_m or not -2.0 <= gap_m <= 10.0 or speed_mps < min_speed_mps:
            return None
        if speed_mps**2 / (2 * max(gap_m, 0.1)) < rules.collision_decel_mps2 or leaps_since(other.t_s, other.xy_m, since_s=last_s - 2.0):
            return None
        before = (other.t_s >= last_s - 3.0) & (other.t_s < last_s - 1.0)
        if before.sum() < 2:
            return None  # too young to be seen not braking (seed 242 cam08: a truck's track 0.6 s old)
        if speed_mps < BRAKING_SPEED_RATIO * fitted_speed_mps(other.t_s[before], other.smooth_xy_m[before] @ direction):
            return None
        return last_s + max(gap_m, 0.0) / speed_mps

    def _stopped_on_impact(self, other: _History, struck: _History, struck_stood_s: float, stop_xy: np.ndarray,
                           s: int) -> float | None:
        """When `other` stopped against the standing vehicle at stop_xy: it came to a stand after that one
        did, within `_contact_reach_m` behind it in its lane, harder than `collision_decel_mps2` could have
        stopped it (seed 216 cam05: 10.8 m/s to a stand in 0.2 s), and was lost there."""
        rules = self.rules
        direction = self._segment_dir_xy[s]
        k = stationary_start(other.smooth_xy_m, radius_m=rules.still_radius_m, smoothed=True)
        other_stood_s = float(other.t_s[k])
        if k == len(other.t_s) - 1 or other_stood_s < struck_stood_s:
            return None
        other_stop_xy = np.median(other.xy_m[k:], axis=0)
        along_m, lateral_m = along_across_m(stop_xy - other_stop_xy, direction)
        if lateral_m > rules.lane_halfwidth_m or not 0.0 <= along_m <= self._contact_reach_m(struck, other, s):
            return None
        if leaps_since(other.t_s, other.xy_m, since_s=other_stood_s - 2.0):
            return None  # an identity switch in the arrival could fake the stop
        if longest_unseen_s(other.t_s, other_stood_s - ARRIVAL_S, other_stood_s) > COLLISION_MAX_UNSEEN_S:
            return None
        if self._stopping_decel_mps2(other, other_stood_s, other_stop_xy, direction) < rules.collision_decel_mps2:
            return None
        return other_stood_s

    def _lost_vehicles(self, current: list[_History], now_s: float) -> list[_History]:
        """Vehicles not seen now, last seen within `collision_confirm_s` + 10 s, found once per frame: a
        striker's track ends when one box covers both vehicles (`_struck_from_behind`), and a struck
        standing vehicle's when the striker's box hides it (`_collision`; seed 233 cam07: a car ran into a
        standing motorcycle, and the detector lost the motorcycle in the car's box), and a queue's when the
        box of the vehicle behind it covers it (`_queued`)."""
        seen_now = {id(h) for h in current}
        horizon_s = self.rules.collision_confirm_s + 10.0
        return [h for h in self._histories.values()
                if id(h) not in seen_now and h.is_vehicle and len(h.t_s) >= 3
                and 0 < now_s - h.t_s[-1] <= horizon_s]

    def _raise_collision(self, history: _History, other: _History, s: int, *, start_s: float, frame_ts: datetime,
                         stop_xy: np.ndarray) -> list[Incident]:
        pair = sorted([history.track_id, other.track_id])
        raised = self._raise_once("collision", pair, lambda: self._incident(
            "collision", s, pair, start_s=start_s, frame_ts=frame_ts, xy_m=stop_xy))
        for incident in raised:
            self._open[("collision", history.track_id)] = _Open(incident, history.track_id, stop_xy, history.last_seen_s)
            self._open[("collision", other.track_id)] = _Open(incident, other.track_id, other.smooth_xy_m[-1].copy(),
                                                              other.last_seen_s)
        return raised

    def _contact_reach_m(self, struck: _History, striker: _History, s: int, *,
                         length_uncertainty: float = LENGTH_UNCERTAINTY) -> float:
        """Distance along segment s between the anchors of a vehicle and one that drove into it from behind
        within which their footprints meet. The anchor is the footprint's end nearest the camera: the fronts
        where traffic comes towards it, a struck vehicle's length apart at the contact, the rears where it
        drives away, a striker's length apart (seed 240 cam05: a car's front stood 10.4 m behind the front
        of the truck it hit). Plus `LENGTH_UNCERTAINTY` and `contact_margin_m` (an anchor at 50 m is off by
        up to a metre)."""
        between = struck if self._segment_towards_camera[s] else striker
        return between.length_m * (1 + length_uncertainty) + self.rules.contact_margin_m

    def _contact_s(self, history: _History, other: _History, s: int, heading: np.ndarray, *, start_s: float,
                   end_s: float) -> float | None:
        """First time in [start_s, end_s] the two footprints meet in one lane, having been seen apart; None
        if they never do. `other` (standing) is held where it was last seen for `STRUCK_HELD_S`."""
        rules = self.rules
        keep = (history.t_s >= max(start_s, other.t_s[0])) & (history.t_s <= min(end_s, other.t_s[-1] + STRUCK_HELD_S))
        if keep.sum() < 2:
            return None
        times = history.t_s[keep]
        mine = history.smooth_xy_m[keep]
        others = other.smooth_xy_m
        theirs = np.stack([np.interp(times, other.t_s, others[:, 0]), np.interp(times, other.t_s, others[:, 1])], axis=1)
        along, lateral = along_across_m(theirs - mine, heading)
        same_lane = lateral <= rules.lane_halfwidth_m
        reach_m = self._contact_reach_m(other, history, s)
        touching = same_lane & (np.abs(along) <= reach_m)
        ahead_before = same_lane & (along > 0)
        drove_in = same_lane & (along <= 0) & (np.maximum.accumulate(ahead_before))
        meeting = np.flatnonzero(touching | drove_in)
        if not meeting.size or meeting[0] == 0:
            return None  # never seen apart: one vehicle with two boxes, or one coming out from behind the other
        if abs(along[-1]) > history.length_m + other.length_m + rules.contact_margin_m:
            return None  # after an impact both stand where they met; anchors that crossed long ago were lanes apart
        return float(times[meeting[0]])

    def _pedestrian_rule(self, history: _History, now_s: float, frame_ts: datetime) -> list[Incident]:
        rules = self.rules
        depth_now = history.segment_depth_m[-1]
        if now_s - history.t_s[-1] > MAX_GAP_S or history.four_wheeler_share > 0.5:
            return []
        net_mps = net_speed_mps(history.t_s, history.smooth_xy_m, start_s=now_s - PEDESTRIAN_PACE_S, end_s=now_s)
        pace_mps = max(path_speed_mps(history.t_s, history.smooth_xy_m, start_s=now_s - 1.0, end_s=now_s), net_mps)
        if pace_mps > rules.pedestrian_max_speed_mps:
            return []  # faster than anyone on foot: a cyclist taken for a pedestrian
        away = ~self._near_crossing(history)
        if not away[-1]:
            return []
        if not (depth_now >= rules.pedestrian_margin_m).any():
            return []
        margin_m = max(rules.pedestrian_margin_m, self._anchor_error_m(history.xy_m[-1:])[0])
        depth_m = max(margin_m, 0.0 if net_mps >= WALKING_MPS else rules.pedestrian_standing_depth_m)
        for s in np.flatnonzero(depth_now >= depth_m):
            run = trailing_run_start((history.segment_depth_m[:, s] >= 0) & away)
            leapt_s = leap_times_s(history.t_s, history.xy_m, since_s=history.t_s[run])
            if len(leapt_s):
                if not self._pedestrian_boxes_since(history, float(leapt_s[-1])):
                    continue
                run = int(np.searchsorted(history.t_s, leapt_s[-1]))
            stepped_in = np.flatnonzero(history.segment_depth_m[run:, s] >= rules.pedestrian_margin_m)
            if now_s - history.t_s[run + stepped_in[0]] < rules.pedestrian_min_s:
                continue
            if fastest_net_mps(history.t_s[run:], history.smooth_xy_m[run:], over_s=1.0) > rules.pedestrian_max_speed_mps:
                continue  # drove in the lanes: a pedestrian's track that switched to a motorcycle (seed 240 cam03)
            return self._raise_once("pedestrian_on_road", [history.track_id], lambda s=s, run=run: self._incident(
                "pedestrian_on_road", s, [history.track_id], start_s=history.t_s[run], frame_ts=frame_ts,
                xy_m=history.xy_m[-1]))
        return []

    @staticmethod
    def _pedestrian_boxes_since(history: _History, since_s: float) -> bool:
        """Whether most of a pedestrian's boxes since `since_s`, when its track leapt onto another road user,
        were pedestrians': its votes are the road user it followed before (seed 249 cam03: a pedestrian's track
        that switched onto a motorcycle standing in a queue, a 'pedestrian' in the lane for seconds)."""
        since = [class_id for t_s, class_id in history.recent_classes if t_s >= since_s]
        return bool(since) and since.count(PEDESTRIAN) >= 0.5 * len(since)

    def _walking_across(self, history: _History, now_s: float) -> bool:
        """Whether a two-wheeler's track, often read as a pedestrian (`PEDESTRIAN_MIN_VOTE_SHARE`), crossed the
        lanes at a walking pace over the last `PEDESTRIAN_PACE_S`: a pedestrian the detector reads as a
        motorcycle side-on (seeds 237 cam06 and 217 cam08: jaywalkers in mid-road read as motorcycles for 2 s,
        their tracks' votes tied, which ties give the motorcycle). The boxes of a queued motorcycle going out of
        sight drift sideways, slowly (seed 215 cam04)."""
        if history.class_id not in TWO_WHEELERS or history.pedestrian_vote_share < PEDESTRIAN_MIN_VOTE_SHARE:
            return False
        keep = np.flatnonzero(history.t_s >= now_s - PEDESTRIAN_PACE_S)
        span_s = float(history.t_s[keep[-1]] - history.t_s[keep[0]]) if len(keep) else 0.0
        if span_s <= 0.0 or span_s < self.rules.pedestrian_min_s:
            return False
        travel_xy = history.smooth_xy_m[keep[-1]] - history.smooth_xy_m[keep[0]]
        travel_m = float(np.linalg.norm(travel_xy))
        if not WALKING_MPS <= travel_m / span_s <= self.rules.pedestrian_max_speed_mps:
            return False
        s = int(np.argmax(history.segment_depth_m[-1]))
        return abs(travel_xy @ self._segment_dir_xy[s]) / travel_m < ACROSS_COS

    def _near_crossing(self, history: _History) -> np.ndarray:
        """Whether each point of the history is within `crossing_clearance_m` of a stop line (from its offset
        across the line and its place along it), where pedestrians cross: time spent there does not count
        towards `pedestrian_min_s` (seed 217 cam04: a pedestrian on the crossing for seconds, raised as soon as
        a jittery box stepped 0.7 m out of its clearance)."""
        lengths_m = np.array([line.length_m for line in self._stop_lines])
        beyond_ends_m = (history.stop_lateral - np.clip(history.stop_lateral, 0.0, 1.0)) * lengths_m
        return (np.hypot(history.stop_offset_m, beyond_ends_m) <= self.rules.crossing_clearance_m).any(axis=1)

    def _congestion_rules(self, now_s: float, frame_ts: datetime, windows: Sequence[SegmentWindow],
                          open_windows: Mapping[str, OpenWindow]) -> list[Incident]:
        rules = self.rules
        out: list[Incident] = []
        for s, segment_id in enumerate(self._segment_ids):
            window = open_windows.get(segment_id)
            if s in self._congestion or window is None or window.speed_ratio is None:
                continue
            window_start_s = window.window_end.timestamp() - rules.window_s
            if (
                now_s - window_start_s >= rules.congestion_early_s
                and window.vehicle_s >= max(rules.congestion_min_vehicle_s, 1e-9)
                and window.speed_ratio < rules.congestion_ratio
                and window.recent_speed_ratio is not None
                and window.recent_speed_ratio < rules.congestion_standing_ratio
            ):
                out.append(self._raise_congestion(s, window_start_s, frame_ts))
        by_id = {segment_id: s for s, segment_id in enumerate(self._segment_ids)}
        for window in sorted(windows, key=lambda w: w.window_end):
            s = by_id.get(window.segment_id)
            if s is None:
                continue
            ratio = window.speed_ratio
            window_start_s = window.window_end.timestamp() - window.window_s
            if s not in self._congestion and ratio is not None and ratio < rules.congestion_ratio:
                out.append(self._raise_congestion(s, window_start_s, frame_ts))
            elif s in self._congestion and (ratio is None or ratio >= rules.congestion_end_ratio):
                incident = self._congestion.pop(s)
                end_s = max(window_start_s, incident.start_ts.timestamp())
                out.append(replace(incident, end_ts=datetime.fromtimestamp(end_s, tz=timezone.utc)))
        return out

    def _raise_congestion(self, s: int, start_s: float, frame_ts: datetime) -> Incident:
        centre = self._segment_zone_xy[s].mean(axis=0)
        incident = self._incident("congestion", s, [], start_s=start_s, frame_ts=frame_ts, xy_m=centre)
        self._congestion[s] = incident
        return incident

    def _end_stationary(self, current: list[_History], now_s: float) -> list[Incident]:
        """Ends the open incidents whose vehicle drove off its spot or has been off it too long. One whose
        track is gone from the spot while another vehicle's track stands on it passes to that track: the same
        vehicle under a new id (seed 207: a queued car's track swapped onto the stopped one as it drew
        alongside; re-found after an occlusion longer than the tracker waits), not a second incident. A track
        that did not drive off the spot (`_drove_off`) switched to another road user: its vehicle may be found
        there again (seed 239 cam08: a struck car's track drifted 2.7 m back in 0.4 s, and the car was found
        again 3 s later). One that drove off ends it `DRIVE_OFF_CONFIRM_S` later, at the time it drove off,
        unless its vehicle stands on the spot again by then."""
        rules = self.rules
        ended = []
        for key, open_ in list(self._open.items()):
            history = self._histories.get(open_.track_id)
            seen_now = history is not None and history.last_seen_s == now_s
            if seen_now and np.linalg.norm(history.xy_m[-1] - open_.stop_xy_m) <= 2 * rules.still_radius_m:
                open_.at_spot_s, open_.drove_off_s = now_s, None
                continue
            heir = next((h for h in current if h is not history and h.is_vehicle
                         and np.linalg.norm(h.xy_m[-1] - open_.stop_xy_m) <= rules.still_radius_m
                         and path_speed_mps(h.t_s, h.xy_m, start_s=now_s - 1.0, end_s=now_s) < 1.0), None)
            if heir is not None:
                del self._open[key]
                self._open[(key[0], heir.track_id)] = replace(open_, track_id=heir.track_id, at_spot_s=now_s,
                                                              drove_off_s=None)
                self._raised.add((key[0], heir.track_id))
                continue
            if open_.drove_off_s is None and seen_now and self._drove_off(history, open_):
                open_.drove_off_s = now_s
            if now_s - open_.at_spot_s > rules.forget_s / 2:
                end_s = open_.at_spot_s
            elif open_.drove_off_s is not None and now_s - open_.drove_off_s >= DRIVE_OFF_CONFIRM_S:
                end_s = open_.drove_off_s
            else:
                continue
            del self._open[key]
            if any(o.incident.incident_id == open_.incident.incident_id for o in self._open.values()):
                continue  # a collision ends when the last of its vehicles has left
            ended.append(replace(open_.incident, end_ts=datetime.fromtimestamp(end_s, tz=timezone.utc)))
        return ended

    def _drove_off(self, history: _History, open_: _Open) -> bool:
        """Whether the track seen off its open incident's spot drove off it: ahead along the lane, without a
        leap. A track that leapt, or drifted back against the lane, switched to another road user."""
        direction = self._segment_dir_xy[self._segment_ids.index(open_.incident.segment_id)]
        ahead_m = float((history.xy_m[-1] - open_.stop_xy_m) @ direction)
        return ahead_m > 0 and not leaps_since(history.t_s, history.xy_m, since_s=open_.at_spot_s)

