"""Per-camera traffic measurement: tracked detections in, one `SegmentWindow` per segment and window out.

The measures follow the history contract (DESIGN.md). A vehicle is in a zone where its footprint's centre
is (as the simulator's truth places it): half a typical length on from its anchor, the near end:
- `vehicle_count`: tracks whose ground anchor (`casaflow.anchors`) crosses the segment's count line,
  each track counted once per segment, pedestrians excluded; a track lost just before the line at speed
  and not seen again crossed it hidden, and so did one first seen just past the line, driving on;
- `mean_speed_kmh`: space-mean speed = distance travelled by vehicles in the zone / the time they spent in
  it (Edie's definitions). A track's distance in a window is its displacement along the segment's
  direction, summed over its frames, so that the jitter of a box's ground point telescopes (it only counts
  at the ends, not at every frame), then taken as a length: a wrong-way vehicle travels too. A track that
  steps back against its motion at speed has jumped to an oncoming road user: each leg is a length;
- `density_vpkm`: time-mean number of vehicles in the zone per km of zone (all lanes). A vehicle lost while
  standing in a queue stands on, hidden, until its spot is seen taken (`HIDDEN_*`): its time counts in the
  density and the space-mean speed;
- `occupancy`: time vehicles spend over the count line (ground anchor within half a typical length of the
  class from it, inside the zone) / (window x lanes): the mean lane occupancy a loop detector would give;
- `<class>_count`: the crossings by class (the track's class at the crossing). Segments are one travel
  direction each, so counts are per direction; a track crossing against the direction is not counted.
Windows are aligned to multiples of `window_s` since the epoch.
"""

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from casaflow.detections import CLASS_IDS, TYPICAL_LENGTH_M, VEHICLE_CLASSES, Detections
from casaflow.anchors import TYPICAL_WIDTH_M, GroundAnchors
from casaflow.geometry import apply_homography, away_from_camera_xy, points_in_polygon, segments_cross
from casaflow.inventory import Camera, Segment
from casaflow.kinematics import against_motion
from casaflow.measures import level_of_service

PEDESTRIAN = CLASS_IDS["pedestrian"]
MAX_GAP_S = 2.0
"""Longer gaps between two sightings of a track are not bridged by speed or density."""
COUNT_MAX_GAP_S = 10.0
"""A track seen before the count line and again after it within this long crossed it (occluded meanwhile)."""
STITCH_RADIUS_M = 4.0
"""A new track within this (plus STITCH_SPREAD of the predicted travel) of a lost track's constant-velocity
prediction continues it."""
STITCH_SPREAD = 0.3
SAME_CROSSING_S = 0.5
SAME_CROSSING_M = 1.5
"""Two crossings this close in time and place are one vehicle seen by two tracks (headways exceed 0.5 s)."""
STITCH_BACK_M = 2.0
"""A continuation may appear this far behind the lost track's last point (its box jitters)."""
STITCH_LATERAL_M = 2.5
"""Sideways offset (across the segment) beyond which a new track is another lane's vehicle."""
UNSEEN_CROSSING_MIN_MPS = 2.0
UNSEEN_CROSSING_REACH_M = 15.0
UNSEEN_CROSSING_WAIT_S = 1.0
"""A track lost at most REACH before the count line, driving towards it at MIN or faster, and not seen
again WAIT after it would have reached the line, crossed it hidden. MIN is a queue creeping on (a standing
car's box jitters at well under it): in a jam the queue in the nearer lanes hides the line."""

EMERGED_REACH_M = 20.0
EMERGED_MIN_M = 4.0
EMERGED_HIDDEN_S = 2.0
"""A vehicle first seen at most REACH past a count line that other vehicles have hidden for HIDDEN
(`_hides_line`), that continues no lost track and is no second box on a tracked vehicle (none within
STITCH_RADIUS_M), crossed the line hidden: counted once it has driven MIN on along the segment at
UNSEEN_CROSSING_MIN_MPS or faster. Buses queued in the nearer lanes hide the far end of the oncoming lanes,
count line and all, for minutes; the oncoming cars come into sight beside them. With the line in sight, or
hidden for a moment by a vehicle going by, a track born past it is a vehicle found again (a queue's tracks
are lost and found as it moves off), not one more vehicle."""

