"""`casaflow simulate` writes the contract of DESIGN.md, deterministically, with truth that matches the pixels.

Pins: identical truth for the same seed; truth boxes agree with the decoded video; the inventory's
homography maps a road user's ground point to its SUMO position within 0.5 m; segment windows follow
the history contract; every zone is the whole road in the picture; every incident type is staged in view in `demo`,
and a collision counts where the camera's zone holds it.
"""


import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from casaflow.geometry import apply_homography, points_in_polygon, polygon_area
from casaflow.history import SEGMENT_SCHEMA, TRUTH_FRAME_SCHEMA, TRUTH_INCIDENT_SCHEMA
from casaflow.inventory import load_inventory
from casaflow.measures import level_of_service
from casaflow.incidents import INCIDENT_TYPES
from casaflow.sim.scenario import load_scenario
from casaflow.sim.simulate import simulate, simulate_traffic

def test_writes_the_whole_contract(tiny_city):
    inventory = load_inventory(tiny_city / "cameras.yaml")
    assert len(inventory.cameras) == 2
    for camera in inventory.cameras:
        assert (tiny_city / camera.url).exists()
    assert pq.read_schema(tiny_city / "truth" / "frames.parquet").equals(TRUTH_FRAME_SCHEMA)
    assert pq.read_schema(tiny_city / "truth" / "segments.parquet").equals(SEGMENT_SCHEMA)
    assert pq.read_schema(tiny_city / "truth" / "incidents.parquet").equals(TRUTH_INCIDENT_SCHEMA)
    with av.open(str(tiny_city / inventory.cameras[0].url)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 320, 180)
        assert sum(1 for _ in container.decode(stream)) == 600


def test_same_seed_same_truth(tiny_scenario, tiny_city, tmp_path):
    simulate(tiny_scenario, seed=3, out_dir=tmp_path, progress=lambda line: None)
    for name in ("frames", "segments", "incidents"):
        again = pq.read_table(tmp_path / "truth" / f"{name}.parquet")
        assert again.equals(pq.read_table(tiny_city / "truth" / f"{name}.parquet")), name


def test_truth_boxes_agree_with_pixels(tiny_city):
    """Outside every box a pixel stays put between two frames (up to noise and coding); inside a
    visible moving road user's box it changes."""
    inventory = load_inventory(tiny_city / "cameras.yaml")
    frames = pq.read_table(tiny_city / "truth" / "frames.parquet").to_pandas()
    camera = inventory.cameras[0]
    with av.open(str(tiny_city / camera.url)) as container:
        luma = [f.to_ndarray()[:180].astype(np.int16) for f in container.decode(video=0)]
    boxes = frames[frames.camera_id == camera.id]
    signal = np.zeros((180, 320), bool)
    for stop in camera.stop_lines:
        x1, y1, x2, y2 = (int(v) for v in stop.signal_region)
        signal[max(y1 - 2, 0) : y2 + 3, max(x1 - 2, 0) : x2 + 3] = True
    inside_diffs, outside_diffs = [], []
    for a, b in ((100, 130), (300, 340), (450, 470)):
        mask = signal.copy()
        for _, row in boxes[boxes.frame_index.isin([a, b])].iterrows():
            mask[int(row.y1) : int(np.ceil(row.y2)) + 1, int(row.x1) : int(np.ceil(row.x2)) + 1] = True
        diff = np.abs(luma[a] - luma[b])
        outside_diffs.append(diff[~mask].mean())
        moving = boxes[(boxes.frame_index == a) & (boxes.visible > 0.8) & (boxes.speed_kmh > 15)]
        for _, row in moving.iterrows():
            if (row.x2 - row.x1) * (row.y2 - row.y1) > 150:
                inside_diffs.append(diff[int(row.y1) : int(row.y2), int(row.x1) : int(row.x2)].mean())
    assert max(outside_diffs) < 2.0
    assert inside_diffs and np.median(inside_diffs) > 4 * max(outside_diffs)


def test_homography_maps_ground_points_to_sumo_positions(tiny_scenario, tmp_path):
    city = simulate_traffic(tiny_scenario, seed=3, work_dir=tmp_path, progress=lambda line: None)
    from casaflow.geo import LocalFrame
    from casaflow.sim.cameras import inventory_camera

    recording = city.recording
    frame = LocalFrame(tiny_scenario.origin_lon, tiny_scenario.origin_lat)
    checked = 0
    for plan in city.plans:
        camera = inventory_camera(plan, frame, url="x.mp4", analysis_fps=5, signal_regions={})
        rows = slice(recording.frame_offsets[200], recording.frame_offsets[201])
        ground = np.stack([recording.x_m[rows], recording.y_m[rows]], axis=1)
        uv = plan.pinhole.ground_to_image(ground)
        _, depth_m = plan.pinhole.project(np.column_stack([ground, np.zeros(len(ground))]))
        on_image = (uv[:, 0] >= 0) & (uv[:, 0] < 320) & (uv[:, 1] >= 0) & (uv[:, 1] < 180) & (depth_m > 0)
        on_image &= depth_m < 80
        back = apply_homography(camera.calibration.image_to_ground, np.round(uv[on_image], 1))
        assert np.all(np.linalg.norm(back - ground[on_image], axis=1) < 0.5)
        checked += int(on_image.sum())
    assert checked > 5


