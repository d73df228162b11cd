"""Pins the tracker contract: ByteTrack-style two-stage association keeps one id per object through noise,
missed detections, crossings and low-confidence stretches; ids are unique per camera and keyed
`(camera_id, track_id)`; lost tracks are pruned after their buffer so memory stays bounded; each track's
ground trajectory, through the camera's homography, gives its speed; the matching maths (IoU, assignment,
Kalman) are exact; and on simulator truth the tracker switches few ids."""

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from casaflow.anchors import GroundAnchors
from casaflow.detections import CLASS_IDS, Detections
from casaflow.geometry import PinholeCamera
from casaflow.tracking import (
    ByteTracker,
    KalmanFilter,
    centre_distance_matrix,
    hungarian,
    id_switches,
    iou_matrix,
    linear_assignment,
    twin_rows,
    xywh_to_xyxy,
    xyxy_to_xywh,
)

START = datetime(2026, 3, 2, 7, 55, tzinfo=UTC)


def detections(xyxy, confidence=0.9, class_id=0) -> Detections:
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    n = xyxy.shape[0]
    return Detections(xyxy=xyxy, confidence=np.broadcast_to(np.float32(confidence), (n,)).copy() if np.isscalar(confidence)
                      else np.asarray(confidence, np.float32), class_id=np.broadcast_to(class_id, (n,)).copy())


def moving_scene(starts_xyxy, velocities_px_s, *, frames, fps, noise_px=0.0, miss_rate=0.0, seed=0):
    """Yields (ts, Detections, truth ids) for boxes moving at constant velocity, with noise and misses."""
    rng = np.random.default_rng(seed)
    starts = np.asarray(starts_xyxy, np.float64)
    velocities = np.tile(np.asarray(velocities_px_s, np.float64), 2)
    for k in range(frames):
        t_s = k / fps
        boxes = starts + velocities * t_s + rng.normal(0, noise_px, starts.shape)
        seen = rng.random(len(starts)) >= miss_rate
        yield START + timedelta(seconds=t_s), detections(boxes[seen]), np.flatnonzero(seen)


def run(tracker, scene):
    truth, predicted = [], []
    for ts, dets, truth_ids in scene:
        ids = tracker.assign(dets, ts)
        truth += truth_ids.tolist()
        predicted += ids.tolist()
    return np.array(truth), np.array(predicted)


ROWS = [[10, 20 + 60 * i, 50, 50 + 60 * i] for i in range(5)]


@pytest.mark.parametrize(
    ("fps", "speed_px_s", "noise_px", "miss_rate"),
    [(25, 40.0, 1.0, 0.2), (5, 60.0, 1.0, 0.2), (5, 220.0, 1.5, 0.1), (10, -120.0, 2.0, 0.3)],
    ids=["25fps-slow", "5fps-slow", "5fps-faster-than-box-width", "10fps-noisy-many-misses"],
)
def test_constant_velocity_with_noise_and_misses_keeps_ids(fps, speed_px_s, noise_px, miss_rate):
    starts = np.array(ROWS, np.float64)
    if speed_px_s < 0:
        starts[:, [0, 2]] += 600
    velocities = [[speed_px_s * (1 + 0.1 * i), 3.0 * i] for i in range(5)]
    tracker = ByteTracker("cam01", frame_rate=fps)
    truth, predicted = run(tracker, moving_scene(starts, velocities, frames=4 * fps, fps=fps, noise_px=noise_px,
                                                 miss_rate=miss_rate, seed=fps))
    assert id_switches(truth, predicted) == 0
    for obj in range(5):
        ids = set(predicted[(truth == obj) & (predicted >= 0)].tolist())
        assert len(ids) == 1, (obj, ids)
    assert (predicted >= 0).mean() > 0.8


