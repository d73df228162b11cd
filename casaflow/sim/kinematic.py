"""Road users that SUMO cannot drive: the wrong-way driver and the pedestrian crossing mid-block.

They move on scripted straight paths. So that nobody drives through them, each is placed in the
first gap of the recorded SUMO traffic, searched from the staged time onwards, on its drawn segment or,
where that one has none, on the candidate segment whose gap comes first.
"""

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import sumolib

from casaflow.sim.cameras import CameraPlan, SegmentView
from casaflow.sim.scenario import IncidentSpec
from casaflow.sim.traffic import KinematicTrack, Recording, TruthIncident

WRONG_WAY_SPEED_MPS = 8.5
WALK_SPEED_MPS = 1.3
SEARCH_S = 150.0
CLEARANCE_M = {"car": 6.5, "pedestrian": 3.5}
LATERAL_CLEARANCE_M = {"car": 2.5, "pedestrian": float("inf")}
"""A vehicle further than this to the side of a scripted driver's path passes it in the next lane (a
two-way road's facing traffic passes 3 m from a wrong-way driver, which is no conflict); anywhere within
`CLEARANCE_M` of a walking pedestrian is one."""


def stage_kinematic(
    specs: list[IncidentSpec],
    plans: list[CameraPlan],
    recording: Recording,
    net_path: str,
    *,
    seed: int,
) -> tuple[list[KinematicTrack], list[TruthIncident]]:
    """Place every wrong_way and pedestrian_on_road incident of the scenario into the recording."""
    rng = np.random.default_rng(seed + 32452843)
    net = sumolib.net.readNet(net_path)
    vehicle_rows = _vehicle_rows(recording)
    tracks, incidents = [], []
    two_way = [p for p in plans if p.facing is not None] or plans
    midblock = [p for p in plans if p.kind == "midblock"] or plans
    for spec in specs:
        pool = two_way if spec.type == "wrong_way" else midblock
        speed, cls, colour = (
            (WRONG_WAY_SPEED_MPS, "car", (230, 230, 230)) if spec.type == "wrong_way"
            else (WALK_SPEED_MPS, "pedestrian", (170, 40, 40))
        )
        for k in range(spec.count):
            name = f"{'ww' if spec.type == 'wrong_way' else 'jw'}{len(tracks)}"
            drawn = int(rng.integers(len(pool)))
            start_frame = int((spec.at_s + 60.0 * k) * recording.fps)
            placements = (
                _placement(spec.type, pool[(drawn + i) % len(pool)], net, vehicle_rows, recording, speed=speed,
                           start_frame=start_frame, clearance_m=CLEARANCE_M[cls],
                           lateral_clearance_m=LATERAL_CLEARANCE_M[cls])
                for i in range(len(pool))
            )
            placed = _first_clear(placements)
            n, first = len(placed.xy), placed.first_frame
            frames = first + np.arange(n)
            keep = frames < recording.n_frames
            tracks.append(KinematicTrack(name, cls, frames[keep], placed.xy[keep], placed.heading, speed, colour))
            entered = first + int(placed.zone_s[0] / placed.length_m * (n - 1))
            left = first + int(placed.zone_s[1] / placed.length_m * (n - 1))
            if entered < recording.n_frames:
                incidents.append(
                    TruthIncident(
                        spec.type, placed.plan.camera_id, placed.plan.viewed.segment_id, entered / recording.fps,
                        min(left, recording.n_frames - 1) / recording.fps, (name,),
                    )
                )
    return tracks, incidents


class _Placement(NamedTuple):
    """A scripted road user's path on `plan`'s segment, one point per frame from `first_frame`."""

    plan: CameraPlan
    xy: np.ndarray
    zone_s: tuple[float, float]
    """Where along the path (metres) it is inside the viewed zone."""
    heading: float
    length_m: float
    first_frame: int
    conflicts: int
    """Vehicle-frames in which recorded traffic comes within the clearance of it (0: a gap was found)."""


def _placement(type_: str, plan: CameraPlan, net, vehicle_rows, recording: Recording, *, speed: float, start_frame: int,
               clearance_m: float, lateral_clearance_m: float) -> _Placement:
    """The path on `plan`'s segment, started in the first gap of its traffic (`_first_gap`)."""
    path_xy, zone_s, heading = _wrong_way_path(plan.viewed, net) if type_ == "wrong_way" else _crossing_path(plan, net)
    length_m = float(np.linalg.norm(path_xy[1] - path_xy[0]))
    n = int(length_m / speed * recording.fps)
    fraction = np.arange(n) / max(n - 1, 1)
    xy = path_xy[0] + fraction[:, None] * (path_xy[1] - path_xy[0])
    first, conflicts = _first_gap(xy, vehicle_rows, recording, start_frame=start_frame, clearance_m=clearance_m,
                                  lateral_clearance_m=lateral_clearance_m)
    return _Placement(plan, xy, zone_s, heading, length_m, first, conflicts)


