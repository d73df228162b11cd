"""Run SUMO for a scenario: stage the incidents, record every road user near a camera, and measure truth.

SUMO runs in-process through libsumo with one step per video frame, so positions, signal phases and
detector readings are exact at every frame. Truth comes from what the simulation actually did:
SUMO induction loops (E1) on the count lines and the vehicles' centres in the zones for the
segment windows; the vehicles' own crossings of red stop lines and their speeds through the zones
for red_light and speeding; SUMO's collision reports; the staged stops as SUMO carried them out.
"""

import contextlib
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from casaflow.sim.cameras import CameraPlan, SegmentView
from casaflow.sim.demand import SHAPES
from casaflow.sim.network import Network, sumo_binary
from casaflow.sim.scenario import IncidentSpec, Scenario

with contextlib.redirect_stdout(io.StringIO()):
    import libsumo

VIEW_RADIUS_M = 170.0
KINEMATIC_TYPES = ("wrong_way", "pedestrian_on_road")
STOP_TYPES = ("stopped_vehicle", "collision", "illegal_stopping")
SPEED_MODE_IGNORE_LIMIT = 0b11110
"""Regard acceleration limits, right of way and red lights, but not the safe (limit-capped) speed."""
SPEED_MODE_RUN_RED = 0b00111
SPEEDER_EXCESS_KMH = 30.0
SPEEDING_TOLERANCE_KMH = 10.0
SPEEDING_MIN_DISTANCE_M = 20.0
MOVING_MPS = 0.5
PASSING_MPS = 3.0
"""A vehicle driving past a standing one at this speed or faster shows that traffic moves past it."""
QUEUE_GAP_M = 12.0
"""A vehicle standing at most this far (bumper to bumper) ahead of a standing one makes it part of a queue."""
STOPPED_MPS = 0.1
COLLISION_AT = 0.45
"""Where along its zone a staged collision's lead vehicle stops (fraction of the zone's length)."""
RAM_REACH_M = 15.0
"""The follower stops heeding its lead once the lead is this close to its stop: the impact is in the zone."""
CAR_COLOURS = (
    (235, 235, 232), (200, 202, 206), (40, 40, 44), (120, 122, 128), (190, 30, 35), (30, 60, 140),
    (20, 90, 60), (215, 210, 190), (150, 90, 40), (70, 40, 90),
)
TAXI_RED = (200, 24, 28)
CLASS_COLOURS = {
    "bus": ((245, 245, 245), (215, 180, 30), (40, 110, 190)),
    "truck": ((230, 230, 230), (60, 100, 160), (200, 120, 30), (90, 90, 90)),
    "motorcycle": ((30, 30, 30), (180, 30, 30), (60, 60, 150)),
    "bicycle": ((40, 120, 60), (200, 200, 40), (30, 30, 30)),
    "pedestrian": ((70, 60, 140), (160, 40, 40), (60, 110, 70), (40, 40, 40), (210, 190, 150)),
}


