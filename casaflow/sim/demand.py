"""Traffic demand for the simulated city: vehicle types, time-varying flows and walkers.

Demand enters at the fringe of the grid. It holds at free flow, then ramps to the peak, which
is what builds queues at the signals.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casaflow.sim.network import Network
from casaflow.sim.scenario import Scenario

SLICE_S = 30.0
STRAIGHT_WEIGHT = 8.0
"""Relative weight of the exit straight ahead among all exits: most trips keep to their street."""


@dataclass(frozen=True)
class VehicleShape:
    """Dimensions of a road user's 3D box, metres, and its SUMO vehicle class."""

    vclass: str
    length_m: float
    width_m: float
    height_m: float
    max_speed_kmh: float


SHAPES = {
    "car": VehicleShape("passenger", 4.5, 1.8, 1.5, 180),
    "bus": VehicleShape("bus", 12.0, 2.55, 3.2, 100),
    "truck": VehicleShape("truck", 9.0, 2.5, 3.4, 100),
    "motorcycle": VehicleShape("motorcycle", 2.1, 0.8, 1.55, 150),
    "bicycle": VehicleShape("bicycle", 1.8, 0.65, 1.7, 22),
    "pedestrian": VehicleShape("pedestrian", 0.5, 0.6, 1.75, 6),
}


def write_routes(scenario: Scenario, network: Network, *, seed: int, path: Path) -> Path:
    """Write the SUMO route file (types, flows, person flows) for the scenario and seed."""
    rng = np.random.default_rng(seed + 7919)
    demand = scenario.demand
    total_share = sum(demand.mix.values())
    lines = ["<routes>"]
    type_ids = []
    for cls, share in demand.mix.items():
        if share <= 0:
            continue
        shape = SHAPES[cls]
        extra = ' latAlignment="right"' if cls in ("bicycle", "motorcycle") else ""
        lines.append(
            f'  <vType id="{cls}" vClass="{shape.vclass}" length="{shape.length_m}" width="{shape.width_m}" '
            f'height="{shape.height_m}" maxSpeed="{shape.max_speed_kmh / 3.6:.2f}" '
            f'speedFactor="normc(0.97,0.04,0.85,1.08)" probability="{share / total_share:.4f}"{extra}/>'
        )
        type_ids.append(cls)
    lines.insert(1, '  <vTypeDistribution id="mix">')
    lines.append("  </vTypeDistribution>")
    shape = SHAPES["pedestrian"]
    lines.append(
        f'  <vType id="pedestrian" vClass="pedestrian" length="{shape.length_m}" width="{shape.width_m}" '
        f'height="{shape.height_m}" speedFactor="normc(1,0.1,0.7,1.3)"/>'
    )
    entries, exits = fringe_edges(network)
    end_s = scenario.warmup_s + scenario.duration_s
    lines.extend(_person_flows(demand.pedestrians_per_hour, entries, exits, end_s=end_s, rng=rng))
    slices = np.arange(0.0, end_s, SLICE_S)
    lanes_of = {road.code: road.lanes for road in network.roads}
    flow_index = 0
    for begin in slices:
        recorded_mid = begin + SLICE_S / 2 - scenario.warmup_s
        ramp = np.clip((recorded_mid - demand.peak_start_s) / demand.peak_ramp_s, 0.0, 1.0)
        vph_per_lane = demand.free_flow_vph_per_lane + ramp * (demand.peak_vph_per_lane - demand.free_flow_vph_per_lane)
        for entry in entries:
            destinations = [e for e in exits if not _is_reverse(entry, e)]
            weights = np.array([STRAIGHT_WEIGHT if e.split("-")[0] == entry.split("-")[0] else 1.0 for e in destinations])
            weights *= rng.uniform(0.7, 1.3, size=len(weights))
            weights /= weights.sum()
            entry_vph = vph_per_lane * lanes_of[entry.split("-")[0]]
            for exit_edge, weight in zip(destinations, weights):
                vph = entry_vph * weight
                if vph < 1:
                    continue
                lines.append(
                    f'  <flow id="f{flow_index}" type="mix" begin="{begin:.0f}" end="{begin + SLICE_S:.0f}" '
                    f'from="{entry}" to="{exit_edge}" vehsPerHour="{vph:.1f}" departLane="best" departSpeed="max"/>'
                )
                flow_index += 1
    lines.append("</routes>")
    path.write_text("\n".join(lines) + "\n")
    return path


def _person_flows(
    per_hour: float, entries: list[str], exits: list[str], *, end_s: float, rng: np.random.Generator
) -> list[str]:
    """Walkers between fringe sidewalks; listed before the vehicle flows (SUMO reads by departure)."""
    if per_hour <= 0:
        return []
    walk_edges = sorted({*entries, *exits})
    pairs = [(a, b) for a in entries for b in walk_edges if a.split("-")[0] != b.split("-")[0]]
    chosen = rng.choice(len(pairs), size=min(len(pairs), 24), replace=False)
    return [
        f'  <personFlow id="p{k}" type="pedestrian" begin="0" end="{end_s:.0f}" perHour="{per_hour / len(chosen):.1f}">'
        f'<walk from="{pairs[i][0]}" to="{pairs[i][1]}"/></personFlow>'
        for k, i in enumerate(chosen)
    ]


def fringe_edges(network: Network) -> tuple[list[str], list[str]]:
    """Edges that enter the grid from its fringe, and edges that leave it."""
    import sumolib

    net = sumolib.net.readNet(str(network.net_path))
    entries, exits = [], []
    for edge in net.getEdges():
        if edge.getFunction() == "internal":
            continue
        if edge.getFromNode().getID().startswith("F"):
            entries.append(edge.getID())
        if edge.getToNode().getID().startswith("F"):
            exits.append(edge.getID())
    return sorted(entries), sorted(exits)


def _is_reverse(entry: str, exit_edge: str) -> bool:
    reverse = {"E": "W", "W": "E", "N": "S", "S": "N"}
    road_a, rest_a = entry.split("-")
    road_b, rest_b = exit_edge.split("-")
    return road_a == road_b and rest_a[:-1] == rest_b[:-1] and reverse[rest_a[-1]] == rest_b[-1]