RECENT_S = 5.0
"""An open window's recent speed is measured over this long: what the traffic does now."""

LINE_POINTS = 9
FOOTPRINT_SLACK_M = 1.0
"""A count line is checked for cover at this many points; a point within SLACK of a vehicle's footprint is
under it (the footprint is a typical length and width of its class, known to about that)."""

HIDDEN_STANDING_MPS = 0.5
HIDDEN_HOLD_S = 20.0
HIDDEN_FREED_M = 2.5
HIDDEN_QUEUE_M = 12.0
"""A track lost while standing (STANDING) in a zone, beside a queue (a track standing within QUEUE now),
still stands there hidden, for up to HOLD, until a vehicle is seen at its spot (within FREED: it left).
A lost standing track with no queue beside it is a false or duplicate box, not a hidden car."""


@dataclass(frozen=True)
class SegmentWindow:
    """The traffic state of one segment over one window: the row of the history's segments dataset."""

    segment_id: str
    camera_id: str
    window_end: datetime
    window_s: float
    vehicle_count: int
    flow_vph: float
    mean_speed_kmh: float | None
    density_vpkm: float
    speed_ratio: float | None
    los: str
    occupancy: float = 0.0
    class_counts: tuple[int, ...] = (0,) * len(VEHICLE_CLASSES)
    """Crossings per class of `VEHICLE_CLASSES`."""

    def as_row(self) -> dict:
        row = {k: v for k, v in self.__dict__.items() if k != "class_counts"}
        row.update({f"{name}_count": count for name, count in zip(VEHICLE_CLASSES, self.class_counts)})
        return row


@dataclass(frozen=True)
class OpenWindow:
    """A segment's window still being measured, so far: what a rule that cannot wait for its end reads
    (congestion raised early)."""

    window_end: datetime
    vehicle_s: float
    """Time vehicles spent in the zone so far, seconds."""
    speed_ratio: float | None
    """Space-mean speed so far / the speed limit; None before any vehicle-time."""
    recent_speed_ratio: float | None
    """The same over the last `RECENT_S` (across window boundaries); None without vehicle-time in it."""


@dataclass
class _Totals:
    crossings: int = 0
    vehicle_seconds: float = 0.0
    track_metres: dict[tuple[int, int], float] = field(default_factory=dict)
    """Each track leg's displacement along the segment in the window, metres."""
    metres: float = 0.0
    """The sum of their lengths, kept as they change: read every frame by `open_windows`."""
    line_seconds: float = 0.0
    class_counts: list[int] = field(default_factory=lambda: [0] * len(VEHICLE_CLASSES))


class _SegmentGeometry:
    def __init__(self, segment: Segment, image_to_ground: np.ndarray):
        self.segment = segment
        self.zone_uv = np.asarray(segment.zone, dtype=np.float64)
        self.zone_xy = apply_homography(image_to_ground, self.zone_uv)
        self.line_uv = np.asarray(segment.count_line, dtype=np.float64)
        self.line_points_uv = self.line_uv[0] + np.linspace(0.0, 1.0, LINE_POINTS)[:, None] * (self.line_uv[1] - self.line_uv[0])
        self.line_points_xy = apply_homography(image_to_ground, self.line_points_uv)
        bearing = math.radians(segment.direction_deg)
        self.direction_xy = np.array([math.sin(bearing), math.cos(bearing)])
        self.line_mid_xy = apply_homography(image_to_ground, self.line_uv).mean(axis=0)
        self.image_to_ground = image_to_ground