def test_the_truth_counts_a_vehicle_in_a_zone_where_its_centre_is(tiny_scenario, tmp_path):
    """Vehicle-time per zone equals the recorded centres inside the zone's ground polygon: not every vehicle
    that touches it (a queue just past the zone is not in it)."""
    city = simulate_traffic(tiny_scenario, seed=3, work_dir=tmp_path, progress=lambda line: None)
    recording = city.recording
    vehicle = np.array([cls != "pedestrian" for cls in recording.object_cls])[recording.obj]
    centres = np.stack([recording.x_m, recording.y_m], axis=1)
    frame_of_row = np.repeat(np.arange(len(recording.frame_offsets) - 1), np.diff(recording.frame_offsets))
    windows = city.windows
    checked = 0
    for view in (view for plan in city.plans for view in plan.segments):
        inside = vehicle & points_in_polygon(centres, view.ground_polygon_xy)
        for row in (k for k, segment_id in enumerate(windows["segment_id"]) if segment_id == view.segment_id):
            window = int(windows["window_end"][row].timestamp() - tiny_scenario.start_time.timestamp()) // 30 - 1
            frames = (frame_of_row >= window * 30 * recording.fps) & (frame_of_row < (window + 1) * 30 * recording.fps)
            vehicle_s = (inside & frames).sum() / recording.fps
            truth_s = windows["density_vpkm"][row] * 30 * view.length_m / 1000
            assert truth_s == pytest.approx(vehicle_s, rel=0.05, abs=0.5), view.segment_id
            checked += vehicle_s > 5
    assert checked >= 2


def test_segment_windows_follow_the_history_contract(tiny_city, tiny_scenario):
    segments = pq.read_table(tiny_city / "truth" / "segments.parquet").to_pandas()
    inventory = load_inventory(tiny_city / "cameras.yaml")
    segment_ids = {s.id for c in inventory.cameras for s in c.segments}
    assert set(segments.segment_id) == segment_ids
    assert len(segments) == len(segment_ids) * 2
    epoch_s = np.array([t.timestamp() for t in segments.window_end])
    assert (epoch_s % 30 == 0).all()
    assert (segments.flow_vph == segments.vehicle_count * 3600 / 30).all()
    assert (segments.vehicle_count >= 0).all() and segments.vehicle_count.sum() > 0
    for row in segments.itertuples():
        ratio = None if np.isnan(row.speed_ratio) else row.speed_ratio
        assert row.los == level_of_service(ratio)


def test_every_zone_is_the_whole_road_in_the_picture(tiny_city):
    """The truth measures a zone's stretch of road across all its lanes, so the camera must see all of it: a
    zone cut by the picture's edge would score the camera on vehicles it cannot see."""
    inventory = load_inventory(tiny_city / "cameras.yaml")
    for camera in inventory.cameras:
        for segment in camera.segments:
            zone_xy = apply_homography(camera.calibration.image_to_ground, np.asarray(segment.zone, float))
            line_xy = apply_homography(camera.calibration.image_to_ground, np.asarray(segment.count_line, float))
            road_width_m = float(np.linalg.norm(line_xy[1] - line_xy[0]))
            assert polygon_area(zone_xy) == pytest.approx(segment.length_m * road_width_m, rel=0.03), segment.id


@pytest.mark.slow
def test_demo_stages_every_incident_type_in_view(tmp_path):
    city = simulate_traffic(load_scenario("demo"), seed=11, work_dir=tmp_path, progress=lambda line: None)
    seen = {incident.type for incident in city.incidents}
    assert seen >= set(INCIDENT_TYPES) - {"congestion"}, sorted(set(INCIDENT_TYPES) - seen)
    cameras = {plan.camera_id: {view.segment_id for view in plan.segments} for plan in city.plans}
    for incident in city.incidents:
        assert incident.segment_id in cameras[incident.camera_id]
        assert 0 <= incident.start_s <= incident.end_s <= 300
    views = {view.segment_id: view for plan in city.plans for view in plan.segments}
    recording = city.recording

    def at(t_s):
        return _on_lanes(recording, int(round(t_s * recording.fps)))

    collisions = [i for i in city.incidents if i.type == "collision"]
    assert collisions
    for incident in collisions:
        view = views[incident.segment_id]
        lane_id, pos_m, _ = at(incident.start_s)[incident.object_ids[0]]
        assert lane_id in view.lane_ids and view.start_m - 5.0 <= pos_m <= view.end_m + 5.0, (incident, pos_m)
        _, later_m, _ = at(min(incident.start_s + 3.0, incident.end_s))[incident.object_ids[0]]
        assert abs(later_m - pos_m) < 2.0, "the striker stays where it hit"

    for incident in (i for i in city.incidents if i.type == "red_light"):
        assert at(incident.start_s)[incident.object_ids[0]][2] >= 3.0, "crossed the line, not crept over it"
    _assert_stopped_vehicles_passed_and_in_no_queue(city)
    _assert_scripted_road_users_keep_clear(city)