@dataclass
class Recording:
    """Every road user near a camera at every recorded frame, as flat columns sorted by frame.

    Rows of frame k are `frame_offsets[k]:frame_offsets[k+1]`. Positions are the centre of the
    ground footprint in local metres; `lane` indexes `lane_ids` (-1 off the road network's lanes).
    """

    fps: float
    object_ids: list[str]
    object_cls: list[str]
    object_dims_m: np.ndarray  # (n_objects, 3) length, width, height
    object_colour: np.ndarray  # (n_objects, 3) uint8 RGB
    frame_offsets: np.ndarray  # (n_frames + 1,) int64
    obj: np.ndarray  # (rows,) int32
    x_m: np.ndarray  # (rows,) float32
    y_m: np.ndarray
    heading_deg: np.ndarray
    speed_mps: np.ndarray
    lane: np.ndarray  # (rows,) int32
    lane_pos_m: np.ndarray  # (rows,) float32
    lane_ids: list[str]
    signal_ids: list[str]
    signal_states: np.ndarray  # (n_frames, n_signals) uint8 of b"r", b"y", b"g"

    @property
    def n_frames(self) -> int:
        return len(self.frame_offsets) - 1

    def save(self, path: Path) -> None:
        np.savez(
            path,
            fps=self.fps,
            object_ids=np.array(self.object_ids),
            object_cls=np.array(self.object_cls),
            object_dims_m=self.object_dims_m,
            object_colour=self.object_colour,
            frame_offsets=self.frame_offsets,
            obj=self.obj,
            x_m=self.x_m,
            y_m=self.y_m,
            heading_deg=self.heading_deg,
            speed_mps=self.speed_mps,
            lane=self.lane,
            lane_pos_m=self.lane_pos_m,
            lane_ids=np.array(self.lane_ids),
            signal_ids=np.array(self.signal_ids),
            signal_states=self.signal_states,
        )

    @classmethod
    def load(cls, path: Path) -> "Recording":
        with np.load(path) as data:
            values = {key: data[key] for key in data.files}
        for key in ("object_ids", "object_cls", "lane_ids", "signal_ids"):
            values[key] = [str(v) for v in values[key]]
        values["fps"] = float(values["fps"])
        return cls(**values)

    def with_objects(self, tracks: list["KinematicTrack"]) -> "Recording":
        """A copy with scripted (non-SUMO) road users added frame by frame."""
        if not tracks:
            return self
        object_ids, object_cls = list(self.object_ids), list(self.object_cls)
        dims, colours = [self.object_dims_m], [self.object_colour]
        frame = np.repeat(np.arange(self.n_frames), np.diff(self.frame_offsets))
        columns = {
            "frame": [frame], "obj": [self.obj], "x_m": [self.x_m], "y_m": [self.y_m],
            "heading_deg": [self.heading_deg], "speed_mps": [self.speed_mps],
            "lane": [self.lane], "lane_pos_m": [self.lane_pos_m],
        }
        for track in tracks:
            index = len(object_ids)
            object_ids.append(track.object_id)
            object_cls.append(track.cls)
            shape = SHAPES[track.cls]
            dims.append(np.array([[shape.length_m, shape.width_m, shape.height_m]]))
            colours.append(np.array([track.colour], dtype=np.uint8))
            n = len(track.frames)
            columns["frame"].append(track.frames)
            columns["obj"].append(np.full(n, index, np.int32))
            columns["x_m"].append(track.xy_m[:, 0].astype(np.float32))
            columns["y_m"].append(track.xy_m[:, 1].astype(np.float32))
            columns["heading_deg"].append(np.full(n, track.heading_deg, np.float32))
            columns["speed_mps"].append(np.full(n, track.speed_mps, np.float32))
            columns["lane"].append(np.full(n, -1, np.int32))
            columns["lane_pos_m"].append(np.zeros(n, np.float32))
        merged = {key: np.concatenate(value) for key, value in columns.items()}
        order = np.argsort(merged["frame"], kind="stable")
        offsets = np.searchsorted(merged["frame"][order], np.arange(self.n_frames + 1))
        return Recording(
            fps=self.fps,
            object_ids=object_ids,
            object_cls=object_cls,
            object_dims_m=np.concatenate(dims),
            object_colour=np.concatenate(colours),
            frame_offsets=offsets.astype(np.int64),
            lane_ids=self.lane_ids,
            signal_ids=self.signal_ids,
            signal_states=self.signal_states,
            **{key: merged[key][order] for key in ("obj", "x_m", "y_m", "heading_deg", "speed_mps", "lane", "lane_pos_m")},
        )


@dataclass(frozen=True)
class KinematicTrack:
    """A road user moved by script rather than by SUMO (wrong-way driver, jaywalker)."""

    object_id: str
    cls: str
    frames: np.ndarray  # (n,) frame indices
    xy_m: np.ndarray  # (n, 2) footprint centre
    heading_deg: float
    speed_mps: float
    colour: tuple[int, int, int]


RED_LIGHT_MIN_MPS = 3.0
"""A vehicle entering a junction on red this fast crossed the line; a slower one crept over it as it stopped."""


@dataclass(frozen=True)
class TruthIncident:
    type: str
    camera_id: str
    segment_id: str
    start_s: float
    end_s: float
    object_ids: tuple[str, ...]


@dataclass
class WindowTotals:
    """Detector totals for one segment and one window."""

    crossings: int = 0
    vehicle_seconds: float = 0.0
    metres_travelled: float = 0.0
    loop_seconds: float = 0.0
    """Time the count loops were occupied, summed over the lanes."""
    class_crossings: dict[str, int] = field(default_factory=dict)


@dataclass
class TrafficResult:
    recording: Recording
    incidents: list[TruthIncident]
    windows: dict[tuple[str, int], WindowTotals]
    """(segment_id, window index since the recording start) -> totals."""
    steps: dict[str, np.ndarray]
    """segment_id -> (steps, 3) rows of `t_s, vehicle_seconds, metres_travelled` per simulation step."""


def run_traffic(
    scenario: Scenario,
    network: Network,
    plans: list[CameraPlan],
    routes_path: Path,
    *,
    seed: int,
    workdir: Path,
    progress=None,
) -> TrafficResult:
    """Simulate the warm-up and the recorded period; returns the recording and the measured truth."""
    dt_s = 1.0 / scenario.video.fps
    views = {view.segment_id: (plan, view) for plan in plans for view in plan.segments}
    additional = _write_detectors(views, workdir / "detectors.add.xml")
    collision_stop_s = max((spec.duration_s for spec in scenario.incidents if spec.type == "collision"), default=60)
    args = [
        sumo_binary("sumo"), "-n", str(network.net_path), "-r", str(routes_path), "-a", str(additional),
        "--step-length", f"{dt_s:.3f}", "--seed", str(seed), "--no-step-log", "true", "--no-warnings", "true",
        "--time-to-teleport", "-1", "--collision.action", "warn", "--collision.stoptime", f"{collision_stop_s:.0f}",
        "--collision.mingap-factor", "0", "--default.action-step-length", f"{max(dt_s, 0.2):.2f}",
        "--lanechange.duration", "3",
    ]
    os.environ.setdefault("SUMO_HOME", str(Path(sumo_binary("sumo")).parent.parent))
    libsumo.start(args)
    try:
        return _Run(scenario, plans, views, seed=seed, dt_s=dt_s, progress=progress).execute()
    finally:
        libsumo.close()


