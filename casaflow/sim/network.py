"""The simulated road network: a seeded grid of arterials and streets, built with SUMO's netconvert.

Coordinates are the city's local east/north metres (netconvert keeps them as given), so a SUMO
position is directly a ground position for the cameras.
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from casaflow.sim.scenario import NetworkSpec

ROW_NAMES = (
    "Boulevard Zerktouni", "Boulevard d'Anfa", "Avenue Hassan II", "Boulevard Moulay Youssef",
    "Rue Mustapha El Maani", "Boulevard Rachidi", "Rue Ibnou Majid", "Boulevard Brahim Roudani",
    "Rue Jean Jaures", "Boulevard Ghandi", "Rue Tata", "Boulevard Abdelmoumen",
)
COLUMN_NAMES = (
    "Boulevard Mohammed V", "Rue Allal Ben Abdallah", "Avenue des FAR", "Rue Tahar Sebti",
    "Boulevard de Paris", "Rue Prince Moulay Abdallah", "Boulevard Al Massira", "Rue Ibn Batouta",
    "Boulevard Roudani", "Rue Normandie", "Avenue Lalla Yacout", "Rue Mohammed El Qorri",
)
FRINGE_M = 140.0
SIDEWALK_WIDTH_M = 3.0


@dataclass(frozen=True)
class Road:
    """One straight street of the grid; its directed SUMO edges are named `{code}-{block}{heading}`."""

    code: str
    name: str
    arterial: bool
    lanes: int
    speed_kmh: float
    one_way: str | None
    """The only allowed heading ("E", "W", "N" or "S") of a one-way street, else None."""


@dataclass(frozen=True)
class Network:
    net_path: Path
    roads: tuple[Road, ...]
    bounds_xy_m: tuple[float, float, float, float]

    def road_of_edge(self, edge_id: str) -> Road:
        code = edge_id.split("-")[0]
        return next(road for road in self.roads if road.code == code)


def sumo_binary(name: str) -> str:
    """Path of a SUMO executable (netconvert, sumo) from the `eclipse-sumo` package."""
    try:
        import sumo

        candidate = Path(sumo.SUMO_HOME) / "bin" / name
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def build_network(spec: NetworkSpec, *, seed: int, out_dir: Path) -> Network:
    """Write plain XML for a seeded grid and run netconvert; returns the network and its roads."""
    rng = np.random.default_rng(seed)
    xs = _line_positions(spec.columns, spec, rng)
    ys = _line_positions(spec.rows, spec, rng)
    art_col, art_row = spec.columns // 2, spec.rows // 2
    roads: list[Road] = []
    one_way_heading = {"H": ["E", "W"], "V": ["N", "S"]}
    for orientation, count, arterial_index, names in (
        ("H", spec.rows, art_row, ROW_NAMES),
        ("V", spec.columns, art_col, COLUMN_NAMES),
    ):
        picked = rng.permutation(len(names))[:count]
        for index in range(count):
            arterial = index == arterial_index
            lane_range = spec.arterial_lanes if arterial else spec.street_lanes
            lanes = int(rng.integers(int(lane_range.low), int(lane_range.high) + 1))
            one_way = None
            if not arterial and rng.random() < spec.one_way_share:
                one_way = one_way_heading[orientation][int(rng.integers(2))]
            roads.append(
                Road(
                    code=f"{orientation}{index}",
                    name=names[picked[index]],
                    arterial=arterial,
                    lanes=lanes,
                    speed_kmh=spec.arterial_speed_kmh if arterial else spec.street_speed_kmh,
                    one_way=one_way,
                )
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    nodes_xml, edges_xml = _plain_xml(roads, xs, ys, lane_width_m=spec.lane_width_m)
    (out_dir / "grid.nod.xml").write_text(nodes_xml)
    (out_dir / "grid.edg.xml").write_text(edges_xml)
    net_path = out_dir / "city.net.xml"
    command = [
        sumo_binary("netconvert"),
        "--node-files", str(out_dir / "grid.nod.xml"),
        "--edge-files", str(out_dir / "grid.edg.xml"),
        "--output-file", str(net_path),
        "--offset.disable-normalization", "true",
        "--no-turnarounds", "true",
        "--crossings.guess", "true",
        "--walkingareas", "true",
        "--tls.layout", "opposites",
        "--tls.cycle.time", "64",
        "--tls.yellow.time", "3",
        "--junctions.corner-detail", "5",
        "--default.lanewidth", f"{spec.lane_width_m}",
        "--seed", str(seed),
        "--no-warnings", "true",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=_sumo_env())
    if result.returncode != 0:
        raise RuntimeError(f"netconvert failed: {result.stderr.strip().splitlines()[-1:]}")
    bounds = (xs[0] - FRINGE_M, ys[0] - FRINGE_M, xs[-1] + FRINGE_M, ys[-1] + FRINGE_M)
    return Network(net_path=net_path, roads=tuple(roads), bounds_xy_m=bounds)


def _sumo_env() -> dict[str, str]:
    env = dict(os.environ)
    try:
        import sumo

        env.setdefault("SUMO_HOME", sumo.SUMO_HOME)
    except ImportError:
        pass
    return env


def _line_positions(count: int, spec: NetworkSpec, rng: np.random.Generator) -> np.ndarray:
    gaps = rng.uniform(spec.block_m.low, spec.block_m.high, size=count - 1)
    positions = np.concatenate([[0.0], np.cumsum(gaps)])
    return np.round(positions - positions[-1] / 2, 1)


def _plain_xml(roads: list[Road], xs: np.ndarray, ys: np.ndarray, *, lane_width_m: float) -> tuple[str, str]:
    nodes = []
    for c, x in enumerate(xs):
        for r, y in enumerate(ys):
            nodes.append(f'  <node id="J{c}_{r}" x="{x:.2f}" y="{y:.2f}" type="traffic_light"/>')
    edges = []
    for road in roads:
        index = int(road.code[1:])
        if road.code[0] == "H":
            y = ys[index]
            points = [(xs[0] - FRINGE_M, y), *((x, y) for x in xs), (xs[-1] + FRINGE_M, y)]
            ids = [f"FW{index}", *(f"J{c}_{index}" for c in range(len(xs))), f"FE{index}"]
            forward, backward = "E", "W"
        else:
            x = xs[index]
            points = [(x, ys[0] - FRINGE_M), *((x, y) for y in ys), (x, ys[-1] + FRINGE_M)]
            ids = [f"FS{index}", *(f"J{index}_{r}" for r in range(len(ys))), f"FN{index}"]
            forward, backward = "N", "S"
        for node_id, (px, py) in ((ids[0], points[0]), (ids[-1], points[-1])):
            nodes.append(f'  <node id="{node_id}" x="{px:.2f}" y="{py:.2f}" type="priority"/>')
        for block in range(len(ids) - 1):
            common = (
                f'numLanes="{road.lanes}" speed="{road.speed_kmh / 3.6:.3f}" width="{lane_width_m}" '
                f'sidewalkWidth="{SIDEWALK_WIDTH_M}" name={quoteattr(road.name)} '
                f'priority="{3 if road.arterial else 2}"'
            )
            if road.one_way in (None, forward):
                edges.append(
                    f'  <edge id="{road.code}-{block}{forward}" from="{ids[block]}" to="{ids[block + 1]}" {common}/>'
                )
            if road.one_way in (None, backward):
                edges.append(
                    f'  <edge id="{road.code}-{block}{backward}" from="{ids[block + 1]}" to="{ids[block]}" {common}/>'
                )
    return (
        "<nodes>\n" + "\n".join(nodes) + "\n</nodes>\n",
        "<edges>\n" + "\n".join(edges) + "\n</edges>\n",
    )