@pytest.mark.slow
def test_a_stop_behind_a_standing_queue_is_no_stopped_vehicle_while_the_queue_stands(tmp_path):
    """Seed 101's 120 s: the staged stop stands 8 m behind a queue that never leaves; traffic passes it in
    the next lane, but it is one more car in the queue."""
    scenario = load_scenario("demo")
    scenario = scenario.model_validate({**scenario.model_dump(), "duration_s": 120.0})
    _assert_stopped_vehicles_passed_and_in_no_queue(simulate_traffic(scenario, seed=101, work_dir=tmp_path, progress=lambda line: None))


def _on_lanes(recording, k):
    """Object id -> (lane id, lane position m, speed m/s) of the road users on a lane at recorded frame k."""
    rows = slice(recording.frame_offsets[k], recording.frame_offsets[k + 1])
    return {recording.object_ids[o]: (recording.lane_ids[lane], float(pos_m), float(speed_mps))
            for o, lane, pos_m, speed_mps in zip(recording.obj[rows], recording.lane[rows],
                                                recording.lane_pos_m[rows], recording.speed_mps[rows]) if lane >= 0}


def _assert_scripted_road_users_keep_clear(city):
    """The wrong-way driver meets no vehicle in its lane, the jaywalker none at all, on their whole path."""
    from casaflow.sim.kinematic import CLEARANCE_M, LATERAL_CLEARANCE_M

    recording = city.recording
    classes = np.asarray(recording.object_cls)
    frame = np.repeat(np.arange(recording.n_frames), np.diff(recording.frame_offsets))
    xy = np.stack([recording.x_m, recording.y_m], axis=1)
    vehicle = classes[recording.obj] != "pedestrian"
    for incident in (i for i in city.incidents if i.type in ("wrong_way", "pedestrian_on_road")):
        o = recording.object_ids.index(incident.object_ids[0])
        rows = np.flatnonzero(recording.obj == o)
        path = xy[rows[-1]] - xy[rows[0]]
        unit = path / np.linalg.norm(path)
        for row in rows:
            others = np.flatnonzero((frame == frame[row]) & vehicle & (recording.obj != o))
            rel = xy[others] - xy[row]
            lateral = np.abs(rel[:, 0] * unit[1] - rel[:, 1] * unit[0])
            cls = classes[o]
            met = (np.linalg.norm(rel, axis=1) < CLEARANCE_M[cls]) & (lateral < LATERAL_CLEARANCE_M[cls])
            assert not met.any(), f"{incident.object_ids[0]} meets a vehicle at {frame[row] / recording.fps:.1f} s"


def _assert_stopped_vehicles_passed_and_in_no_queue(city):
    """A stopped vehicle's incident starts with no vehicle standing just ahead of it in its lane, after
    traffic drove past it while it stood."""
    from casaflow.sim.traffic import MOVING_MPS, PASSING_MPS, QUEUE_GAP_M

    recording = city.recording
    length_m = dict(zip(recording.object_ids, recording.object_dims_m[:, 0].tolist()))

    def edge(lane_id):
        return lane_id.rsplit("_", 1)[0]

    for incident in (i for i in city.incidents if i.type == "stopped_vehicle"):
        vehicle, k = incident.object_ids[0], int(round(incident.start_s * recording.fps))
        now = _on_lanes(recording, k)
        lane_id, at_m, _ = now[vehicle]
        queue = [v for v, (lane, pos_m, speed) in now.items()
                 if lane == lane_id and 0 < pos_m - length_m[v] - at_m <= QUEUE_GAP_M and speed < MOVING_MPS]
        assert not queue, f"{vehicle} stands in a queue behind {queue} at {incident.start_s} s"
        passed = False
        while not passed and k > 0:
            before = _on_lanes(recording, k - 1)
            if abs(before.get(vehicle, (None, np.inf))[1] - at_m) >= 0.01:
                break  # it was not standing there yet
            passed = any(v in before and edge(lane) == edge(lane_id) == edge(before[v][0]) and before[v][1] < at_m <= pos_m
                         and speed >= PASSING_MPS for v, (lane, pos_m, speed) in now.items())
            now, k = before, k - 1
        assert passed, f"nothing drove past {vehicle} before {incident.start_s} s"