class SegmentMeter:
    """Measures every segment of one camera from its tracked detections, frame after frame."""

    def __init__(self, camera: Camera, *, window_s: float = 60.0, anchors: GroundAnchors | None = None):
        self.camera_id = camera.id
        self.window_s = float(window_s)
        self._homography = camera.calibration.image_to_ground
        self._anchors = anchors or GroundAnchors.for_camera(camera)
        self._segments = [_SegmentGeometry(s, self._homography) for s in camera.segments]
        self._window_end: datetime | None = None
        self._totals = {s.id: _Totals() for s in camera.segments}
        self._last: dict[int, tuple[float, np.ndarray, np.ndarray]] = {}
        self._velocity_xy: dict[int, np.ndarray] = {}
        self._class_id: dict[int, int] = {}
        self._leg: dict[int, int] = {}
        """Per track, how many times it reversed at speed: each reversal starts a new road user's leg."""
        self._frame_s: float | None = None
        self._crossings: dict[str, deque] = {s.id: deque() for s in camera.segments}
        self._counted: dict[str, dict[int, float]] = {s.id: {} for s in camera.segments}
        self._emerged: dict[str, dict[int, tuple[float, np.ndarray]]] = {s.id: {} for s in camera.segments}
        """Per segment, the tracks first seen past its count line (`EMERGED_*`): when and where."""
        self._line_hidden_since: dict[str, float] = {}
        self._closed_totals = {s.id: (0.0, 0.0) for s in camera.segments}
        """Per segment, vehicle-seconds and metres of the windows closed so far."""
        self._running: dict[str, deque] = {s.id: deque() for s in camera.segments}
        """Per segment, (t_s, vehicle-seconds, metres) since the start at each frame of the last `RECENT_S`."""

    def update(self, ts: datetime, detections: Detections) -> list[SegmentWindow]:
        """Feed one analysed frame; returns the windows that closed before `ts`."""
        if detections.tracker_id is None:
            raise ValueError("SegmentMeter needs tracked detections (tracker_id)")
        closed = self._advance(ts)
        t_s = ts.timestamp()
        vehicles = detections[detections.class_id != PEDESTRIAN]
        ground_xy = np.zeros((0, 2))
        if not len(vehicles):
            self._line_hidden_since.clear()
        else:
            anchors_uv = self._anchors.image_points(vehicles.xyxy, vehicles.class_id)
            ground_xy = apply_homography(self._homography, anchors_uv)
            away_xy = away_from_camera_xy(self._homography, anchors_uv)
            for track_id, xy in zip(vehicles.tracker_id.tolist(), ground_xy):
                if self._reverses(track_id, xy, t_s):
                    self._leg[track_id] = self._leg.get(track_id, 0) + 1
            for geometry in self._segments:
                if self._hides_line(geometry, vehicles, ground_xy, away_xy):
                    self._line_hidden_since.setdefault(geometry.segment.id, t_s)
                else:
                    self._line_hidden_since.pop(geometry.segment.id, None)
                inside = self._inside(geometry, ground_xy, away_xy, vehicles.class_id)
                self._measure_segment(geometry, vehicles.tracker_id, vehicles.class_id, anchors_uv, ground_xy, inside, t_s)
            for track_id, class_id, uv, xy in zip(vehicles.tracker_id.tolist(), vehicles.class_id.tolist(), anchors_uv, ground_xy):
                previous = self._last.get(track_id)
                if previous is not None and 0 < t_s - previous[0] <= MAX_GAP_S:
                    step = (xy - previous[2]) / (t_s - previous[0])
                    before = self._velocity_xy.get(track_id)
                    self._velocity_xy[track_id] = step if before is None else 0.7 * before + 0.3 * step
                self._last[track_id] = (t_s, uv, xy)
                self._class_id[track_id] = class_id
        self._count_unseen_crossings(t_s)
        if self._frame_s is not None and 0 < t_s - self._frame_s <= MAX_GAP_S:
            self._hold_hidden_standing(t_s, t_s - self._frame_s, vehicles.tracker_id.tolist(), ground_xy)
        self._frame_s = t_s
        self._record_running(t_s)
        self._forget(t_s)
        return closed

    def open_windows(self) -> dict[str, OpenWindow]:
        """Each segment's current window so far, by segment id (empty before the first frame)."""
        if self._window_end is None:
            return {}
        windows = {}
        for geometry in self._segments:
            segment = geometry.segment
            totals = self._totals[segment.id]
            running = self._running[segment.id]
            (_, vehicle_s_then, metres_then), (_, vehicle_s_now, metres_now) = running[0], running[-1]
            recent_speed = _speed_kmh(metres_now - metres_then, vehicle_s_now - vehicle_s_then)
            windows[segment.id] = OpenWindow(
                self._window_end, totals.vehicle_seconds,
                _speed_ratio(_speed_kmh(totals.metres, totals.vehicle_seconds), segment),
                _speed_ratio(recent_speed, segment),
            )
        return windows

    def flush(self) -> list[SegmentWindow]:
        """Close the current window (end of a replay or a clean shutdown)."""
        if self._window_end is None:
            return []
        closed = self._close()
        self._window_end = None
        return closed

    def _measure_segment(self, geometry, track_ids, class_ids, anchors_uv, ground_xy, inside, t_s: float) -> None:
        totals = self._totals[geometry.segment.id]
        counted = self._counted[geometry.segment.id]
        from_line_m = np.abs((ground_xy - geometry.line_mid_xy) @ geometry.direction_xy)
        for k, track_id in enumerate(track_ids.tolist()):
            previous = self._last.get(track_id)
            if previous is None:
                if inside[k]:
                    others_xy = ground_xy[inside & (track_ids != track_id)]
                    self._stitch(geometry, track_id, int(class_ids[k]), ground_xy[k], t_s, track_ids, others_xy)
                continue
            if t_s - previous[0] > COUNT_MAX_GAP_S:
                continue
            along_m = float(np.dot(ground_xy[k] - previous[2], geometry.direction_xy))
            gap_s = t_s - previous[0]
            if inside[k] and gap_s <= MAX_GAP_S:
                totals.vehicle_seconds += gap_s
                leg = (track_id, self._leg.get(track_id, 0))
                before_m = totals.track_metres.get(leg, 0.0)
                totals.track_metres[leg] = before_m + along_m
                totals.metres += abs(before_m + along_m) - abs(before_m)
                if from_line_m[k] <= TYPICAL_LENGTH_M[class_ids[k]] / 2:
                    totals.line_seconds += gap_s
            if along_m > 0 and track_id not in counted and segments_cross(previous[1], anchors_uv[k], *geometry.line_uv):
                counted[track_id] = t_s
                self._count(geometry, int(class_ids[k]), ground_xy[k], t_s)
            elif track_id in self._emerged[geometry.segment.id] and track_id not in counted:
                self._count_emerged(geometry, track_id, int(class_ids[k]), ground_xy[k], t_s)

    def _inside(self, geometry: _SegmentGeometry, ground_xy: np.ndarray, away_xy: np.ndarray, class_ids) -> np.ndarray:
        """Which vehicles are in the segment's zone, for its vehicle-time and distance: where the footprint's
        centre is, half a typical length on from the anchor (its near end) along the road, away from the
        camera (`away_xy`, `away_from_camera_xy` at the anchors); as the truth places them. Counting follows
        the anchor, which crosses the count line."""
        half_length_m = np.asarray(TYPICAL_LENGTH_M)[np.asarray(class_ids)] / 2
        return points_in_polygon(ground_xy + half_length_m[:, None] * _footprint_axis_xy(geometry, away_xy), geometry.zone_xy)

    def _hides_line(self, geometry, vehicles: Detections, ground_xy: np.ndarray, away_xy: np.ndarray) -> bool:
        """Whether vehicles hide at least half of the segment's count line: their box covers a point of it
        that their footprint (a typical length on from the anchor along the road, away from the camera; a
        typical width across) is not over. A vehicle standing on the line, in a queue at it, covers only
        the line under it, where nothing crosses unseen; one beside it or nearer hides it."""
        u, v = geometry.line_points_uv[:, 0], geometry.line_points_uv[:, 1]
        boxes = vehicles.xyxy.astype(np.float64)[:, None, :]
        covered = (boxes[..., 0] <= u) & (u <= boxes[..., 2]) & (boxes[..., 1] <= v) & (v < boxes[..., 3])
        if not covered.any():
            return False
        axis_xy = _footprint_axis_xy(geometry, away_xy)
        rel = geometry.line_points_xy[None] - ground_xy[:, None]
        along_m = np.einsum("npk,nk->np", rel, axis_xy)
        across_m = np.abs(rel[..., 0] * axis_xy[:, None, 1] - rel[..., 1] * axis_xy[:, None, 0])
        length_m = np.asarray(TYPICAL_LENGTH_M)[vehicles.class_id][:, None]
        width_m = np.asarray(TYPICAL_WIDTH_M)[vehicles.class_id][:, None]
        under = (along_m >= -FOOTPRINT_SLACK_M) & (along_m <= length_m + FOOTPRINT_SLACK_M) & (
            across_m <= width_m / 2 + FOOTPRINT_SLACK_M)
        return bool((covered & ~under).any(axis=0).mean() >= 0.5)

    def _hold_hidden_standing(self, t_s: float, dt_s: float, seen_ids: list[int], ground_xy: np.ndarray) -> None:
        """Keeps counting the time of a standing vehicle lost in a queue (`HIDDEN_*`): the vehicles in front of
        it in the nearer lanes hide it, and it stands there until the queue moves on. Without it, a jammed
        segment loses its hidden queue's time and reads a class or two too fast."""
        seen = set(seen_ids)
        standing_now = np.array([float(np.linalg.norm(self._velocity_xy.get(t, np.full(2, np.inf)))) <= HIDDEN_STANDING_MPS for t in seen_ids], bool)
        for track_id, (seen_s, uv, xy) in self._last.items():
            velocity = self._velocity_xy.get(track_id)
            if track_id in seen or not MAX_GAP_S < t_s - seen_s <= HIDDEN_HOLD_S or velocity is None:
                continue
            if float(np.linalg.norm(velocity)) > HIDDEN_STANDING_MPS:
                continue
            distance_m = np.linalg.norm(ground_xy - xy, axis=1)
            if (distance_m < HIDDEN_FREED_M).any() or not (standing_now & (distance_m <= HIDDEN_QUEUE_M)).any():
                continue
            away_xy = away_from_camera_xy(self._homography, uv[None])
            for geometry in self._segments:
                if self._inside(geometry, xy[None], away_xy, [self._class_id[track_id]])[0]:
                    self._totals[geometry.segment.id].vehicle_seconds += dt_s

    def _record_running(self, t_s: float) -> None:
        for segment_id, running in self._running.items():
            totals = self._totals[segment_id]
            closed_vehicle_s, closed_metres = self._closed_totals[segment_id]
            running.append((t_s, closed_vehicle_s + totals.vehicle_seconds, closed_metres + totals.metres))
            while len(running) > 1 and running[1][0] <= t_s - RECENT_S:
                running.popleft()

    def _reverses(self, track_id: int, xy: np.ndarray, t_s: float) -> bool:
        """Whether the track steps back against its motion (`kinematics.against_motion`): it jumped to
        another road user (a car going the other way, where small far boxes meet), whose travel must not
        cancel the first one's."""
        previous, velocity = self._last.get(track_id), self._velocity_xy.get(track_id)
        if previous is None or velocity is None or not 0 < t_s - previous[0] <= MAX_GAP_S:
            return False
        return bool(against_motion(((xy - previous[2]) / (t_s - previous[0]))[None], velocity[None])[0])

    def _count(self, geometry, class_id: int, xy: np.ndarray, t_s: float) -> None:
        """One crossing, unless another track crossed at the same place and moment: two tracks on one vehicle
        (an identity switch left a duplicate), since no two vehicles cross within `SAME_CROSSING_S` in a lane."""
        recent = self._crossings[geometry.segment.id]
        while recent and t_s - recent[0][0] > SAME_CROSSING_S:
            recent.popleft()
        duplicate = any(float(np.linalg.norm(xy - seen_xy)) <= SAME_CROSSING_M for _, seen_xy in recent)
        recent.append((t_s, xy))
        if duplicate:
            return
        totals = self._totals[geometry.segment.id]
        totals.crossings += 1
        totals.class_counts[class_id] += 1

    def _stitch(self, geometry, track_id: int, class_id: int, xy: np.ndarray, t_s: float, current_ids: np.ndarray,
                others_xy: np.ndarray) -> None:
        """A new track in the zone: find the lost track it continues (the nearest constant-velocity
        prediction, in the lane, not well behind it). The continuation of a counted vehicle is not counted
        again; one born past the line that continues a vehicle lost before it crossed unseen: counted. One
        born just past the line that continues nothing may have crossed it hidden (`EMERGED_*`)."""
        counted = self._counted[geometry.segment.id]
        direction = geometry.direction_xy
        best, best_miss_m = None, math.inf
        for other, (seen_s, uv, last_xy) in self._last.items():
            gap_s = t_s - seen_s
            if not 0 < gap_s <= COUNT_MAX_GAP_S or other in current_ids or not points_in_polygon(uv[None], geometry.zone_uv)[0]:
                continue
            velocity = self._velocity_xy.get(other, np.zeros(2))
            predicted = last_xy + velocity * gap_s
            offset = xy - predicted
            lateral_m = abs(float(offset[0] * direction[1] - offset[1] * direction[0]))
            miss_m = float(np.linalg.norm(offset))
            if (
                lateral_m <= STITCH_LATERAL_M
                and float((xy - last_xy) @ direction) >= -STITCH_BACK_M
                and miss_m <= STITCH_RADIUS_M + STITCH_SPREAD * float(np.linalg.norm(velocity)) * gap_s
                and miss_m < best_miss_m
            ):
                best, best_miss_m = other, miss_m
        past_m = float((xy - geometry.line_mid_xy) @ direction)
        if best is None:
            alone = not (np.linalg.norm(others_xy - xy, axis=1) <= STITCH_RADIUS_M).any()
            hidden_s = t_s - self._line_hidden_since.get(geometry.segment.id, t_s)
            if 0 < past_m <= EMERGED_REACH_M and alone and hidden_s >= EMERGED_HIDDEN_S:
                self._emerged[geometry.segment.id][track_id] = (t_s, xy)
            return
        past_line = past_m > 0
        lost_before_line = float((self._last[best][2] - geometry.line_mid_xy) @ direction) < 0
        if best in counted or (past_line and not lost_before_line):
            counted[track_id] = t_s  # the vehicle was counted, or is past the line without crossing it
        elif past_line:
            counted[best] = counted[track_id] = t_s
            self._count(geometry, class_id, xy, t_s)

    def _count_emerged(self, geometry, track_id: int, class_id: int, xy: np.ndarray, t_s: float) -> None:
        """Counts a track first seen past the line (`EMERGED_*`) once it has driven on at speed."""
        born_s, born_xy = self._emerged[geometry.segment.id][track_id]
        along_m = float((xy - born_xy) @ geometry.direction_xy)
        if along_m >= EMERGED_MIN_M and along_m >= UNSEEN_CROSSING_MIN_MPS * (t_s - born_s):
            del self._emerged[geometry.segment.id][track_id]
            self._counted[geometry.segment.id][track_id] = t_s
            self._count(geometry, class_id, xy, t_s)

    def _count_unseen_crossings(self, t_s: float) -> None:
        """Counts the vehicles that crossed a count line hidden (a standing truck or a bus in the nearer lane
        covers it), from their last speed (`UNSEEN_CROSSING_*`), at their predicted crossing. A continuation
        found later is stitched to a counted track, so it is not counted again."""
        for geometry in self._segments:
            counted = self._counted[geometry.segment.id]
            for track_id, (seen_s, uv, xy) in self._last.items():
                velocity = self._velocity_xy.get(track_id)
                if track_id in counted or velocity is None or not 0 < t_s - seen_s <= COUNT_MAX_GAP_S:
                    continue
                speed_mps = float(velocity @ geometry.direction_xy)
                to_line_m = -float((xy - geometry.line_mid_xy) @ geometry.direction_xy)
                if speed_mps < UNSEEN_CROSSING_MIN_MPS or not 0 < to_line_m <= UNSEEN_CROSSING_REACH_M:
                    continue
                crossing_s = seen_s + to_line_m / speed_mps
                if t_s >= crossing_s + UNSEEN_CROSSING_WAIT_S and points_in_polygon(uv[None], geometry.zone_uv)[0]:
                    counted[track_id] = t_s
                    self._count(geometry, self._class_id[track_id], xy + velocity * (crossing_s - seen_s), crossing_s)

    def _advance(self, ts: datetime) -> list[SegmentWindow]:
        closed: list[SegmentWindow] = []
        if self._window_end is None:
            self._window_end = window_end_for(ts, self.window_s)
        while ts >= self._window_end:
            closed.extend(self._close())
            self._window_end += timedelta(seconds=self.window_s)
        return closed

    def _close(self) -> list[SegmentWindow]:
        windows = []
        for geometry in self._segments:
            segment = geometry.segment
            totals = self._totals[segment.id]
            speed = _speed_kmh(totals.metres, totals.vehicle_seconds)
            ratio = _speed_ratio(speed, segment)
            windows.append(
                SegmentWindow(
                    segment_id=segment.id,
                    camera_id=self.camera_id,
                    window_end=self._window_end,
                    window_s=self.window_s,
                    vehicle_count=totals.crossings,
                    flow_vph=totals.crossings * 3600.0 / self.window_s,
                    mean_speed_kmh=speed,
                    density_vpkm=totals.vehicle_seconds / self.window_s / (segment.length_m / 1000.0),
                    speed_ratio=ratio,
                    los=level_of_service(ratio),
                    occupancy=min(totals.line_seconds / (self.window_s * max(segment.lanes, 1)), 1.0),
                    class_counts=tuple(totals.class_counts),
                )
            )
            closed_vehicle_s, closed_metres = self._closed_totals[segment.id]
            self._closed_totals[segment.id] = (closed_vehicle_s + totals.vehicle_seconds, closed_metres + totals.metres)
            self._totals[segment.id] = _Totals()
        return windows

    def _forget(self, t_s: float) -> None:
        """Drop state of tracks unseen for a while, so memory stays bounded on a 24/7 stream."""
        stale = [track_id for track_id, (seen_s, _, _) in self._last.items() if t_s - seen_s > 30.0]
        for track_id in stale:
            del self._last[track_id]
            del self._class_id[track_id]
            self._velocity_xy.pop(track_id, None)
            self._leg.pop(track_id, None)
        for counted in self._counted.values():
            for track_id in [t for t, when in counted.items() if t_s - when > 600.0]:
                del counted[track_id]
        for emerged in self._emerged.values():
            for track_id in [t for t in emerged if t not in self._last]:
                del emerged[track_id]


def _speed_kmh(metres: float, vehicle_seconds: float) -> float | None:
    """Space-mean speed of the metres travelled over the vehicle-seconds spent; None without vehicle-time."""
    if vehicle_seconds <= 0:
        return None
    return max(metres, 0.0) / vehicle_seconds * 3.6


def _speed_ratio(speed_kmh: float | None, segment: Segment) -> float | None:
    return speed_kmh / segment.speed_limit_kmh if speed_kmh is not None else None


def _footprint_axis_xy(geometry: _SegmentGeometry, away_xy: np.ndarray) -> np.ndarray:
    """(n, 2) unit vectors along the segment's road pointing away from the camera at each anchor (`away_xy`,
    `away_from_camera_xy` there): the way a vehicle's footprint extends from its anchor, its near end."""
    return np.sign(away_xy @ geometry.direction_xy + 1e-12)[:, None] * geometry.direction_xy


def window_end_for(ts: datetime, window_s: float) -> datetime:
    """End of the epoch-aligned window that contains `ts`."""
    epoch_s = ts.timestamp()
    end_s = (math.floor(epoch_s / window_s) + 1) * window_s
    return datetime.fromtimestamp(end_s, tz=timezone.utc)
