"""Where the simulated city's cameras stand and what each one sees.

A camera is a pinhole on a pole at the kerb looking along a road: either towards a signalised stop
line (an intersection camera) or along the middle of a block. From its pose and the network this
module derives what the inventory states about it: the homography, each segment's zone, count line,
direction, lanes, length, speed limit and lon/lat geometry, stop lines and no-stopping zones.
"""

from dataclasses import dataclass, field

import numpy as np
import sumolib

from casaflow.geo import LocalFrame
from casaflow.geometry import PinholeCamera, project_ground_polygon
from casaflow.incidents import readable_signal_region
from casaflow.inventory import Calibration, Camera, NoStoppingZone, Segment, StopLine
from casaflow.sim.network import Network
from casaflow.sim.scenario import Scenario

HEADING_WORDS = {"E": "eastbound", "W": "westbound", "N": "northbound", "S": "southbound"}
ZONE_LENGTH_M = 45.0
STOP_LINE_SETBACK_M = 0.5
NO_STOPPING_LENGTH_M = 22.0


@dataclass(frozen=True)
class SegmentView:
    """One direction of the viewed road between two positions along its SUMO edge."""

    segment_id: str
    edge_id: str
    lane_ids: tuple[str, ...]
    start_m: float
    end_m: float
    ground_polygon_xy: np.ndarray
    count_line_xy: np.ndarray
    centreline_xy: np.ndarray
    direction_deg: float
    speed_limit_kmh: float
    name: str

    @property
    def count_position_m(self) -> float:
        return (self.start_m + self.end_m) / 2

    @property
    def length_m(self) -> float:
        return self.end_m - self.start_m


@dataclass(frozen=True)
class CameraPlan:
    camera_id: str
    kind: str
    """"intersection" (faces a signalised stop line) or "midblock"."""
    name: str
    pinhole: PinholeCamera
    segments: tuple[SegmentView, ...]
    stop_line_xy: np.ndarray | None = None
    no_stopping_xy: np.ndarray | None = None
    no_stopping_range_m: tuple[float, float] | None = None
    extras: dict = field(default_factory=dict)

    @property
    def viewed(self) -> SegmentView:
        """The segment travelling away from the camera, along its line of sight."""
        return self.segments[0]

    @property
    def facing(self) -> SegmentView | None:
        """The opposite direction, travelling towards the camera (None on a one-way street)."""
        return self.segments[1] if len(self.segments) > 1 else None


def plan_cameras(scenario: Scenario, network: Network, *, seed: int) -> list[CameraPlan]:
    """Choose seeded camera poses on the network and derive what each one sees."""
    rng = np.random.default_rng(seed + 104729)
    net = sumolib.net.readNet(str(network.net_path))
    spec = scenario.cameras
    video = scenario.video
    intersection_edges, midblock_edges = [], []
    for edge in net.getEdges():
        if edge.getFunction() == "internal" or edge.getLength() < 110:
            continue
        if edge.getToNode().getType() == "traffic_light":
            intersection_edges.append(edge)
        if not edge.getFromNode().getID().startswith("F") and edge.getLength() > 140:
            midblock_edges.append(edge)
    wanted_intersections = int(round(spec.count * spec.intersection_share))
    plans: list[CameraPlan] = []
    used_blocks: set[str] = set()
    order = [("intersection", e) for e in rng.permutation(intersection_edges)[:]]
    order_mid = [("midblock", e) for e in rng.permutation(midblock_edges)[:]]
    for kind, candidates, quota in (
        ("intersection", order, wanted_intersections),
        ("midblock", order_mid, spec.count - wanted_intersections),
    ):
        taken = 0
        for _, edge in candidates:
            if taken == quota:
                break
            block = edge.getID()[:-1]
            if block in used_blocks:
                continue
            used_blocks.add(block)
            camera_id = f"cam{len(plans) + 1:02d}"
            scale = video.width_px / 640
            pinhole_args = dict(
                height_m=float(rng.uniform(spec.height_m.low, spec.height_m.high)),
                pitch_deg=float(rng.uniform(spec.pitch_deg.low, spec.pitch_deg.high)),
                focal_px=float(rng.uniform(spec.focal_px.low, spec.focal_px.high)) * scale,
            )
            plans.append(_plan_one(camera_id, kind, edge, net, network, scenario, **pinhole_args))
            taken += 1
    if len(plans) < spec.count:
        raise ValueError(
            f"the network has room for {len(plans)} cameras, the scenario asks for {spec.count}; "
            "add rows/columns to the network"
        )
    return sorted(plans, key=lambda plan: plan.camera_id)