def test_crossing_objects_keep_their_ids():
    starts = [[0, 100, 40, 130], [400, 108, 440, 138]]
    velocities = [[100.0, 0.0], [-100.0, 0.0]]
    tracker = ByteTracker("cam01", frame_rate=10)
    truth, predicted = run(tracker, moving_scene(starts, velocities, frames=40, fps=10, noise_px=1.0, seed=3))
    assert id_switches(truth, predicted) == 0
    first, last = predicted[2:4], predicted[-2:]
    assert set(first.tolist()) == set(last.tolist()) and len(set(last.tolist())) == 2
    assert [set(predicted[truth == obj].tolist()) - {-1} for obj in (0, 1)] == [{1}, {2}]


@pytest.mark.parametrize(("low_confidence", "reported_while_low"), [(0.1, True), (0.5, False)],
                         ids=["second-stage", "no-second-stage"])
def test_low_confidence_detections_keep_a_track_alive(low_confidence, reported_while_low):
    confidences = [0.9] * 5 + [0.3] * 10 + [0.9] * 5
    tracker = ByteTracker("cam01", frame_rate=5, low_confidence=low_confidence)
    ids = []
    for k, confidence in enumerate(confidences):
        box = [10 + 8 * k, 50, 60 + 8 * k, 90]
        ids.append(int(tracker.assign(detections([box], confidence), START + timedelta(seconds=k / 5))[0]))
    low = ids[5:15]
    assert all(i == ids[1] for i in low) if reported_while_low else all(i == -1 for i in low)
    assert ids[-1] == ids[1] != -1


@pytest.mark.parametrize(("confidence", "tracked"), [(0.45, True), (0.35, False)])
def test_a_vehicle_never_seen_clearly_still_gets_a_track(confidence, tracked):
    """Half hidden behind the traffic of the near lanes, it never scores high: it is tracked (and counted)
    from new_track_confidence on, and its peak confidence says how sure that is."""
    tracker = ByteTracker("cam01", frame_rate=5)
    ids = [int(tracker.assign(detections([[10 + 8 * k, 50, 60 + 8 * k, 90]], confidence), START + timedelta(seconds=k / 5))[0])
           for k in range(10)]
    assert (len(set(ids[2:])) == 1 and ids[-1] != -1) if tracked else ids == [-1] * 10
    if tracked:
        assert tracker.confirmed_tracks[0].peak_confidence == pytest.approx(confidence)


@pytest.mark.parametrize("buffer_s", [1.0, 3.0])
def test_a_lost_track_is_pruned_after_its_buffer(buffer_s):
    tracker = ByteTracker("cam01", frame_rate=5, lost_track_buffer_s=buffer_s)
    for k in range(10):
        tracker.update(detections([[10 + 4 * k, 50, 60 + 4 * k, 90]]), START + timedelta(seconds=k / 5))
    for k in range(10, 10 + int(buffer_s * 5) + 2):
        tracker.update(Detections.empty(), START + timedelta(seconds=k / 5))
        age_s = (k - 9) / 5
        states = [t.state for t in tracker.tracks]
        assert states == (["lost"] if age_s <= buffer_s + 1e-9 else [])


def test_memory_stays_bounded_over_10000_frames_of_clutter():
    rng = np.random.default_rng(0)
    tracker = ByteTracker("cam01", frame_rate=5, lost_track_buffer_s=2.0)
    largest = 0
    for k in range(10_000):
        n = int(rng.integers(0, 7))
        corner = rng.uniform(0, 600, (n, 2))
        size = rng.uniform(10, 60, (n, 2))
        dets = Detections(xyxy=np.hstack([corner, corner + size]), confidence=rng.uniform(0.05, 1.0, n),
                          class_id=rng.integers(0, 6, n))
        tracker.update(dets, START + timedelta(seconds=k / 5))
        largest = max(largest, len(tracker.tracks))
    assert largest <= 7 * (2.0 * 5 + 2)
    oldest_allowed = START + timedelta(seconds=9_999 / 5 - 2.0)
    assert all(t.last_ts >= oldest_allowed for t in tracker.tracks)
    assert all(len(t.ground_trajectory) == 0 for t in tracker.tracks)


