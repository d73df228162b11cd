"""`casaflow simulate`: the simulated city end to end, writing the contract of DESIGN.md.

    DIR/cameras.yaml                 the inventory
    DIR/video/<camera_id>.mp4        H.264 clips
    DIR/truth/frames.parquet         every visible road user's box in every frame
    DIR/truth/segments.parquet       per segment and window, measured by SUMO detectors
    DIR/truth/incidents.parquet      what happened in view, with start and end
"""

import os
import shutil
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyarrow as pa

from casaflow.detections import VEHICLE_CLASSES
from casaflow.geo import LocalFrame
from casaflow.history import SEGMENT_SCHEMA, TRUTH_FRAME_SCHEMA, TRUTH_INCIDENT_SCHEMA, write_table
from casaflow.inventory import Inventory, save_inventory
from casaflow.measures import QUEUING_BELOW_RATIO, jam_class, level_of_service
from casaflow.sim.cameras import CameraPlan, inventory_camera, plan_cameras
from casaflow.sim.demand import write_routes
from casaflow.sim.kinematic import stage_kinematic
from casaflow.sim.network import Network, build_network
from casaflow.sim.scenario import Scenario, load_scenario
from casaflow.sim.traffic import KINEMATIC_TYPES, Recording, TrafficResult, TruthIncident, run_traffic
from casaflow.sim.video import RenderJob, render_camera
from casaflow.sim.pool import write_pool_inventory

Progress = Callable[[str], None]


class SimulationError(RuntimeError):
    """The simulation cannot run as asked (e.g. an unwritable output folder)."""


@dataclass(frozen=True)
class SimulationSummary:
    out_dir: Path
    cameras: int
    frames: int
    incidents: dict[str, int]
    seconds: float
    render_fps_per_core: float
    size_bytes: int


def simulate(scenario: Scenario, *, seed: int, out_dir: Path, progress: Progress = print) -> SimulationSummary:
    """Simulate, render and measure a scenario into `out_dir`."""
    started = time.perf_counter()
    out_dir = _prepare_out_dir(out_dir)
    if scenario.pool is not None:
        pool_scenario = load_scenario(scenario.pool.scenario)
        pool_summary = simulate(pool_scenario, seed=seed, out_dir=out_dir / "pool", progress=progress)
        write_pool_inventory(scenario, out_dir=out_dir, pool_dir=out_dir / "pool", seed=seed)
        return SimulationSummary(
            out_dir=out_dir,
            cameras=scenario.pool.cameras,
            frames=pool_summary.frames,
            incidents=pool_summary.incidents,
            seconds=time.perf_counter() - started,
            render_fps_per_core=pool_summary.render_fps_per_core,
            size_bytes=_folder_size(out_dir),
        )
    city = simulate_traffic(scenario, seed=seed, work_dir=out_dir / "sumo", progress=progress)
    recording_path = out_dir / "sumo" / "recording.npz"
    city.recording.save(recording_path)
    plans, network = city.plans, city.network
    results = _render_all(scenario, plans, network.net_path, recording_path, out_dir=out_dir, seed=seed, progress=progress)

    frame = LocalFrame(origin_lon=scenario.origin_lon, origin_lat=scenario.origin_lat)
    inventory = Inventory(
        city=scenario.city,
        start_time=scenario.start_time,
        cameras=[
            inventory_camera(
                plan, frame, url=f"video/{plan.camera_id}.mp4", analysis_fps=scenario.analysis_fps,
                signal_regions=results[plan.camera_id].signal_regions,
            )
            for plan in plans
        ],
    )
    save_inventory(inventory, out_dir / "cameras.yaml")
    _write_frames_truth(
        scenario, city.recording.object_ids, city.recording.object_cls, results, out_dir / "truth" / "frames.parquet"
    )
    write_table(city.windows, SEGMENT_SCHEMA, out_dir / "truth" / "segments.parquet")
    incidents = visible_incidents(city.incidents, inventory, {c: r.truth for c, r in results.items()}, scenario.video.fps)
    _write_incidents(scenario, incidents, out_dir / "truth" / "incidents.parquet")

    total_frames = sum(result.frames for result in results.values())
    recording_path.unlink()
    render_seconds = sum(result.seconds for result in results.values())
    counts: dict[str, int] = {}
    for incident in incidents:
        counts[incident.type] = counts.get(incident.type, 0) + 1
    return SimulationSummary(
        out_dir=out_dir,
        cameras=len(plans),
        frames=total_frames,
        incidents=counts,
        seconds=time.perf_counter() - started,
        render_fps_per_core=total_frames / max(render_seconds, 1e-9),
        size_bytes=_folder_size(out_dir),
    )