def _plan_one(
    camera_id: str,
    kind: str,
    edge: sumolib.net.edge.Edge,
    net: sumolib.net.Net,
    network: Network,
    scenario: Scenario,
    *,
    height_m: float,
    pitch_deg: float,
    focal_px: float,
) -> CameraPlan:
    video = scenario.video
    start_xy, unit = _edge_axis(edge)
    right = np.array([unit[1], -unit[0]])
    lanes = _road_lanes(edge)
    right_border_m = _lateral_offset(lanes[0], start_xy, right) + lanes[0].getWidth() / 2
    length_m = edge.getLength()
    near_m = height_m / np.tan(np.radians(pitch_deg + np.degrees(np.arctan(video.height_px / 2 / focal_px))))
    if kind == "intersection":
        zone_end_m = length_m - STOP_LINE_SETBACK_M
        zone_start_m = zone_end_m - ZONE_LENGTH_M
        camera_along_m = zone_start_m - near_m - 3.0
    else:
        camera_along_m = 4.0
        zone_start_m = camera_along_m + near_m + 4.0
        zone_end_m = min(zone_start_m + ZONE_LENGTH_M, length_m - 8.0)
    camera_xy = start_xy + unit * camera_along_m + right * (right_border_m + 2.0)
    aim_xy = start_xy + unit * (camera_along_m + 40.0) + right * (right_border_m * 0.35)
    aim = aim_xy - camera_xy
    pinhole = PinholeCamera(
        x_m=float(camera_xy[0]),
        y_m=float(camera_xy[1]),
        height_m=height_m,
        yaw_deg=float(np.degrees(np.arctan2(aim[0], aim[1])) % 360),
        pitch_deg=pitch_deg,
        focal_px=focal_px,
        width_px=video.width_px,
        height_px=video.height_px,
    )
    road = network.road_of_edge(edge.getID())
    views = [
        _segment_view(camera_id, edge, road.name, road.speed_kmh, *_in_view(pinhole, edge, zone_start_m, zone_end_m))
    ]
    reverse = _reverse_edge(edge, net)
    if reverse is not None:
        ahead_start = zone_start_m - camera_along_m
        ahead_end = zone_end_m - camera_along_m
        rev_start_xy, rev_unit = _edge_axis(reverse)
        offset = float(np.dot(start_xy + unit * camera_along_m - rev_start_xy, rev_unit))
        rev_from, rev_to = sorted((offset - ahead_end, offset - ahead_start))
        rev_from, rev_to = max(rev_from, 0.5), min(rev_to, reverse.getLength() - 0.5)
        views.append(_segment_view(camera_id, reverse, road.name, road.speed_kmh, *_in_view(pinhole, reverse, rev_from, rev_to)))
    cross = _cross_street(edge, network) if kind == "intersection" else ""
    heading = HEADING_WORDS[edge.getID()[-1]]
    name = f"{road.name} {heading} at {cross}" if cross else f"{road.name} {heading}, mid-block"
    plan = CameraPlan(camera_id=camera_id, kind=kind, name=name, pinhole=pinhole, segments=tuple(views))
    if kind == "intersection":
        stop = np.array([_border_point(edge, length_m - 0.1, side) for side in ("right", "left")])
        return CameraPlan(**{**plan.__dict__, "stop_line_xy": stop})
    nsz_start = zone_start_m + 6.0
    nsz_end = min(nsz_start + NO_STOPPING_LENGTH_M, zone_end_m - 2.0)
    lane0 = lanes[0]
    polygon = np.array(
        [
            _lane_point(lane0, nsz_start, +0.5),
            _lane_point(lane0, nsz_end, +0.5),
            _lane_point(lane0, nsz_end, -0.5),
            _lane_point(lane0, nsz_start, -0.5),
        ]
    )
    return CameraPlan(
        **{**plan.__dict__, "no_stopping_xy": polygon, "no_stopping_range_m": (nsz_start, nsz_end)}
    )