def test_ids_are_unique_per_camera_and_keyed_by_camera():
    trackers = [ByteTracker(camera_id, frame_rate=5) for camera_id in ("cam01", "cam02")]
    outputs = {}
    for tracker in trackers:
        for k in range(3):
            boxes = [[10 + 5 * k, 10, 50 + 5 * k, 40], [200, 100 + 5 * k, 240, 140 + 5 * k]]
            outputs[tracker.camera_id] = tracker.update(detections(boxes), START + timedelta(seconds=k / 5))
    assert outputs["cam01"].tracker_id.tolist() == outputs["cam02"].tracker_id.tolist() == [1, 2]
    keys = {t.key for tracker in trackers for t in tracker.tracks}
    assert keys == {("cam01", 1), ("cam01", 2), ("cam02", 1), ("cam02", 2)}


def test_update_returns_confirmed_rows_in_input_order_with_the_majority_class():
    tracker = ByteTracker("cam01", frame_rate=5)
    classes = ["car", "truck", "car", "car", "truck", "car"]
    outputs = []
    for k, name in enumerate(classes):
        dets = detections([[300, 10, 340, 40], [10 + 5 * k, 50, 60 + 5 * k, 90]], class_id=0)
        dets = Detections(xyxy=dets.xyxy, confidence=[0.05, 0.9], class_id=[CLASS_IDS["bus"], CLASS_IDS[name]])
        outputs.append(tracker.update(dets, START + timedelta(seconds=k / 5)))
    assert len(outputs[0]) == 0
    assert all(len(out) == 1 and out.tracker_id[0] == 1 for out in outputs[1:])
    assert [int(out.class_id[0]) for out in outputs[2:]] == [CLASS_IDS["car"]] * 4
    np.testing.assert_allclose(outputs[-1].xyxy, [[35, 50, 85, 90]])
    assert tracker.tracks[0].class_id == CLASS_IDS["car"]


def test_a_far_road_users_class_gives_way_to_what_it_is_seen_as_near():
    """Seed 222 cam08: a motorcycle read as a pedestrian 31 times while 7-12 px tall, then as a motorcycle
    from 14 px up: a 'pedestrian' riding in the lane raised a false alarm."""
    tracker = ByteTracker("cam01", frame_rate=5)
    for k in range(14):
        height_px = 8.0 if k < 10 else 16.0
        name = "pedestrian" if k < 10 else "motorcycle"
        dets = detections([[300 - 2 * k, 100 + k, 306 - 2 * k, 100 + k + height_px]], class_id=CLASS_IDS[name])
        tracker.update(dets, START + timedelta(seconds=k / 5))
        if k == 9:
            assert tracker.tracks[0].class_id == CLASS_IDS["pedestrian"], "only small boxes so far: their class"
    assert tracker.tracks[0].class_id == CLASS_IDS["motorcycle"]
    assert tracker.tracks[0].vote_share([CLASS_IDS["pedestrian"]]) == 0.0, "the small boxes' votes no longer count"


def test_class_share_tells_what_a_track_follows_now():
    """Votes remember a long past; the share over the last second says what the boxes are now."""
    tracker = ByteTracker("cam01", frame_rate=5)
    for k in range(30):
        name = "pedestrian" if k < 25 else "car"
        tracker.update(detections([[300, 100, 330, 160]], class_id=CLASS_IDS[name]), START + timedelta(seconds=k / 5))
    (track,) = tracker.tracks
    assert track.class_id == CLASS_IDS["pedestrian"]
    assert track.class_share({CLASS_IDS["car"]}, window_s=1.0) == pytest.approx(5 / 6)
    assert track.class_share({CLASS_IDS["pedestrian"], CLASS_IDS["bus"]}, window_s=0.5) == 0.0
    assert track.vote_share([CLASS_IDS["pedestrian"]]) == pytest.approx(25 / 30)