INCIDENT_SEEN_S = 3.0
"""Each road user of an incident must be seen within this long of its start (`MIN_INCIDENT_VISIBLE`)."""
MIN_INCIDENT_VISIBLE = 0.5
"""Visible fraction a road user needs in one frame near its incident's start to count as seen: the
detector's evaluation counts objects at least half visible, the incidents' does the same."""


def visible_incidents(incidents: list, inventory: Inventory, frames_truth: Mapping[str, dict[str, np.ndarray]],
                      fps: float) -> list:
    """The incidents a camera can see: a red light only where the camera's inventory has the stop line
    with its signal head in view (without it the signal state cannot be read), and any incident only if
    each of its road users is at least `MIN_INCIDENT_VISIBLE` visible in a frame within `INCIDENT_SEEN_S` of
    its start. Seed 218 cam06: a motorcycle ran into a standing car at the far edge of the picture, never
    more than a quarter visible there (hidden by the car and the picture's top edge): a collision that no
    one watching the camera could have seen.

    Args:
        frames_truth: Camera id -> its truth boxes (`frame_index`, `object_id`, `visible` arrays).
        fps: Frame rate of the frame indices.
    """
    watched = {(line.segment_id, camera.id) for camera in inventory.cameras for line in camera.stop_lines}
    visible = {  # per camera: the times and ids of its boxes at least MIN_INCIDENT_VISIBLE visible
        camera_id: (np.asarray(truth["frame_index"])[shown] / fps, np.asarray(truth["object_id"])[shown].astype(str))
        for camera_id, truth in frames_truth.items()
        for shown in [np.asarray(truth["visible"]) >= MIN_INCIDENT_VISIBLE]
    }
    kept = []
    for incident in incidents:
        if incident.type == "red_light" and (incident.segment_id, incident.camera_id) not in watched:
            continue
        if incident.object_ids and incident.camera_id in visible:
            t_s, object_id = visible[incident.camera_id]
            if not set(object_id[np.abs(t_s - incident.start_s) <= INCIDENT_SEEN_S].tolist()).issuperset(incident.object_ids):
                continue
        kept.append(incident)
    return kept


@dataclass(frozen=True)
class SimulatedCity:
    """Everything the traffic simulation decided and measured, before any pixel is rendered."""

    network: Network
    plans: list[CameraPlan]
    recording: Recording
    windows: dict[str, list]
    """Segment truth rows, columns of SEGMENT_SCHEMA."""
    incidents: list[TruthIncident]


def simulate_traffic(scenario: Scenario, *, seed: int, work_dir: Path, progress: Progress = print) -> SimulatedCity:
    """Network, demand, cameras, SUMO run, staged and scripted incidents, and the measured truth."""
    progress(f"building the road network (seed {seed})")
    network = build_network(scenario.network, seed=seed, out_dir=work_dir)
    routes = write_routes(scenario, network, seed=seed, path=work_dir / "city.rou.xml")
    plans = plan_cameras(scenario, network, seed=seed)
    progress(
        f"simulating {scenario.warmup_s:.0f} s of warm-up and {scenario.duration_s:.0f} s of traffic "
        f"with SUMO for {len(plans)} cameras"
    )
    traffic = run_traffic(
        scenario, network, plans, routes, seed=seed, workdir=work_dir,
        progress=lambda frame, total: progress(f"  traffic {_bar(frame, total)}"),
    )
    kinematic_specs = [spec for spec in scenario.incidents if spec.type in KINEMATIC_TYPES]
    tracks, scripted = stage_kinematic(kinematic_specs, plans, traffic.recording, str(network.net_path), seed=seed)
    windows = _segment_rows(scenario, plans, traffic)
    incidents = sorted(
        traffic.incidents + scripted + _congestion(scenario, windows, traffic.steps, _speed_limits_kmh(plans)),
        key=lambda i: (i.start_s, i.camera_id),
    )
    return SimulatedCity(
        network=network, plans=plans, recording=traffic.recording.with_objects(tracks), windows=windows,
        incidents=incidents,
    )