def inventory_camera(
    plan: CameraPlan,
    frame: LocalFrame,
    *,
    url: str,
    analysis_fps: float,
    signal_regions: dict[str, tuple[int, int, int, int]],
) -> Camera:
    """The inventory entry of a planned camera (image geometry from its pinhole)."""
    pinhole = plan.pinhole
    segments = []
    for view in plan.segments:
        zone_uv = project_ground_polygon(pinhole, view.ground_polygon_xy)
        line_uv = pinhole.ground_to_image(view.count_line_xy)
        segments.append(
            Segment(
                id=view.segment_id,
                name=view.name,
                zone=_rounded(zone_uv),
                count_line=_rounded(line_uv),
                direction_deg=round(view.direction_deg, 2),
                lanes=len(view.lane_ids),
                length_m=round(view.length_m, 2),
                speed_limit_kmh=view.speed_limit_kmh,
                geometry=[[round(v, 7) for v in p] for p in frame.to_lonlat(view.centreline_xy).tolist()],
            )
        )
    stop_lines = []
    region = signal_regions.get(plan.viewed.edge_id)
    if plan.stop_line_xy is not None and region is not None and readable_signal_region(region):
        stop_lines.append(
            StopLine(
                id=f"{plan.camera_id}.stop",
                segment_id=plan.viewed.segment_id,
                line=_rounded(pinhole.ground_to_image(plan.stop_line_xy)),
                signal_region=[float(v) for v in region],
            )
        )
    zones = []
    if plan.no_stopping_xy is not None:
        zones.append(
            NoStoppingZone(
                id=f"{plan.camera_id}.nostop",
                segment_id=plan.viewed.segment_id,
                zone=_rounded(project_ground_polygon(pinhole, plan.no_stopping_xy)),
            )
        )
    lon, lat = frame.to_lonlat(np.array([[pinhole.x_m, pinhole.y_m]]))[0]
    return Camera(
        id=plan.camera_id,
        url=url,
        lon=round(float(lon), 7),
        lat=round(float(lat), 7),
        analysis_fps=analysis_fps,
        name=plan.name,
        calibration=Calibration(homography=np.asarray(pinhole.homography_image_to_ground).tolist()),
        segments=segments,
        stop_lines=stop_lines,
        no_stopping_zones=zones,
    )


def _rounded(points_uv: np.ndarray) -> list[list[float]]:
    return [[round(float(u), 1), round(float(v), 1)] for u, v in np.asarray(points_uv)]


def _segment_view(
    camera_id: str, edge: sumolib.net.edge.Edge, road_name: str, speed_kmh: float, start_m: float, end_m: float
) -> SegmentView:
    lanes = _road_lanes(edge)
    right = np.array([_border_point(edge, s, "right") for s in (start_m, end_m)])
    left = np.array([_border_point(edge, s, "left") for s in (start_m, end_m)])
    middle_m = (start_m + end_m) / 2
    _, unit = _edge_axis(edge)
    return SegmentView(
        segment_id=f"{camera_id}.{edge.getID()}",
        edge_id=edge.getID(),
        lane_ids=tuple(lane.getID() for lane in lanes),
        start_m=float(start_m),
        end_m=float(end_m),
        ground_polygon_xy=np.array([right[0], right[1], left[1], left[0]]),
        count_line_xy=np.array([_border_point(edge, middle_m, "right"), _border_point(edge, middle_m, "left")]),
        centreline_xy=(right + left) / 2,
        direction_deg=float(np.degrees(np.arctan2(unit[0], unit[1])) % 360),
        speed_limit_kmh=speed_kmh,
        name=f"{road_name} {HEADING_WORDS[edge.getID()[-1]]}",
    )