def test_ground_trajectory_gives_the_speed_through_the_homography():
    camera = PinholeCamera(x_m=0.0, y_m=0.0, height_m=10.0, yaw_deg=0.0, pitch_deg=15.0, focal_px=800.0,
                           width_px=1280, height_px=720)
    speed_mps, heading = 12.0, np.radians(60.0)
    fps = 5
    tracker = ByteTracker("cam01", frame_rate=fps, ground_anchors=GroundAnchors(camera.homography_image_to_ground), trajectory_s=2.0)
    rng = np.random.default_rng(4)
    for k in range(4 * fps):
        t_s = k / fps
        ground = np.array([-12.0, 40.0]) + speed_mps * t_s * np.array([np.sin(heading), np.cos(heading)])
        (u, v_bottom), = camera.ground_to_image(ground[None])
        (_, v_top), = camera.project(np.array([[*ground, 1.5]]))[0]
        height = v_bottom - v_top
        box = np.array([u - 0.9 * height, v_top, u + 0.9 * height, v_bottom]) + rng.normal(0, 0.5, 4)
        tracker.update(detections([box]), START + timedelta(seconds=t_s))
    track, = tracker.tracks
    assert track.ground_speed_mps(window_s=2.0) == pytest.approx(speed_mps, rel=0.05)
    span_s = (track.ground_trajectory[-1][0] - track.ground_trajectory[0][0]).total_seconds()
    assert span_s <= 2.0 and len(track.ground_trajectory) == 2 * fps + 1


@pytest.mark.parametrize("short_px", [0.0, 6.0])
def test_a_box_cut_by_the_pictures_bottom_edge_gives_no_trajectory_point(short_px):
    """A car driving into the picture from below: its box's bottom edge stays on the picture's edge (or
    `short_px` above it, as detectors place it), so its footprint is unknown until it is in full view; the
    trajectory starts there, without a leap."""
    camera = PinholeCamera(x_m=0.0, y_m=0.0, height_m=10.0, yaw_deg=0.0, pitch_deg=15.0, focal_px=800.0,
                           width_px=1280, height_px=720)
    anchors = GroundAnchors(camera.homography_image_to_ground, image_size_px=(1280, 720))
    tracker = ByteTracker("cam01", frame_rate=5, ground_anchors=anchors)
    speed_mps, in_view = 10.0, []
    for k in range(20):
        ground = np.array([2.0, 4.0 + speed_mps * k / 5])
        (u, v_bottom), = camera.ground_to_image(ground[None])
        (_, v_top), = camera.project(np.array([[*ground, 1.5]]))[0]
        height = v_bottom - v_top
        box = np.array([u - 0.9 * height, v_top, u + 0.9 * height, min(v_bottom, 720.0 - short_px)])
        in_view.append(v_bottom < 712)
        tracker.update(detections([box]), START + timedelta(seconds=k / 5))
    track, = tracker.tracks
    first_in_view = in_view.index(True)
    assert first_in_view >= 3 and len(track.ground_trajectory) <= 20 - first_in_view
    ys = np.array([y for _, _, y in track.ground_trajectory])
    assert np.allclose(np.diff(ys), speed_mps / 5, rtol=0.25), np.diff(ys)


def test_a_road_user_detected_as_two_classes_gets_one_track():
    tracker = ByteTracker("cam01", frame_rate=5.0)
    for k in range(6):
        ts = START + timedelta(seconds=k / 5)
        car, truck = [100 + 4 * k, 50, 160 + 4 * k, 90], [101 + 4 * k, 48, 161 + 4 * k, 90]
        other = [300, 50, 330, 90]
        found = tracker.update(detections([truck, car, other], confidence=[0.6, 0.8, 0.7], class_id=[2, 0, 0]), ts)
    assert len({t.track_id for t in tracker.tracks}) == 2
    assert sorted(found.class_id.tolist()) == [0, 0] and len(found) == 2