def _write_detectors(views: dict[str, tuple[CameraPlan, SegmentView]], path: Path) -> Path:
    lines = ["<additional>"]
    for segment_id, (_, view) in views.items():
        for lane_id in view.lane_ids:
            lines.append(
                f'  <inductionLoop id="e1|{segment_id}|{lane_id}" lane="{lane_id}" '
                f'pos="{view.count_position_m:.2f}" period="86400" file="{os.devnull}"/>'
            )
    lines.append("</additional>")
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class _StopWatch:
    """A vehicle expected to stand still: a staged stop, or the two vehicles of a collision.

    The incident runs from the moment it stood (plus the allowed time, for illegal stopping) to the
    moment it moves again. A collision starts at SUMO's report of the impact. A stopped vehicle is one
    that traffic moves past, in no queue (DESIGN.md): while the traffic beside it stands too, or a vehicle
    stands just ahead of it in its lane, it is one more car in a queue, so its incident starts once a
    vehicle has driven past it and its lane ahead is clear; without a passer there is none.
    """

    kind: str
    camera_id: str
    segment_id: str
    object_ids: tuple[str, ...]
    grace_s: float = 0.0
    start_s: float | None = None
    stood: bool = False
    moving_since_s: float | None = None
    needs_passer: bool = False
    passed: bool = False
    stood_at: tuple[str, float] | None = None
    """(edge id, lane position) where it stands."""


@dataclass
class _Staged:
    spec: IncidentSpec
    pool: list[tuple[CameraPlan, SegmentView]]
    at_s: float
    plan: CameraPlan | None = None
    view: SegmentView | None = None
    vehicle: str | None = None
    partner: str | None = None
    release_s: float | None = None
    stopped_at_s: float | None = None
    target_m: float | None = None
    rammed: bool = False
    entered: bool = False
    done: bool = False