def _first_clear(placements: Iterator[_Placement]) -> _Placement:
    """The first placement if it meets no traffic (the others are not computed then), else the one that
    meets none earliest, else the least crowded: a wrong-way driver staged on a segment whose lane stands
    queued for the whole search would drive through the queue, which nobody does (and which no camera could
    tell from the queue's own cars)."""
    drawn = next(placements)
    if drawn.conflicts == 0:
        return drawn
    return min([drawn, *placements], key=lambda p: (p.conflicts > 0, p.first_frame if p.conflicts == 0 else p.conflicts))


def _vehicle_rows(recording: Recording) -> tuple[np.ndarray, np.ndarray]:
    is_vehicle = np.array([cls != "pedestrian" for cls in recording.object_cls])[recording.obj]
    frame = np.repeat(np.arange(recording.n_frames), np.diff(recording.frame_offsets))
    return frame[is_vehicle], np.stack([recording.x_m, recording.y_m], axis=1)[is_vehicle]


def _first_gap(xy, vehicle_rows, recording: Recording, *, start_frame: int, clearance_m: float,
               lateral_clearance_m: float) -> tuple[int, int]:
    """`(start frame, conflicts)`: the first start frame (every half second) at which the path never comes
    within the clearances of a recorded vehicle (`clearance_m` away and `lateral_clearance_m` to the side of
    the path), or the least crowded one if the traffic leaves no such gap, with the vehicle-frames it comes
    that close in."""
    frame, vehicle_xy = vehicle_rows
    n = len(xy)
    step = max(int(recording.fps / 2), 1)
    last = min(start_frame + int(SEARCH_S * recording.fps), recording.n_frames - n)
    lo, hi = np.searchsorted(frame, [start_frame, last + n])
    frame, vehicle_xy = frame[lo:hi], vehicle_xy[lo:hi]
    near_path = np.min(np.linalg.norm(vehicle_xy[:, None, :] - xy[:: max(n // 40, 1)][None], axis=2), axis=1) < 10
    frame, vehicle_xy = frame[near_path], vehicle_xy[near_path]
    unit = (xy[-1] - xy[0]) / max(float(np.linalg.norm(xy[-1] - xy[0])), 1e-9)
    best, best_conflicts = start_frame, None
    for first in range(start_frame, max(last, start_frame) + 1, step):
        rows = slice(*np.searchsorted(frame, [first, first + n]))
        offset = frame[rows] - first
        rel = vehicle_xy[rows] - xy[offset]
        lateral_m = np.abs(rel[:, 0] * unit[1] - rel[:, 1] * unit[0])
        conflicts = int(np.sum((np.linalg.norm(rel, axis=1) < clearance_m) & (lateral_m < lateral_clearance_m)))
        if conflicts == 0:
            return first, 0
        if best_conflicts is None or conflicts < best_conflicts:
            best, best_conflicts = first, conflicts
    return best, best_conflicts


def _lane_frame(lane) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape = np.asarray(lane.getShape(), dtype=np.float64)
    unit = (shape[-1] - shape[0]) / np.linalg.norm(shape[-1] - shape[0])
    return shape[0], unit, np.array([unit[1], -unit[0]])


def _wrong_way_path(view: SegmentView, net) -> tuple[np.ndarray, tuple[float, float], float]:
    """Against the traffic along the view's leftmost lane, from beyond its zone to short of it."""
    lane = net.getLane(view.lane_ids[-1])
    origin, unit, _ = _lane_frame(lane)
    start_m = min(view.end_m + 35.0, lane.getLength())
    end_m = max(view.start_m - 20.0, 0.0)
    path = np.array([origin + unit * start_m, origin + unit * end_m])
    zone = (start_m - view.end_m, start_m - view.start_m)
    return path, zone, (view.direction_deg + 180.0) % 360


def _crossing_path(plan: CameraPlan, net) -> tuple[np.ndarray, tuple[float, float], float]:
    """Across every lane of the road, kerb to kerb, at the middle of the viewed zone."""
    view = plan.viewed
    along_m = (view.start_m + view.end_m) / 2
    right_lane = net.getLane(view.lane_ids[0])
    origin, unit, right = _lane_frame(right_lane)
    right_kerb = origin + unit * along_m + right * right_lane.getWidth() / 2
    road_width_m = sum(net.getLane(lane).getWidth() for lane in view.lane_ids)
    if plan.facing is not None:
        road_width_m += sum(net.getLane(lane).getWidth() for lane in plan.facing.lane_ids)
    start = right_kerb + right * 1.5
    end = right_kerb - right * (road_width_m + 1.5)
    heading = (np.degrees(np.arctan2(-right[0], -right[1]))) % 360
    return np.array([start, end]), (1.5, 1.5 + road_width_m), float(heading)