def _prepare_out_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".casaflow-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise SimulationError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from exc
    for stale in ("video", "truth", "sumo"):
        shutil.rmtree(out_dir / stale, ignore_errors=True)
    return out_dir


def _render_all(scenario, plans, net_path, recording_path, *, out_dir, seed, progress) -> dict:
    rng = np.random.default_rng(seed + 49979687)
    jobs = [
        RenderJob(
            camera_id=plan.camera_id,
            pinhole=plan.pinhole,
            net_path=net_path,
            recording_path=recording_path,
            video_path=out_dir / "video" / f"{plan.camera_id}.mp4",
            seed=seed * 1000 + index,
            lighting=float(rng.uniform(0.85, 1.12)),
            crf=scenario.video.crf,
            gop=scenario.video.gop,
        )
        for index, plan in enumerate(plans)
    ]
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    progress(f"rendering and encoding {len(jobs)} cameras on {workers} cores")
    started = time.perf_counter()
    results = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(render_camera, job) for job in jobs]
        for future in as_completed(futures):
            result = future.result()
            results[result.camera_id] = result
            elapsed = time.perf_counter() - started
            eta = elapsed / len(results) * (len(jobs) - len(results))
            progress(
                f"  render {_bar(len(results), len(jobs))} {result.camera_id}: {result.frames / result.seconds:.0f} "
                f"frames/s, {elapsed:.0f} s elapsed, about {eta:.0f} s left"
            )
    return results


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(total, 1))
    return f"[{'#' * filled}{'.' * (width - filled)}] {100 * done / max(total, 1):3.0f}%"


def _write_frames_truth(scenario: Scenario, object_ids, object_cls, results, path: Path) -> None:
    cls_of = dict(zip(object_ids, object_cls))
    start_ms = int(scenario.start_time.timestamp() * 1000)
    parts = []
    for camera_id in sorted(results):
        truth = results[camera_id].truth
        n = len(truth["frame_index"])
        ts_ms = start_ms + np.round(truth["frame_index"] * 1000 / scenario.video.fps).astype(np.int64)
        parts.append(
            pa.table(
                {
                    "camera_id": pa.array([camera_id] * n, pa.string()),
                    "frame_index": pa.array(truth["frame_index"], pa.int64()),
                    "ts": pa.array(ts_ms, pa.timestamp("ms", tz="UTC")),
                    "object_id": pa.array(truth["object_id"].astype(str), pa.string()),
                    "cls": pa.array([cls_of[o] for o in truth["object_id"].astype(str)], pa.string()),
                    **{k: pa.array(truth[k], pa.float32()) for k in ("x1", "y1", "x2", "y2", "visible", "speed_kmh")},
                },
                schema=TRUTH_FRAME_SCHEMA,
            )
        )
    write_table(pa.concat_tables(parts), TRUTH_FRAME_SCHEMA, path)


