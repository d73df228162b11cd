"""Static scene of the simulated city, built once from a SUMO network.

All geometry is in the ground frame of `casaflow.geometry` (metres, x east, y north): SUMO network
coordinates, so networks must be built with `--offset.disable-normalization` (or any fixed offset the
rest of the simulation shares). Ground paint is reduced to two primitives the renderer classifies
pixels against: straight strips (a segment with a width, optionally dashed) and polygons.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sumolib.net.lane import get_allowed

DEFAULT_LANE_WIDTH_M = 3.2
LINE_WIDTH_M = 0.15
DASH_ON_M, DASH_OFF_M = 3.0, 5.0
ZEBRA_ON_M, ZEBRA_OFF_M = 0.5, 0.5
STOP_LINE_WIDTH_M = 0.4
KERB_WIDTH_M = 0.3
BUILDING_CLEARANCE_M = 3.0
SIGNAL_POLE_HEIGHT_M = 5.0


class GroundKind(enum.IntEnum):
    """Ground paint classes; a larger value is painted over a smaller one."""

    GROUND = 0
    ASPHALT = 1
    SIDEWALK = 2
    KERB = 3
    LINE = 4
    DASHED = 5
    STOP_LINE = 6
    ZEBRA = 7


@dataclass(frozen=True)
class Lane:
    """A non-internal SUMO lane.

    Attributes:
        lane_id: SUMO lane id.
        edge_id: SUMO edge id.
        index: Lane index within the edge, 0 = rightmost (a sidewalk when the edge has one).
        shape_xy: (n, 2) centreline, metres, in travel direction.
        width_m: Lane width.
        allowed: Vehicle classes allowed on the lane.
    """

    lane_id: str
    edge_id: str
    index: int
    shape_xy: np.ndarray
    width_m: float
    allowed: frozenset[str]

    @property
    def is_sidewalk(self) -> bool:
        return self.allowed == frozenset({"pedestrian"})


@dataclass(frozen=True)
class SignalHead:
    """A traffic signal head on a pole at the right kerb of a TLS-controlled incoming edge.

    Attributes:
        head_id: The incoming edge id.
        x_m: Pole position, east.
        y_m: Pole position, north.
        facing_deg: Compass bearing the lamps face (towards the oncoming traffic).
        pole_height_m: Height of the head's top.
    """

    head_id: str
    x_m: float
    y_m: float
    facing_deg: float
    pole_height_m: float = SIGNAL_POLE_HEIGHT_M


@dataclass(frozen=True)
class StaticScene:
    """Plain-array geometry of the city; see the module docstring.

    Attributes:
        lanes: Non-internal lanes.
        lane_bbox_xyxy: (n_lanes, 4) bounding boxes of the lane areas, metres.
        strip_p0_xy, strip_p1_xy: (n, 2) strip segment end points (centreline), metres.
        strip_width_m: (n,) strip widths.
        strip_kind: (n,) `GroundKind` values.
        strip_s0_m: (n,) arc length at p0 along the strip's polyline (phase of dash patterns).
        strip_ext_m: (n, 2) extension of the strip beyond p0 and p1 (closes polyline joints).
        polygons: Filled ground polygons, each (m, 2) metres (junction asphalt, walking areas).
        polygon_kind: (n_polygons,) `GroundKind` values.
        stop_lines_xy: (k, 2, 2) stop-line end points (right, left), metres.
        stop_line_lane_ids: (k,) lane id of each stop line.
        building_footprint_xy: (b, 4, 2) counter-clockwise footprint corners, metres.
        building_height_m: (b,) building heights.
        building_colour_rgb: (b, 3) uint8 facade colours.
        signal_heads: One per TLS-controlled incoming edge.
        bounds_xyxy: (4,) extent of the network and buildings, metres.
    """

    lanes: tuple[Lane, ...]
    lane_bbox_xyxy: np.ndarray
    strip_p0_xy: np.ndarray
    strip_p1_xy: np.ndarray
    strip_width_m: np.ndarray
    strip_kind: np.ndarray
    strip_s0_m: np.ndarray
    strip_ext_m: np.ndarray
    polygons: tuple[np.ndarray, ...]
    polygon_kind: np.ndarray
    stop_lines_xy: np.ndarray
    stop_line_lane_ids: tuple[str, ...]
    building_footprint_xy: np.ndarray
    building_height_m: np.ndarray
    building_colour_rgb: np.ndarray
    signal_heads: tuple[SignalHead, ...]
    bounds_xyxy: np.ndarray

    @classmethod
    def from_sumo_net(cls, net_path: str | Path, *, seed: int) -> StaticScene:
        """Builds the scene from a SUMO .net.xml; buildings are placed at random from `seed`."""
        root = ET.parse(net_path).getroot()
        strips = _StripCollector()
        polygons: list[np.ndarray] = []
        polygon_kind: list[int] = []
        lanes: list[Lane] = []
        edge_ends: dict[str, tuple[str, str]] = {}

        for edge in root.iter("edge"):
            function = edge.get("function", "normal")
            for lane_el in edge.iter("lane"):
                shape = _parse_shape(lane_el.get("shape", ""))
                width = float(lane_el.get("width", DEFAULT_LANE_WIDTH_M))
                if len(shape) < 2 and function != "walkingarea":
                    continue
                if function == "internal":
                    strips.add(shape, width=width, kind=GroundKind.ASPHALT)
                elif function == "crossing":
                    strips.add(shape, width=width, kind=GroundKind.ZEBRA)
                elif function == "walkingarea":
                    if len(shape) >= 3:
                        polygons.append(shape)
                        polygon_kind.append(GroundKind.SIDEWALK)
                else:
                    allowed = frozenset(get_allowed(lane_el.get("allow"), lane_el.get("disallow")))
                    lanes.append(
                        Lane(lane_el.get("id"), edge.get("id"), int(lane_el.get("index")), shape, width, allowed)
                    )
            if function == "normal":
                edge_ends[edge.get("id")] = (edge.get("from"), edge.get("to"))

        for junction in root.iter("junction"):
            shape = _parse_shape(junction.get("shape", ""))
            if junction.get("type") != "internal" and len(shape) >= 3:
                polygons.append(shape)
                polygon_kind.append(GroundKind.ASPHALT)

        tls_lanes: set[tuple[str, int]] = set()
        for conn in root.iter("connection"):
            if conn.get("tl") is not None and not conn.get("from", ":").startswith(":"):
                tls_lanes.add((conn.get("from"), int(conn.get("fromLane"))))

        by_edge: dict[str, list[Lane]] = {}
        for lane in lanes:
            by_edge.setdefault(lane.edge_id, []).append(lane)
        reverse_pairs = {ends for ends in edge_ends.values()}
        stop_lines: list[np.ndarray] = []
        stop_line_ids: list[str] = []
        signal_heads: list[SignalHead] = []
        for edge_id, edge_lanes in by_edge.items():
            edge_lanes.sort(key=lambda lane: lane.index)
            road = [lane for lane in edge_lanes if not lane.is_sidewalk]
            for lane in edge_lanes:
                strips.add(lane.shape_xy, width=lane.width_m,
                           kind=GroundKind.SIDEWALK if lane.is_sidewalk else GroundKind.ASPHALT)
            if not road:
                continue
            right, left = road[0], road[-1]
            strips.add(right.shape_xy, width=KERB_WIDTH_M, kind=GroundKind.KERB, offset_m=-right.width_m / 2)
            strips.add(right.shape_xy, width=LINE_WIDTH_M, kind=GroundKind.LINE,
                       offset_m=-(right.width_m / 2 - 0.35))
            from_id, to_id = edge_ends.get(edge_id, (None, None))
            if (to_id, from_id) in reverse_pairs:
                strips.add(left.shape_xy, width=LINE_WIDTH_M, kind=GroundKind.LINE, offset_m=left.width_m / 2)
            else:
                strips.add(left.shape_xy, width=KERB_WIDTH_M, kind=GroundKind.KERB, offset_m=left.width_m / 2)
                strips.add(left.shape_xy, width=LINE_WIDTH_M, kind=GroundKind.LINE,
                           offset_m=left.width_m / 2 - 0.35)
            for lane in road[:-1]:
                strips.add(lane.shape_xy, width=LINE_WIDTH_M, kind=GroundKind.DASHED, offset_m=lane.width_m / 2)
            controlled = [lane for lane in road if (edge_id, lane.index) in tls_lanes]
            for lane in controlled:
                end, direction = _end_and_direction(lane.shape_xy)
                normal_left = np.array([-direction[1], direction[0]])
                centre = end - direction * STOP_LINE_WIDTH_M / 2
                segment = np.stack([centre - normal_left * lane.width_m / 2, centre + normal_left * lane.width_m / 2])
                strips.add(segment, width=STOP_LINE_WIDTH_M, kind=GroundKind.STOP_LINE)
                stop_lines.append(segment)
                stop_line_ids.append(lane.lane_id)
            if controlled:
                end, direction = _end_and_direction(right.shape_xy)
                normal_right = np.array([direction[1], -direction[0]])
                pole = end - direction * 1.0 + normal_right * (right.width_m / 2 + 0.7)
                facing = float(np.degrees(np.arctan2(-direction[0], -direction[1])) % 360.0)
                signal_heads.append(SignalHead(edge_id, float(pole[0]), float(pole[1]), facing))

        lane_bbox = np.array(
            [
                np.concatenate([lane.shape_xy.min(0) - lane.width_m / 2, lane.shape_xy.max(0) + lane.width_m / 2])
                for lane in lanes
            ]
        ).reshape(-1, 4)
        p0, p1, width, kind, s0, ext = strips.arrays()
        footprints, heights, colours = _place_buildings(p0, p1, width, kind, polygons, seed=seed)
        all_xy = np.concatenate([p0, p1, *polygons, footprints.reshape(-1, 2)]) if len(p0) else np.zeros((1, 2))
        return cls(
            lanes=tuple(lanes),
            lane_bbox_xyxy=lane_bbox,
            strip_p0_xy=p0,
            strip_p1_xy=p1,
            strip_width_m=width,
            strip_kind=kind,
            strip_s0_m=s0,
            strip_ext_m=ext,
            polygons=tuple(polygons),
            polygon_kind=np.asarray(polygon_kind, dtype=np.uint8),
            stop_lines_xy=np.asarray(stop_lines, dtype=np.float64).reshape(-1, 2, 2),
            stop_line_lane_ids=tuple(stop_line_ids),
            building_footprint_xy=footprints,
            building_height_m=heights,
            building_colour_rgb=colours,
            signal_heads=tuple(signal_heads),
            bounds_xyxy=np.concatenate([all_xy.min(0), all_xy.max(0)]),
        )


class _StripCollector:
    """Accumulates polylines as straight strip segments."""

    def __init__(self) -> None:
        self._rows: list[tuple[float, float, float, float, float, int, float, float, float]] = []

    def add(self, shape_xy: np.ndarray, *, width: float, kind: GroundKind, offset_m: float = 0.0) -> None:
        shape = np.asarray(shape_xy, dtype=np.float64)
        s0 = 0.0
        n_seg = len(shape) - 1
        for i in range(n_seg):
            a, b = shape[i], shape[i + 1]
            length = float(np.hypot(*(b - a)))
            if length < 1e-6:
                continue
            d = (b - a) / length
            shift = np.array([-d[1], d[0]]) * offset_m
            ext0 = 0.0 if i == 0 else width / 2
            ext1 = 0.0 if i == n_seg - 1 else width / 2
            self._rows.append((*(a + shift), *(b + shift), width, int(kind), s0, ext0, ext1))
            s0 += length

    def arrays(self) -> tuple[np.ndarray, ...]:
        rows = np.asarray(self._rows, dtype=np.float64).reshape(-1, 9)
        order = np.argsort(rows[:, 5], kind="stable")
        rows = rows[order]
        return rows[:, 0:2], rows[:, 2:4], rows[:, 4], rows[:, 5].astype(np.uint8), rows[:, 6], rows[:, 7:9]


def _parse_shape(text: str) -> np.ndarray:
    points = [tuple(float(v) for v in p.split(",")[:2]) for p in text.split()]
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def _end_and_direction(shape_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    end, before = shape_xy[-1], shape_xy[-2]
    d = end - before
    return end, d / max(float(np.hypot(*d)), 1e-9)


def points_in_polygon(x: np.ndarray, y: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test of points (broadcastable arrays) against an (m, 2) polygon -> bool mask."""
    x, y = np.broadcast_arrays(x, y)
    inside = np.zeros(x.shape, dtype=bool)
    xa, ya = poly[:, 0], poly[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for x0, y0, x1, y1 in zip(xa, ya, xb, yb):
            if y0 == y1:
                continue
            crosses = (y0 > y) != (y1 > y)
            x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
            inside ^= crosses & (x < x_cross)
    return inside


FACADE_PALETTE_RGB = (
    (236, 232, 222),
    (228, 216, 190),
    (214, 190, 150),
    (200, 198, 190),
    (222, 200, 186),
    (238, 226, 180),
    (190, 160, 130),
)


def _place_buildings(
    p0: np.ndarray,
    p1: np.ndarray,
    width: np.ndarray,
    kind: np.ndarray,
    polygons: list[np.ndarray],
    *,
    seed: int,
    cell_m: float = 0.5,
    margin_m: float = 30.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random boxes on free land, at least BUILDING_CLEARANCE_M from any paved area.

    Returns:
        footprints (b, 4, 2) metres, heights (b,) metres, colours (b, 3) uint8.
    """
    empty = (np.zeros((0, 4, 2)), np.zeros(0), np.zeros((0, 3), dtype=np.uint8))
    paved = np.isin(kind, (GroundKind.ASPHALT, GroundKind.SIDEWALK, GroundKind.ZEBRA))
    if not paved.any():
        return empty
    pts = np.concatenate([p0[paved], p1[paved], *polygons])
    lo = pts.min(0) - margin_m
    hi = pts.max(0) + margin_m
    shape = tuple(np.ceil((hi - lo) / cell_m).astype(int)[::-1])  # rows = y, cols = x
    blocked = np.zeros(shape, dtype=bool)
    clearance = BUILDING_CLEARANCE_M + 2 * cell_m

    def window(xy_lo: np.ndarray, xy_hi: np.ndarray) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        c0, r0 = np.maximum(np.floor((xy_lo - lo) / cell_m).astype(int), 0)
        c1, r1 = np.minimum(np.ceil((xy_hi - lo) / cell_m).astype(int) + 1, (shape[1], shape[0]))
        xs = lo[0] + (np.arange(c0, max(c1, c0)) + 0.5) * cell_m
        ys = lo[1] + (np.arange(r0, max(r1, r0)) + 0.5) * cell_m
        return slice(r0, max(r1, r0)), slice(c0, max(c1, c0)), xs[None, :], ys[:, None]

    for a, b, w in zip(p0[paved], p1[paved], width[paved]):
        reach = w / 2 + clearance
        rows, cols, xs, ys = window(np.minimum(a, b) - reach, np.maximum(a, b) + reach)
        length = float(np.hypot(*(b - a)))
        d = (b - a) / length
        s = (xs - a[0]) * d[0] + (ys - a[1]) * d[1]
        t = -(xs - a[0]) * d[1] + (ys - a[1]) * d[0]
        blocked[rows, cols] |= (s >= -clearance) & (s <= length + clearance) & (np.abs(t) <= reach)
    poly_mask = np.zeros_like(blocked)
    for poly in polygons:
        rows, cols, xs, ys = window(poly.min(0), poly.max(0))
        poly_mask[rows, cols] |= points_in_polygon(xs, ys, poly)
    reach_cells = int(np.ceil(clearance / cell_m))
    for axis in (0, 1):
        grown = poly_mask.copy()
        for k in range(1, reach_cells + 1):
            if axis == 0:
                grown[k:] |= poly_mask[:-k]
                grown[:-k] |= poly_mask[k:]
            else:
                grown[:, k:] |= poly_mask[:, :-k]
                grown[:, :-k] |= poly_mask[:, k:]
        poly_mask = grown
    blocked |= poly_mask

    seg = p1[paved] - p0[paved]
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    angle4 = 4 * np.arctan2(seg[:, 1], seg[:, 0])
    axis_rad = float(np.arctan2((seg_len * np.sin(angle4)).sum(), (seg_len * np.cos(angle4)).sum()) / 4)
    u_axis = np.array([np.cos(axis_rad), np.sin(axis_rad)])
    v_axis = np.array([-u_axis[1], u_axis[0]])

    rng = np.random.default_rng(seed)
    area_m2 = float(np.prod(hi - lo))
    n_try = int(area_m2 / 40)
    sizes = rng.uniform(10.0, 28.0, size=(n_try, 2))
    sizes = sizes[np.argsort(-sizes.prod(1))]
    centres = lo + rng.uniform(0, 1, size=(n_try, 2)) * (hi - lo)
    footprints = []
    gap_m = 1.5
    for (su, sv), centre in zip(sizes, centres):
        gu = np.arange(-su / 2, su / 2 + cell_m, cell_m).clip(-su / 2, su / 2)
        gv = np.arange(-sv / 2, sv / 2 + cell_m, cell_m).clip(-sv / 2, sv / 2)
        pts_xy = centre + gu[None, :, None] * u_axis + gv[:, None, None] * v_axis
        cr = np.floor((pts_xy - lo) / cell_m).astype(int)
        if (cr < 0).any() or (cr[..., 0] >= shape[1]).any() or (cr[..., 1] >= shape[0]).any():
            continue
        if blocked[cr[..., 1], cr[..., 0]].any():
            continue
        corners = centre + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [su / 2, sv / 2] @ np.stack(
            [u_axis, v_axis]
        )
        footprints.append(corners)
        pad_u, pad_v = su / 2 + gap_m, sv / 2 + gap_m
        gu = np.arange(-pad_u, pad_u + cell_m, cell_m)
        gv = np.arange(-pad_v, pad_v + cell_m, cell_m)
        pts_xy = centre + gu[None, :, None] * u_axis + gv[:, None, None] * v_axis
        cr = np.floor((pts_xy - lo) / cell_m).astype(int)
        ok = (cr[..., 0] >= 0) & (cr[..., 1] >= 0) & (cr[..., 0] < shape[1]) & (cr[..., 1] < shape[0])
        blocked[cr[..., 1][ok], cr[..., 0][ok]] = True
    if not footprints:
        return empty
    n = len(footprints)
    heights = rng.uniform(8.0, 30.0, size=n)
    palette = np.asarray(FACADE_PALETTE_RGB, dtype=np.float64)
    colours = palette[rng.integers(0, len(palette), size=n)] * rng.uniform(0.92, 1.05, size=(n, 1))
    return np.asarray(footprints), heights, np.clip(colours, 0, 255).astype(np.uint8)