def test_twin_rows_are_those_under_a_higher_overlapping_box():
    xyxy = np.array([[0, 0, 10, 10], [0, 0, 10, 8], [0, 0, 10, 6], [50, 50, 60, 60]], np.float32)
    confidence = np.array([0.7, 0.9, 0.5, 0.1], np.float32)
    # IoU(0, 1) 0.8 and box 1 scores higher; IoU(1, 2) 0.75; IoU(0, 2) 0.6; box 3 overlaps nothing
    assert twin_rows(xyxy, confidence, iou_threshold=0.7).tolist() == [True, False, True, False]
    assert twin_rows(xyxy, confidence, iou_threshold=0.85).tolist() == [False, False, False, False]
    assert twin_rows(xyxy[:1], confidence[:1], iou_threshold=0.7).tolist() == [False]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
        ([0, 0, 10, 10], [2, 2, 8, 8], 0.36),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),
    ],
    ids=["same", "disjoint", "half-shifted", "inside", "empty"],
)
def test_iou_matrix(a, b, expected):
    assert iou_matrix(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


def test_buffered_iou_and_centre_distance():
    a, b = np.array([[0, 0, 10, 10]]), np.array([[12, 0, 22, 10]])
    assert iou_matrix(a, b)[0, 0] == 0.0
    assert iou_matrix(a, b, buffer_ratio=0.5)[0, 0] == pytest.approx(8 * 20 / (2 * 400 - 8 * 20))
    assert centre_distance_matrix(a, b)[0, 0] == pytest.approx(12 / np.hypot(10, 10))
    assert centre_distance_matrix(a, np.array([[0, 0, 30, 30]]))[0, 0] == np.inf
    assert iou_matrix(np.empty((0, 4)), b).shape == (0, 1)


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 5), (5, 2), (4, 4), (6, 3)])
def test_hungarian_matches_brute_force(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        cost = rng.random(shape)
        rows, cols = hungarian(cost)
        n, m = shape
        if n <= m:
            best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
        else:
            best = min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))
        assert len(rows) == min(shape) and len(set(rows.tolist())) == len(set(cols.tolist())) == min(shape)
        assert cost[rows, cols].sum() == pytest.approx(best)


@pytest.mark.parametrize(
    ("cost", "maximum_cost", "pairs"),
    [
        ([[0.1, 0.9], [0.9, 0.95]], 0.5, [(0, 0)]),
        ([[0.1, 0.2], [0.15, 0.9]], 0.5, [(0, 1), (1, 0)]),
        ([[0.9, 0.8]], 0.5, []),
        (np.empty((0, 3)), 0.5, []),
    ],
    ids=["gated", "most-pairs-first", "none-allowed", "empty"],
)
def test_linear_assignment_gates_by_maximum_cost(cost, maximum_cost, pairs):
    rows, cols = linear_assignment(np.asarray(cost, np.float64), maximum_cost=maximum_cost)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == pairs


def test_kalman_filter_predicts_constant_velocity_and_learns_it():
    kalman = KalmanFilter()
    xyxy = np.array([[100, 50, 140, 80], [10, 10, 20, 30]], np.float64)
    np.testing.assert_allclose(xywh_to_xyxy(xyxy_to_xywh(xyxy)), xyxy)
    mean, covariance = kalman.initiate(xyxy_to_xywh(xyxy))
    velocity = np.array([[50.0, -10.0, 0, 0], [0.0, 20.0, 0, 0]])
    for k in range(1, 6):
        mean, covariance = kalman.predict(mean, covariance, 0.2)
        mean, covariance = kalman.update(mean, covariance, xyxy_to_xywh(xyxy) + velocity * 0.2 * k)
    np.testing.assert_allclose(mean[:, 4:], velocity, atol=1.0)
    predicted, _ = kalman.predict(mean, covariance, np.array([1.0, 0.5]))
    np.testing.assert_allclose(predicted[:, :2], mean[:, :2] + mean[:, 4:6] * [[1.0], [0.5]])
    assert np.all(np.linalg.eigvalsh(covariance) > 0)