def _in_view(pinhole: PinholeCamera, edge: sumolib.net.edge.Edge, from_m: float, to_m: float) -> tuple[float, float]:
    """The longest stretch of [from_m, to_m] along `edge` whose whole width is in the picture.

    A zone is drawn on the image, so it can only hold what the camera sees: where the picture's edge cuts
    the road diagonally (the facing direction, beside the pole), the zone starts where every lane is in view,
    and the truth, measured over the zone's stretch of road, covers what the camera can measure.
    """
    along_m = np.arange(from_m, to_m + 1e-9, 0.25)
    corners = np.array([[_border_point(edge, s, side) for side in ("right", "left")] for s in along_m])
    ground = np.column_stack([corners.reshape(-1, 2), np.zeros(corners.shape[0] * 2)])
    uv, depth_m = pinhole.project(ground)
    inside = (depth_m > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= pinhole.width_px) & (uv[:, 1] >= 0) & (uv[:, 1] <= pinhole.height_px)
    whole = np.flatnonzero(inside.reshape(-1, 2).all(axis=1))
    if len(whole) < 2:
        return from_m, to_m
    return float(along_m[whole[0]]), float(along_m[whole[-1]])


def _road_lanes(edge: sumolib.net.edge.Edge) -> list:
    """The edge's lanes that carry vehicles, rightmost first (sidewalks excluded)."""
    return [lane for lane in edge.getLanes() if lane.allows("passenger") or lane.allows("bus")]


def _edge_axis(edge: sumolib.net.edge.Edge) -> tuple[np.ndarray, np.ndarray]:
    """Start point and unit direction of a straight edge (from its first road lane's shape)."""
    shape = np.asarray(_road_lanes(edge)[0].getShape(), dtype=np.float64)
    direction = shape[-1] - shape[0]
    return shape[0], direction / np.linalg.norm(direction)


def _lateral_offset(lane, origin_xy: np.ndarray, right: np.ndarray) -> float:
    shape = np.asarray(lane.getShape(), dtype=np.float64)
    return float(np.dot(shape[0] - origin_xy, right))


def _lane_point(lane, along_m: float, side: float) -> np.ndarray:
    """A point on a lane at `along_m`, `side` half-widths to the right (+) or left (-) of its centre."""
    shape = np.asarray(lane.getShape(), dtype=np.float64)
    unit = (shape[-1] - shape[0]) / np.linalg.norm(shape[-1] - shape[0])
    right = np.array([unit[1], -unit[0]])
    return shape[0] + unit * along_m + right * side * lane.getWidth() / 2


def _border_point(edge: sumolib.net.edge.Edge, along_m: float, side: str) -> np.ndarray:
    lanes = _road_lanes(edge)
    if side == "right":
        return _lane_point(lanes[0], along_m, +1.0)
    return _lane_point(lanes[-1], along_m, -1.0)


def _reverse_edge(edge: sumolib.net.edge.Edge, net: sumolib.net.Net):
    for candidate in edge.getToNode().getOutgoing():
        if candidate.getToNode() == edge.getFromNode() and candidate.getFunction() != "internal":
            return candidate
    return None


def _cross_street(edge: sumolib.net.edge.Edge, network: Network) -> str:
    own = edge.getID().split("-")[0]
    for other in edge.getToNode().getOutgoing():
        code = other.getID().split("-")[0]
        if code != own and not other.getID().startswith(":"):
            return network.road_of_edge(other.getID()).name
    return ""