class _Run:
    """One simulation: recording loop, incident staging and truth bookkeeping."""

    def __init__(self, scenario, plans, views, *, seed, dt_s, progress):
        self.scenario = scenario
        self.plans = plans
        self.views = views
        self.dt_s = dt_s
        self.progress = progress
        self.rng = np.random.default_rng(seed + 15485863)
        self.colour_seed = seed
        self.cameras_xy = np.array([[p.pinhole.x_m, p.pinhole.y_m] for p in plans])
        self.lane_to_view = {lane: view for _, view in views.values() for lane in view.lane_ids}
        self.object_index: dict[str, int] = {}
        self.object_cls: list[str] = []
        self.object_dims: list[tuple[float, float, float]] = []
        self.object_colour: list[tuple[int, int, int]] = []
        self.lane_index: dict[str, int] = {}
        self.incidents: list[TruthIncident] = []
        self.windows: dict[tuple[str, int], WindowTotals] = {}
        self.steps: dict[str, list[tuple[float, float, float]]] = {segment_id: [] for segment_id in views}
        self.counted: dict[str, set[str]] = {segment_id: set() for segment_id in views}
        self.in_zone: dict[str, dict[str, list[float]]] = {segment_id: {} for segment_id in views}
        self.red_watch: dict[str, tuple[CameraPlan, str]] = {}
        self.approach_lanes = {
            lane: plan for plan in plans if plan.kind == "intersection" for lane in plan.viewed.lane_ids
        }
        self.collisions_seen: set[tuple[str, str]] = set()
        self.watches: dict[str, _StopWatch] = {}
        self.previous_positions: dict[str, tuple[str, float]] = {}
        """(edge id, lane position) of every vehicle at the last step, kept only while a stop awaits its first passer."""
        self.next_edges: dict[str, str | None] = {}
        self.staged = self._stage_plan()
        self._signal_links()

    # -- setup -------------------------------------------------------------------------------

    def _stage_plan(self) -> list[_Staged]:
        """Assign each staged incident a camera and segment where it can happen in view.

        Stops and collisions go on multi-lane segments away from stop lines (so that they are not
        a queue), each on its own camera; red-light runners on the approaches to stop lines.
        """
        views = [(plan, view) for plan in self.plans for view in plan.segments]
        away_from_signals = [
            (plan, view) for plan, view in views if not (plan.kind == "intersection" and view is plan.viewed)
        ]
        pools = {
            "red_light": [(p, p.viewed) for p in self.plans if p.kind == "intersection"],
            "illegal_stopping": [(p, p.viewed) for p in self.plans if p.no_stopping_xy is not None],
            "stopped_vehicle": [(p, v) for p, v in away_from_signals if len(v.lane_ids) >= 2] or away_from_signals,
            "speeding": [(p, v) for p, v in views if v.start_m >= 80] or views,
        }
        pools["collision"] = (
            [(p, v) for p, v in away_from_signals if v.start_m >= 40]
            or [(p, v) for p, v in views if v.start_m >= 40]
            or views
        )
        staged = []
        for spec in self.scenario.incidents:
            if spec.type in KINEMATIC_TYPES:
                continue
            if not pools[spec.type]:
                raise ValueError(f"no camera of this scenario can show a staged {spec.type}")
            for k in range(spec.count):
                pool = [pools[spec.type][i] for i in self.rng.permutation(len(pools[spec.type]))]
                staged.append(_Staged(spec=spec, pool=pool, at_s=spec.at_s + 35.0 * k))
        return staged

    def _signal_links(self) -> None:
        self.signal_ids: list[str] = []
        self.signal_links: list[tuple[str, list[int]]] = []
        for tls in libsumo.trafficlight.getIDList():
            per_edge: dict[str, list[int]] = {}
            for index, links in enumerate(libsumo.trafficlight.getControlledLinks(tls)):
                for in_lane, _, _ in links:
                    if in_lane.startswith(":") or libsumo.lane.getAllowed(in_lane) == ("pedestrian",):
                        continue
                    per_edge.setdefault(in_lane.rsplit("_", 1)[0], []).append(index)
            for edge, indices in sorted(per_edge.items()):
                self.signal_ids.append(edge)
                self.signal_links.append((tls, sorted(set(indices))))

    # -- main loop -----------------------------------------------------------------------------

    def execute(self) -> TrafficResult:
        dt_s = self.dt_s
        warmup_steps = int(round(self.scenario.warmup_s / dt_s))
        n_frames = int(round(self.scenario.duration_s * self.scenario.video.fps))
        variables = [
            libsumo.constants.VAR_POSITION, libsumo.constants.VAR_ANGLE, libsumo.constants.VAR_SPEED,
            libsumo.constants.VAR_LANE_ID, libsumo.constants.VAR_LANEPOSITION, libsumo.constants.VAR_TYPE,
        ]
        for _ in range(warmup_steps):
            libsumo.simulationStep()
            self._subscribe(variables)
        columns: dict[str, list[np.ndarray]] = {k: [] for k in ("obj", "x", "y", "h", "v", "lane", "pos")}
        offsets = [0]
        signal_states = np.zeros((n_frames, len(self.signal_ids)), np.uint8)
        for frame in range(n_frames):
            t_s = frame * dt_s
            vehicles = libsumo.vehicle.getAllSubscriptionResults()
            persons = libsumo.person.getAllSubscriptionResults()
            rows = self._frame_rows(vehicles, persons)
            for key, value in zip(columns, rows):
                columns[key].append(value)
            offsets.append(offsets[-1] + len(rows[0]))
            signal_states[frame] = self._signal_states()
            self._measure(t_s, vehicles)
            self._stage(t_s, vehicles)
            libsumo.simulationStep()
            self._subscribe(variables)
            if self.progress is not None and frame % max(n_frames // 10, 1) == 0:
                self.progress(frame, n_frames)
        end_s = n_frames * dt_s
        self._close_open(end_s)
        recording = Recording(
            fps=float(self.scenario.video.fps),
            object_ids=list(self.object_index),
            object_cls=self.object_cls,
            object_dims_m=np.array(self.object_dims, np.float32).reshape(-1, 3),
            object_colour=np.array(self.object_colour, np.uint8).reshape(-1, 3),
            frame_offsets=np.array(offsets, np.int64),
            obj=np.concatenate(columns["obj"]).astype(np.int32),
            x_m=np.concatenate(columns["x"]).astype(np.float32),
            y_m=np.concatenate(columns["y"]).astype(np.float32),
            heading_deg=np.concatenate(columns["h"]).astype(np.float32),
            speed_mps=np.concatenate(columns["v"]).astype(np.float32),
            lane=np.concatenate(columns["lane"]).astype(np.int32),
            lane_pos_m=np.concatenate(columns["pos"]).astype(np.float32),
            lane_ids=list(self.lane_index),
            signal_ids=self.signal_ids,
            signal_states=signal_states,
        )
        steps = {segment_id: np.asarray(rows, np.float64).reshape(-1, 3) for segment_id, rows in self.steps.items()}
        return TrafficResult(recording=recording, incidents=self.incidents, windows=self.windows, steps=steps)

    def _subscribe(self, variables: list[int]) -> None:
        for vehicle in libsumo.simulation.getDepartedIDList():
            libsumo.vehicle.subscribe(vehicle, variables)
        for person in libsumo.simulation.getDepartedPersonIDList():
            libsumo.person.subscribe(person, variables)

    def _frame_rows(self, vehicles: dict, persons: dict) -> tuple[np.ndarray, ...]:
        ids = [*vehicles, *persons]
        if not ids:
            empty = np.zeros(0)
            return (empty.astype(np.int32), empty, empty, empty, empty, empty.astype(np.int32), empty)
        values = [*vehicles.values(), *persons.values()]
        c = libsumo.constants
        front = np.array([v[c.VAR_POSITION] for v in values], np.float64)
        near = (
            np.min(np.linalg.norm(front[:, None, :] - self.cameras_xy[None, :, :], axis=2), axis=1) < VIEW_RADIUS_M
        )
        obj, x, y, h, v, lane, pos = [], [], [], [], [], [], []
        for index in np.flatnonzero(near):
            object_id, value = ids[index], values[index]
            o = self._object(object_id, value[c.VAR_TYPE])
            heading = value[c.VAR_ANGLE]
            half_length = self.object_dims[o][0] / 2
            rad = math.radians(heading)
            obj.append(o)
            x.append(front[index, 0] - half_length * math.sin(rad))
            y.append(front[index, 1] - half_length * math.cos(rad))
            h.append(heading)
            v.append(value[c.VAR_SPEED])
            lane_id = value[c.VAR_LANE_ID]
            lane.append(self.lane_index.setdefault(lane_id, len(self.lane_index)) if lane_id else -1)
            pos.append(value[c.VAR_LANEPOSITION])
        return tuple(np.asarray(a) for a in (obj, x, y, h, v, lane, pos))

    def _object(self, object_id: str, type_id: str) -> int:
        index = self.object_index.get(object_id)
        if index is not None:
            return index
        cls = _vehicle_class(type_id)
        shape = SHAPES[cls]
        rng = np.random.default_rng([self.colour_seed, len(self.object_index)])
        scale = rng.uniform(0.92, 1.08)
        if cls == "car":
            colour = TAXI_RED if rng.random() < 0.18 else CAR_COLOURS[int(rng.integers(len(CAR_COLOURS)))]
        else:
            palette = CLASS_COLOURS[cls]
            colour = palette[int(rng.integers(len(palette)))]
        index = len(self.object_index)
        self.object_index[object_id] = index
        self.object_cls.append(cls)
        self.object_dims.append((shape.length_m * scale, shape.width_m, shape.height_m * rng.uniform(0.95, 1.05)))
        self.object_colour.append(colour)
        return index

    def _signal_states(self) -> np.ndarray:
        states = np.empty(len(self.signal_ids), np.uint8)
        cache: dict[str, str] = {}
        for k, (tls, indices) in enumerate(self.signal_links):
            state = cache.get(tls) or cache.setdefault(tls, libsumo.trafficlight.getRedYellowGreenState(tls))
            chars = {state[i] for i in indices}
            states[k] = ord("g") if chars & {"G", "g"} else ord("y") if chars & {"y", "Y"} else ord("r")
        return states

    # -- truth ---------------------------------------------------------------------------------

    def _window(self, t_s: float) -> int:
        return int(t_s // self.scenario.window_s)

    def _measure(self, t_s: float, vehicles: dict) -> None:
        c = libsumo.constants
        window = self._window(t_s)
        present = self._in_zones(vehicles)
        for segment_id, (_, view) in self.views.items():
            totals = self.windows.setdefault((segment_id, window), WindowTotals())
            counted = self.counted[segment_id]
            for lane_id in view.lane_ids:
                loop_id = f"e1|{segment_id}|{lane_id}"
                totals.loop_seconds += libsumo.inductionloop.getLastStepOccupancy(loop_id) / 100.0 * self.dt_s
                for vehicle in libsumo.inductionloop.getLastStepVehicleIDs(loop_id):
                    if vehicle not in counted:
                        counted.add(vehicle)
                        totals.crossings += 1
                        cls = _vehicle_class(libsumo.vehicle.getTypeID(vehicle))
                        totals.class_crossings[cls] = totals.class_crossings.get(cls, 0) + 1
            inside = present.get(segment_id, ())
            step_vehicle_s = len(inside) * self.dt_s
            step_metres = sum(vehicles[vehicle][c.VAR_SPEED] for vehicle in inside) * self.dt_s
            totals.vehicle_seconds += step_vehicle_s
            totals.metres_travelled += step_metres
            self.steps[segment_id].append((t_s, step_vehicle_s, step_metres))
        self._speeding(t_s, vehicles)
        self._red_lights(t_s, vehicles)
        self._collisions(t_s, vehicles)
        self._stops(t_s, vehicles)
        awaiting_passer = any(watch.needs_passer and watch.start_s is None for watch in self.watches.values())
        self.previous_positions = {
            vehicle: (value[c.VAR_LANE_ID].rsplit("_", 1)[0], value[c.VAR_LANEPOSITION]) for vehicle, value in vehicles.items()
        } if awaiting_passer else {}

    def _in_zones(self, vehicles: dict) -> dict[str, set[str]]:
        """Segment id -> the vehicles whose centre is in its zone: a vehicle is where its centre is (a lane-area
        detector counts every vehicle that touches the zone, so a queue ending just past the zone weighed in
        with its last cars' tails)."""
        c = libsumo.constants
        present: dict[str, set[str]] = {}
        for vehicle, value in vehicles.items():
            view = self.lane_to_view.get(value[c.VAR_LANE_ID])
            index = self.object_index.get(vehicle)
            if view is None or index is None:
                continue
            centre_m = value[c.VAR_LANEPOSITION] - self.object_dims[index][0] / 2
            if view.start_m <= centre_m <= view.end_m:
                present.setdefault(view.segment_id, set()).add(vehicle)
        return present

    def _speeding(self, t_s: float, vehicles: dict) -> None:
        c = libsumo.constants
        now: dict[str, set[str]] = {segment_id: set() for segment_id in self.views}
        for vehicle, value in vehicles.items():
            view = self.lane_to_view.get(value[c.VAR_LANE_ID])
            if view is None or not view.start_m <= value[c.VAR_LANEPOSITION] <= view.end_m:
                continue
            now[view.segment_id].add(vehicle)
            entry = self.in_zone[view.segment_id].setdefault(vehicle, [t_s, value[c.VAR_LANEPOSITION], t_s, 0.0])
            entry[2], entry[3] = t_s, value[c.VAR_LANEPOSITION]
        for segment_id, inside in self.in_zone.items():
            for vehicle in [v for v in inside if v not in now[segment_id]]:
                self._finish_passage(segment_id, vehicle, inside.pop(vehicle))

    def _finish_passage(self, segment_id: str, vehicle: str, entry: list[float]) -> None:
        plan, view = self.views[segment_id]
        t_in, s_in, t_out, s_out = entry
        distance_m = s_out - s_in
        if distance_m < SPEEDING_MIN_DISTANCE_M or t_out <= t_in:
            return
        speed_kmh = distance_m / (t_out - t_in) * 3.6
        if speed_kmh > view.speed_limit_kmh + SPEEDING_TOLERANCE_KMH:
            self.incidents.append(TruthIncident("speeding", plan.camera_id, segment_id, t_in, t_out, (vehicle,)))

    def _red_lights(self, t_s: float, vehicles: dict) -> None:
        """A vehicle that leaves a viewed stop-line approach into the junction while its signal is red, at
        `RED_LIGHT_MIN_MPS` or faster, whether or not it gets through (one held up in the junction crossed
        the line all the same); one that creeps over the line as it stops is not a red-light runner."""
        c = libsumo.constants
        for vehicle, value in vehicles.items():
            lane = value[c.VAR_LANE_ID]
            plan = self.approach_lanes.get(lane)
            if plan is not None and value[c.VAR_LANEPOSITION] > plan.viewed.start_m:
                upcoming = libsumo.vehicle.getNextTLS(vehicle)
                if upcoming:
                    self.red_watch[vehicle] = (plan, upcoming[0][3])
            elif vehicle in self.red_watch:
                plan, state = self.red_watch.pop(vehicle)
                if lane.startswith(":") and state in ("r", "R") and value[c.VAR_SPEED] >= RED_LIGHT_MIN_MPS:
                    self.incidents.append(
                        TruthIncident("red_light", plan.camera_id, plan.viewed.segment_id, t_s, t_s, (vehicle,))
                    )

    def _collisions(self, t_s: float, vehicles: dict) -> None:
        """SUMO's impacts, each on the camera whose zone holds it: off the zone's stretch of road the
        picture shows the vehicles a few pixels tall, cut by its edge, or not at all."""
        for collision in libsumo.simulation.getCollisions():
            pair = tuple(sorted((collision.collider, collision.victim)))
            if pair in self.collisions_seen:
                continue
            self.collisions_seen.add(pair)
            view = self.lane_to_view.get(collision.lane)
            if view is None or not view.start_m <= collision.pos <= view.end_m:
                continue
            plan, _ = self.views[view.segment_id]
            self.watches[collision.collider] = _StopWatch(
                "collision", plan.camera_id, view.segment_id, (collision.collider, collision.victim), start_s=t_s
            )
            for staged in self.staged:
                if staged.spec.type == "collision" and staged.partner in pair and staged.release_s is None:
                    libsumo.vehicle.setSpeed(staged.partner, 0.0)
                    if staged.partner == collision.collider:  # SUMO lets a collider drive on through: the wreck stays where it hit
                        libsumo.vehicle.moveTo(staged.partner, collision.lane, collision.pos)
                        libsumo.vehicle.setPreviousSpeed(staged.partner, 0.0)
                    staged.release_s = t_s + staged.spec.duration_s

    def _stops(self, t_s: float, vehicles: dict) -> None:
        c = libsumo.constants
        for vehicle, watch in list(self.watches.items()):
            value = vehicles.get(vehicle)
            if value is None:
                standing = False
            elif watch.kind == "collision":
                standing = value[c.VAR_SPEED] < MOVING_MPS
            else:
                standing = libsumo.vehicle.isStopped(vehicle)
            if standing:
                watch.moving_since_s = None
                if not watch.stood:
                    watch.stood = True
                    watch.stood_at = (value[c.VAR_LANE_ID].rsplit("_", 1)[0], value[c.VAR_LANEPOSITION])
                    if not watch.needs_passer:
                        watch.start_s = t_s + watch.grace_s if watch.start_s is None else watch.start_s
                if watch.start_s is None:
                    watch.passed = watch.passed or self._passed(vehicle, watch.stood_at, vehicles)
                    if watch.passed and not self._queued(vehicle, vehicles):
                        watch.start_s = t_s
            elif watch.stood:
                watch.moving_since_s = t_s if watch.moving_since_s is None else watch.moving_since_s
                if value is None or t_s - watch.moving_since_s >= 1.0:
                    del self.watches[vehicle]
                    self._close_watch(watch, watch.moving_since_s)

    def _passed(self, standing: str, stood_at: tuple[str, float], vehicles: dict) -> bool:
        """Whether a vehicle drove past the standing one since the last step, at `PASSING_MPS` or faster."""
        c = libsumo.constants
        edge_id, at_m = stood_at
        for vehicle, value in vehicles.items():
            before = self.previous_positions.get(vehicle)
            if vehicle == standing or before is None or before[0] != edge_id or value[c.VAR_SPEED] < PASSING_MPS:
                continue
            if value[c.VAR_LANE_ID].rsplit("_", 1)[0] == edge_id and before[1] < at_m <= value[c.VAR_LANEPOSITION]:
                return True
        return False

    @staticmethod
    def _queued(standing: str, vehicles: dict) -> bool:
        """Whether a vehicle stands within `QUEUE_GAP_M` ahead of the standing one in its lane."""
        leader = libsumo.vehicle.getLeader(standing, QUEUE_GAP_M)
        if not leader or not leader[0] or leader[1] + libsumo.vehicle.getMinGap(standing) > QUEUE_GAP_M:
            return False
        value = vehicles.get(leader[0])
        return value is None or value[libsumo.constants.VAR_SPEED] < MOVING_MPS

    def _close_watch(self, watch: _StopWatch, end_s: float) -> None:
        if watch.stood and watch.start_s is not None and end_s > watch.start_s:
            self.incidents.append(
                TruthIncident(watch.kind, watch.camera_id, watch.segment_id, watch.start_s, end_s, watch.object_ids)
            )

    def _close_open(self, end_s: float) -> None:
        for segment_id, inside in self.in_zone.items():
            for vehicle, entry in inside.items():
                self._finish_passage(segment_id, vehicle, entry)
        for watch in self.watches.values():
            self._close_watch(watch, end_s)
        self.incidents.sort(key=lambda incident: (incident.start_s, incident.camera_id))

    # -- staging -------------------------------------------------------------------------------

    def _stage(self, t_s: float, vehicles: dict) -> None:
        c = libsumo.constants
        for staged in self.staged:
            if staged.done or t_s < staged.at_s:
                continue
            if staged.vehicle is None:
                if int(round(t_s / self.dt_s)) % 5 == 0:
                    self.next_edges = {}
                    busy = {s.plan.camera_id for s in self.staged if s.plan is not None and not s.done}
                    for plan, view in staged.pool:
                        if plan.camera_id in busy and staged.spec.type in STOP_TYPES:
                            continue
                        staged.plan, staged.view = plan, view
                        if self._start(staged, t_s, vehicles):
                            break
                        staged.plan = staged.view = None
                continue
            value = vehicles.get(staged.vehicle)
            if staged.spec.type in ("red_light", "speeding"):
                on_edge = value is not None and value[c.VAR_LANE_ID].rsplit("_", 1)[0] == staged.view.edge_id
                staged.entered = staged.entered or on_edge
                if value is None or (staged.entered and not on_edge):
                    if value is not None:
                        self._restore(staged.vehicle)
                    staged.done = True
                elif staged.spec.type == "speeding" and self._too_close(staged.vehicle):
                    self._restore(staged.vehicle)
                    if value[c.VAR_LANEPOSITION] < staged.view.start_m:
                        staged.vehicle = staged.plan = staged.view = None
                    else:
                        staged.done = True
            elif staged.spec.type == "collision":
                if not staged.rammed and value is not None and staged.release_s is None:
                    self._ram(staged, value, vehicles)
                if staged.release_s is not None and t_s >= staged.release_s:
                    if staged.partner in vehicles:
                        self._restore(staged.partner)
                    staged.done = True
                elif staged.release_s is None and value is not None and value[c.VAR_SPEED] < STOPPED_MPS:
                    staged.stopped_at_s = staged.stopped_at_s or t_s
                    if t_s - staged.stopped_at_s > 8.0:
                        staged.done = True
                        if staged.partner in vehicles:
                            self._restore(staged.partner)
            else:
                staged.done = value is None

    def _ram(self, staged: _Staged, value: dict, vehicles: dict) -> None:
        """Once the lead of a staged collision is braking for its stop in the zone, its follower stops
        heeding it and drives on at 8 m/s or more: the impact happens between there and the stop."""
        c = libsumo.constants
        on_edge = value[c.VAR_LANE_ID].rsplit("_", 1)[0] == staged.view.edge_id
        ram_from_m = max(staged.target_m - RAM_REACH_M, staged.view.start_m)
        if not on_edge or value[c.VAR_LANEPOSITION] < ram_from_m:
            return
        staged.rammed = True
        if staged.partner in vehicles:
            libsumo.vehicle.setSpeedMode(staged.partner, 0)
            libsumo.vehicle.setSpeed(staged.partner, max(vehicles[staged.partner][c.VAR_SPEED], 8.0))

    @staticmethod
    def _too_close(vehicle: str) -> bool:
        """A speeder ignores the safe speed, so it is called off before it would hit a leader."""
        leader = libsumo.vehicle.getLeader(vehicle, 35.0)
        return bool(leader and leader[0])

    def _restore(self, vehicle: str) -> None:
        with contextlib.suppress(libsumo.TraCIException):
            libsumo.vehicle.setSpeed(vehicle, -1)
            libsumo.vehicle.setSpeedMode(vehicle, 31)
            libsumo.vehicle.setLaneChangeMode(vehicle, 1621)

    def _candidates(self, view: SegmentView, vehicles: dict, *, before_m: float, lanes: tuple[str, ...] | None = None):
        """Moving motor vehicles that will pass `before_m` on the view's edge: on it short of that
        point (in one of `lanes`), or on the edge before it on their route."""
        c = libsumo.constants
        lanes = lanes or view.lane_ids
        taken = {s.vehicle for s in self.staged} | {s.partner for s in self.staged}
        for vehicle, value in vehicles.items():
            if value[c.VAR_SPEED] < 4.0 or value[c.VAR_TYPE] == "bicycle" or value[c.VAR_LANE_ID].startswith(":"):
                continue
            if vehicle in taken:
                continue
            if value[c.VAR_LANE_ID] in lanes:
                if 3.0 < value[c.VAR_LANEPOSITION] < before_m:
                    yield vehicle, value
            elif before_m > 40.0 or value[c.VAR_LANE_ID].startswith(view.edge_id):
                continue
            elif self._next_edge(vehicle) == view.edge_id:
                yield vehicle, value

    def _next_edge(self, vehicle: str) -> str | None:
        """The edge after the vehicle's current one on its route (cached per frame)."""
        if vehicle not in self.next_edges:
            route = libsumo.vehicle.getRoute(vehicle)
            index = libsumo.vehicle.getRouteIndex(vehicle)
            self.next_edges[vehicle] = route[index + 1] if index + 1 < len(route) else None
        return self.next_edges[vehicle]

    def _start(self, staged: _Staged, t_s: float, vehicles: dict) -> bool:
        """Try to set the staged incident going on its current camera and segment."""
        c = libsumo.constants
        view, spec = staged.view, staged.spec
        if spec.type in ("stopped_vehicle", "illegal_stopping"):
            if spec.type == "illegal_stopping":
                start_m, end_m = staged.plan.no_stopping_range_m
                lanes = view.lane_ids[:1]
                grace_s = 30.0
            else:
                start_m, end_m = view.start_m + 8, view.end_m - 12
                lanes = view.lane_ids[1:] or view.lane_ids
                grace_s = 0.0
            target_m = (start_m + end_m) / 2
            for vehicle, value in self._candidates(view, vehicles, before_m=target_m - 35):
                lane = value[c.VAR_LANE_ID] if value[c.VAR_LANE_ID] in lanes else lanes[int(self.rng.integers(len(lanes)))]
                try:
                    libsumo.vehicle.setStop(
                        vehicle, view.edge_id, pos=target_m, laneIndex=int(lane.rsplit("_", 1)[1]), duration=spec.duration_s
                    )
                except libsumo.TraCIException:
                    continue
                staged.vehicle = vehicle
                self.watches[vehicle] = _StopWatch(
                    spec.type, staged.plan.camera_id, view.segment_id, (vehicle,), grace_s=grace_s,
                    needs_passer=spec.type == "stopped_vehicle",
                )
                return True
        elif spec.type == "collision":
            target_m = view.start_m + COLLISION_AT * view.length_m
            for vehicle, value in self._candidates(view, vehicles, before_m=target_m - 25):
                follower = libsumo.vehicle.getFollower(vehicle, 40.0)
                if not follower or not follower[0] or follower[1] > 35 or follower[0] not in vehicles:
                    continue
                if value[c.VAR_LANE_ID] not in view.lane_ids or vehicles[follower[0]][c.VAR_LANE_ID] != value[c.VAR_LANE_ID]:
                    continue
                lane_index = int(value[c.VAR_LANE_ID].rsplit("_", 1)[1])
                try:
                    libsumo.vehicle.setStop(vehicle, view.edge_id, pos=target_m, laneIndex=lane_index, duration=spec.duration_s)
                except libsumo.TraCIException:
                    continue
                libsumo.vehicle.setLaneChangeMode(vehicle, 0)
                partner = follower[0]
                libsumo.vehicle.setLaneChangeMode(partner, 0)
                staged.vehicle, staged.partner, staged.target_m = vehicle, partner, target_m
                return True
        elif spec.type == "red_light":
            for vehicle, value in self._candidates(view, vehicles, before_m=view.end_m - 12):
                upcoming = libsumo.vehicle.getNextTLS(vehicle)
                if not upcoming or upcoming[0][3] not in ("r", "R") or not 12 < upcoming[0][2] < 60:
                    continue
                leader = libsumo.vehicle.getLeader(vehicle, 60.0)
                if leader and leader[0] and leader[1] < upcoming[0][2] + 5:
                    continue
                libsumo.vehicle.setSpeedMode(vehicle, SPEED_MODE_RUN_RED)
                libsumo.vehicle.setSpeed(vehicle, max(value[c.VAR_SPEED], 9.0))
                staged.vehicle = vehicle
                return True
        elif spec.type == "speeding":
            for vehicle, value in self._candidates(view, vehicles, before_m=view.start_m - 25):
                leader = libsumo.vehicle.getLeader(vehicle, 60.0)
                if leader and leader[0]:
                    continue
                libsumo.vehicle.setSpeedMode(vehicle, SPEED_MODE_IGNORE_LIMIT)
                libsumo.vehicle.setAccel(vehicle, 3.5)
                libsumo.vehicle.setSpeed(vehicle, (view.speed_limit_kmh + SPEEDER_EXCESS_KMH) / 3.6)
                staged.vehicle = vehicle
                return True
        return False


def _vehicle_class(type_id: str) -> str:
    """Our class of a SUMO vehicle type id (`car@taxi` -> car); unknown types are cars."""
    cls = type_id.split("@")[0]
    return cls if cls in SHAPES else "car"