def test_red_lights_only_where_the_stop_line_is_in_view(tiny_city):
    from casaflow.inventory import load_inventory
    from casaflow.sim.simulate import visible_incidents
    from casaflow.sim.traffic import TruthIncident

    inventory = load_inventory(tiny_city / "cameras.yaml")
    camera = inventory.cameras[0]
    watched = {line.segment_id for line in camera.stop_lines}
    unwatched = [s.id for s in camera.segments if s.id not in watched]
    incidents = [TruthIncident("speeding", camera.id, camera.segments[0].id, 1.0, 2.0, ("v1",))]
    incidents += [TruthIncident("red_light", camera.id, segment_id, 3.0, 3.0, ("v2",)) for segment_id in [*watched, *unwatched]]
    seen = {camera.id: {"frame_index": np.array([25, 75]), "object_id": np.array(["v1", "v2"]), "visible": np.ones(2)}}
    kept = visible_incidents(incidents, inventory, seen, fps=25.0)
    assert [i.type for i in kept] == ["speeding"] + ["red_light"] * len(watched)
    assert all(i.segment_id in watched for i in kept if i.type == "red_light")


def test_an_incident_counts_only_if_its_road_users_were_seen_near_its_start(tiny_city):
    """Seed 218 cam06: a motorcycle ran into a car at the far edge of the picture, at most a quarter of it
    visible within 3 s of the impact."""
    from casaflow.sim.simulate import INCIDENT_SEEN_S, visible_incidents
    from casaflow.sim.traffic import TruthIncident

    inventory = load_inventory(tiny_city / "cameras.yaml")
    camera = inventory.cameras[0]
    collision = TruthIncident("collision", camera.id, camera.segments[0].id, 10.0, 60.0, ("car", "moto"))
    fps = 25.0
    frame_index = np.arange(0, 70 * 25)
    t_s = frame_index / fps
    car = np.ones_like(t_s)
    hidden_moto = np.where(t_s > 40.0, 1.0, 0.24)  # fully in view long after the impact only

    def truth(moto):
        return {camera.id: {"frame_index": np.r_[frame_index, frame_index], "visible": np.r_[car, moto],
                            "object_id": np.array(["car"] * len(t_s) + ["moto"] * len(t_s))}}
    assert visible_incidents([collision], inventory, truth(hidden_moto), fps) == []
    seen_late = np.where(t_s > 10.0 + INCIDENT_SEEN_S - 0.5, 1.0, 0.24)
    assert visible_incidents([collision], inventory, truth(seen_late), fps) == [collision]


def test_congestion_truth_dates_the_onset_inside_the_window():
    import numpy as np

    from casaflow.sim.simulate import CONGESTION_ONSET_S, _onset_s

    dt_s, limit_kmh = 0.04, 36.0
    t_s = np.arange(0, 120, dt_s)
    speed_mps = np.where(t_s < 75.0, 9.0, 0.3)
    steps = np.stack([t_s, np.full_like(t_s, 3 * dt_s), 3 * speed_mps * dt_s], axis=1)
    onset_s = _onset_s(steps, limit_kmh, 60.0, 120.0)
    assert 75.0 < onset_s <= 75.0 + CONGESTION_ONSET_S
    assert _onset_s(np.stack([t_s, np.full_like(t_s, dt_s), 9.0 * dt_s * np.ones_like(t_s)], axis=1), limit_kmh, 60.0, 120.0) == 60.0


def test_congestion_truth_in_the_first_window_starts_with_the_recording_only_if_the_jam_was_there():
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace

    import numpy as np

    from casaflow.sim.simulate import CONGESTION_ONSET_S, _congestion

    dt_s, limit_kmh, start = 0.04, 36.0, datetime(2026, 3, 1, 8, tzinfo=timezone.utc)
    scenario = SimpleNamespace(start_time=start, window_s=60.0)
    windows = {"segment_id": ["S"], "camera_id": ["cam01"], "window_end": [start + timedelta(seconds=60)],
               "speed_ratio": [0.1]}
    t_s = np.arange(0, 60, dt_s)

    def start_s(vehicles, speed_mps):
        steps = np.stack([t_s, vehicles * dt_s, vehicles * speed_mps * dt_s], axis=1)
        [incident] = _congestion(scenario, windows, {"S": steps}, {"S": limit_kmh})
        return incident.start_s

    assert start_s(np.full_like(t_s, 4.0), np.full_like(t_s, 0.3)) == 0.0
    queue_arrives = np.where(t_s < 25.0, 0.0, 4.0)
    assert 25.0 <= start_s(queue_arrives, np.full_like(t_s, 0.3)) <= 25.0 + CONGESTION_ONSET_S