def _segment_rows(scenario: Scenario, plans: list[CameraPlan], traffic: TrafficResult) -> dict[str, list]:
    """One row per segment and complete window, from the count loops and the vehicles in the zones."""
    rows: dict[str, list] = {field.name: [] for field in SEGMENT_SCHEMA}
    window_s = scenario.window_s
    complete = int(scenario.duration_s // window_s)
    for plan in plans:
        for view in plan.segments:
            for window in range(complete):
                totals = traffic.windows.get((view.segment_id, window))
                crossings = totals.crossings if totals else 0
                vehicle_seconds = totals.vehicle_seconds if totals else 0.0
                mean_speed = totals.metres_travelled / vehicle_seconds * 3.6 if vehicle_seconds > 0 else None
                ratio = mean_speed / view.speed_limit_kmh if mean_speed is not None else None
                rows["segment_id"].append(view.segment_id)
                rows["camera_id"].append(plan.camera_id)
                rows["window_end"].append(scenario.start_time + timedelta(seconds=(window + 1) * window_s))
                rows["window_s"].append(float(window_s))
                rows["vehicle_count"].append(crossings)
                rows["flow_vph"].append(crossings * 3600.0 / window_s)
                rows["mean_speed_kmh"].append(mean_speed)
                rows["density_vpkm"].append(vehicle_seconds / window_s / (view.length_m / 1000.0))
                rows["speed_ratio"].append(ratio)
                rows["los"].append(level_of_service(ratio))
                rows["occupancy"].append(min(totals.loop_seconds / (window_s * len(view.lane_ids)), 1.0) if totals else 0.0)
                for cls in VEHICLE_CLASSES:
                    rows[f"{cls}_count"].append(totals.class_crossings.get(cls, 0) if totals else 0)
    return rows


SIMULATOR_VERSION = 9
"""Raised whenever the same scenario and seed come out different (camera zones, truth definitions): caches of
simulated cities are keyed by it, so an upgrade does not keep scoring against a stale city."""
CONGESTION_ONSET_S = 10.0
"""Trailing time over which the truth dates a jam's onset inside its first congested window."""


def _congestion(scenario: Scenario, windows: dict[str, list], steps: dict[str, np.ndarray],
                limits_kmh: dict[str, float]) -> list[TruthIncident]:
    """A congestion incident for each run of consecutive windows in the queuing or stationary class.

    It starts when the space-mean speed over the trailing `CONGESTION_ONSET_S` first falls into those
    classes inside the run's first window, at the recording's start for a jam already there (in those classes
    over its first 10 s), at the window's start for one that never dips that low over 10 s; it ends with the
    run's last window. Seed 232 cam07: the recording began on an empty segment, and the queue that jammed its
    first window reached the zone 25 s in.
    """
    jammed: dict[tuple[str, str], list[float]] = {}
    for segment_id, camera_id, end, ratio in zip(
        windows["segment_id"], windows["camera_id"], windows["window_end"], windows["speed_ratio"]
    ):
        if ratio is not None and jam_class(ratio) in ("queuing", "stationary"):
            jammed.setdefault((segment_id, camera_id), []).append((end - scenario.start_time).total_seconds())
    incidents = []
    for (segment_id, camera_id), ends in jammed.items():
        ends.sort()
        run_start = 0
        for k in range(1, len(ends) + 1):
            if k == len(ends) or ends[k] - ends[k - 1] > scenario.window_s:
                start_s = ends[run_start] - scenario.window_s
                onset_s = _onset_s(steps[segment_id], limits_kmh[segment_id], start_s, start_s + scenario.window_s)
                if not (start_s <= 0 and onset_s <= start_s + CONGESTION_ONSET_S):
                    start_s = onset_s
                incidents.append(TruthIncident("congestion", camera_id, segment_id, start_s, ends[k - 1], ()))
                run_start = k
    return incidents


def _onset_s(steps: np.ndarray, limit_kmh: float, window_start_s: float, window_end_s: float) -> float:
    """First time in the window when the trailing space-mean speed ratio is in the queuing class or below."""
    t_s, vehicle_s, metres = steps[:, 0], np.cumsum(steps[:, 1]), np.cumsum(steps[:, 2])
    for i in np.flatnonzero((t_s >= window_start_s + CONGESTION_ONSET_S) & (t_s < window_end_s)):
        j = int(np.searchsorted(t_s, t_s[i] - CONGESTION_ONSET_S))
        occupied_s = vehicle_s[i] - vehicle_s[j]
        if occupied_s > 0 and (metres[i] - metres[j]) / occupied_s * 3.6 / limit_kmh < QUEUING_BELOW_RATIO:
            return float(t_s[i])
    return window_start_s


def _speed_limits_kmh(plans: list[CameraPlan]) -> dict[str, float]:
    return {view.segment_id: view.speed_limit_kmh for plan in plans for view in plan.segments}


def _write_incidents(scenario: Scenario, incidents: list[TruthIncident], path: Path) -> None:
    start = scenario.start_time
    write_table(
        {
            "incident_id": [f"truth-{k + 1:04d}" for k in range(len(incidents))],
            "type": [i.type for i in incidents],
            "camera_id": [i.camera_id for i in incidents],
            "segment_id": [i.segment_id for i in incidents],
            "start_ts": [start + timedelta(seconds=i.start_s) for i in incidents],
            "end_ts": [start + timedelta(seconds=i.end_s) for i in incidents],
            "object_ids": [list(i.object_ids) for i in incidents],
        },
        TRUTH_INCIDENT_SCHEMA,
        path,
    )


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
