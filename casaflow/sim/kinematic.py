"""Road users that SUMO cannot drive: the wrong-way driver and the pedestrian crossing mid-block.

They move on scripted straight paths. So that nobody drives through them, each is placed in the
first gap of the recorded SUMO traffic, searched from the staged time onwards.
"""

import numpy as np
import sumolib

from casaflow.sim.cameras import CameraPlan, SegmentView
from casaflow.sim.scenario import IncidentSpec
from casaflow.sim.traffic import KinematicTrack, Recording, TruthIncident

WRONG_WAY_SPEED_MPS = 8.5
WALK_SPEED_MPS = 1.3
SEARCH_S = 150.0
CLEARANCE_M = {"car": 6.5, "pedestrian": 3.5}


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
        for k in range(spec.count):
            name = f"{'ww' if spec.type == 'wrong_way' else 'jw'}{len(tracks)}"
            pool = two_way if spec.type == "wrong_way" else midblock
            plan = pool[int(rng.integers(len(pool)))]
            if spec.type == "wrong_way":
                path_xy, zone_s, heading = _wrong_way_path(plan.viewed, net)
                speed, cls, colour = WRONG_WAY_SPEED_MPS, "car", (230, 230, 230)
            else:
                path_xy, zone_s, heading = _crossing_path(plan, net)
                speed, cls, colour = WALK_SPEED_MPS, "pedestrian", (170, 40, 40)
            length_m = float(np.linalg.norm(path_xy[1] - path_xy[0]))
            n = int(length_m / speed * recording.fps)
            fraction = np.arange(n) / max(n - 1, 1)
            xy = path_xy[0] + fraction[:, None] * (path_xy[1] - path_xy[0])
            first = _first_gap(xy, vehicle_rows, recording, start_frame=int((spec.at_s + 60.0 * k) * recording.fps),
                               clearance_m=CLEARANCE_M[cls])
            frames = first + np.arange(n)
            keep = frames < recording.n_frames
            tracks.append(KinematicTrack(name, cls, frames[keep], xy[keep], heading, speed, colour))
            entered = first + int(zone_s[0] / length_m * (n - 1))
            left = first + int(zone_s[1] / length_m * (n - 1))
            if entered < recording.n_frames:
                incidents.append(
                    TruthIncident(
                        spec.type, plan.camera_id, plan.viewed.segment_id, entered / recording.fps,
                        min(left, recording.n_frames - 1) / recording.fps, (name,),
                    )
                )
    return tracks, incidents


def _vehicle_rows(recording: Recording) -> tuple[np.ndarray, np.ndarray]:
    is_vehicle = np.array([cls != "pedestrian" for cls in recording.object_cls])[recording.obj]
    frame = np.repeat(np.arange(recording.n_frames), np.diff(recording.frame_offsets))
    return frame[is_vehicle], np.stack([recording.x_m, recording.y_m], axis=1)[is_vehicle]


def _first_gap(xy, vehicle_rows, recording: Recording, *, start_frame: int, clearance_m: float) -> int:
    """The first start frame (every half second) at which the path never comes within the clearance
    of a recorded vehicle; the least crowded one if the traffic leaves no such gap."""
    frame, vehicle_xy = vehicle_rows
    n = len(xy)
    step = max(int(recording.fps / 2), 1)
    last = min(start_frame + int(SEARCH_S * recording.fps), recording.n_frames - n)
    lo, hi = np.searchsorted(frame, [start_frame, last + n])
    frame, vehicle_xy = frame[lo:hi], vehicle_xy[lo:hi]
    near_path = np.min(np.linalg.norm(vehicle_xy[:, None, :] - xy[:: max(n // 40, 1)][None], axis=2), axis=1) < 10
    frame, vehicle_xy = frame[near_path], vehicle_xy[near_path]
    best, best_conflicts = start_frame, None
    for first in range(start_frame, max(last, start_frame) + 1, step):
        rows = (frame >= first) & (frame < first + n)
        offset = frame[rows] - first
        conflicts = int(np.sum(np.linalg.norm(vehicle_xy[rows] - xy[offset], axis=1) < clearance_m))
        if conflicts == 0:
            return first
        if best_conflicts is None or conflicts < best_conflicts:
            best, best_conflicts = first, conflicts
    return best


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