@pytest.mark.parametrize(
    ("truth", "predicted", "switches"),
    [
        ([1, 1, 1], [5, 5, 5], 0),
        ([1, 1, 1], [5, 5, 6], 1),
        ([1, 1, 1, 1], [5, -1, 5, 6], 1),
        ([1, 2, 1, 2], [5, 6, 6, 5], 2),
        ([1, 1, 1], [-1, -1, 7], 0),
    ],
    ids=["steady", "one-switch", "miss-is-not-a-switch", "swap", "late-start"],
)
def test_id_switches(truth, predicted, switches):
    assert id_switches(truth, predicted) == switches


def test_id_switches_can_ignore_long_gaps():
    assert id_switches([1, 1, 1], [5, 5, 6], time_s=[0, 1, 10], maximum_gap_s=5) == 0
    assert id_switches([1, 1, 1], [5, 5, 6], time_s=[0, 1, 2], maximum_gap_s=5) == 1


def _track_simulated_camera(truth_path: Path, camera_id: str, *, noise: float, seed: int):
    import pyarrow.parquet as pq

    table = pq.read_table(truth_path, filters=[("camera_id", "=", camera_id)],
                          columns=["frame_index", "ts", "object_id", "cls", "x1", "y1", "x2", "y2", "visible"])
    truth = table.to_pandas()
    truth = truth[truth.visible >= 0.3]
    time_s = (truth.ts - truth.ts.min()).dt.total_seconds().to_numpy()
    slot = np.floor(time_s * 5 + 1e-6).astype(np.int64)
    first_of_slot = truth.assign(slot=slot).groupby("slot").frame_index.min()
    truth = truth[truth.frame_index.isin(first_of_slot.to_numpy())]
    rng = np.random.default_rng(seed)
    tracker = ByteTracker(camera_id, frame_rate=5)
    object_ids, predicted, times = [], [], []
    for _, frame in truth.groupby("frame_index", sort=True):
        xyxy = frame[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
        wh = np.tile(xyxy[:, 2:] - xyxy[:, :2], 2)
        xyxy = xyxy + rng.normal(0.0, noise, xyxy.shape).astype(np.float32) * wh
        visible = frame.visible.to_numpy()
        confidence = np.where(visible < 0.5, rng.uniform(0.3, 0.7, len(frame)), rng.uniform(0.6, 0.95, len(frame)))
        dets = Detections(xyxy=xyxy, confidence=confidence, class_id=frame.cls.map(CLASS_IDS).to_numpy())
        ts = frame.ts.iloc[0].to_pydatetime()
        predicted += tracker.assign(dets, ts).tolist()
        object_ids += frame.object_id.tolist()
        times += [(ts - START).total_seconds()] * len(frame)
    return np.array(object_ids), np.array(predicted), np.array(times)


@pytest.mark.parametrize("camera_id", ["cam01", "cam02"])
def test_few_id_switches_on_simulated_truth(tiny_city, camera_id):
    """Truth boxes (visible >= 0.3) of the tiny simulated city at 5 fps, with 2% corner noise and
    visibility-driven confidence: fewer than 5 id switches per 100 tracks. (On the 8-camera demo city
    the rate ranges from 0 to ~13 per 100 tracks by camera: vehicles hidden for tens of seconds in
    queues and boxes flickering at the visibility cut cause most of them.)"""
    object_ids, predicted, _ = _track_simulated_camera(
        tiny_city / "truth" / "frames.parquet", camera_id, noise=0.02, seed=0
    )
    tracks = len(set(object_ids[predicted >= 0].tolist()))
    switches = id_switches(object_ids, predicted)
    assert tracks >= 10
    assert 100 * switches / tracks < 5.0, (switches, tracks)
