"""SegmentMeter turns tracked boxes into the history's segment windows with the right numbers.

Pins, on synthetic tracks seen through a known camera: counts (each track once, jitter across the
line included), space-mean speed for constant speed and stop-and-go, density, LOS, epoch-aligned
windows, that a vehicle is in a zone where its centre is, and that pedestrians are not vehicles.
"""

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from casaflow.detections import CLASS_IDS, TYPICAL_LENGTH_M, Detections
from casaflow.geometry import PinholeCamera, project_ground_polygon
from casaflow.inventory import Calibration, Camera, Segment
from casaflow.geometry import points_in_polygon, segments_cross
from casaflow.measurement import SegmentMeter, window_end_for

PINHOLE = PinholeCamera(x_m=0, y_m=0, height_m=8, yaw_deg=0, pitch_deg=18, focal_px=500, width_px=640, height_px=360)
ZONE_Y_M = (15.0, 60.0)
LANE_X_M = (1.0, 8.0)
START = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
FPS = 5.0
STANDING_ID = 999


def camera() -> Camera:
    zone = np.array([[LANE_X_M[0], ZONE_Y_M[0]], [LANE_X_M[1], ZONE_Y_M[0]], [LANE_X_M[1], ZONE_Y_M[1]], [LANE_X_M[0], ZONE_Y_M[1]]])
    line = PINHOLE.ground_to_image(np.array([[LANE_X_M[0], 37.5], [LANE_X_M[1], 37.5]]))
    return Camera(
        id="cam",
        url="x.mp4",
        lon=0,
        lat=0,
        calibration=Calibration(homography=PINHOLE.homography_image_to_ground.tolist()),
        segments=[
            Segment(
                id="cam.north",
                zone=project_ground_polygon(PINHOLE, zone).tolist(),
                count_line=line.tolist(),
                direction_deg=0,
                lanes=2,
                length_m=ZONE_Y_M[1] - ZONE_Y_M[0],
                speed_limit_kmh=50,
                geometry=[[0, 0], [0, 0.001]],
            )
        ],
    )


def box_at(x_m: float, y_m: float, jitter_px: float = 0.0, rng=None) -> list[float]:
    u, v = PINHOLE.ground_to_image(np.array([[x_m, y_m]]))[0]
    if jitter_px:
        u, v = u + rng.normal(0, jitter_px), v + rng.normal(0, jitter_px)
    return [u - 10, v - 12, u + 10, v]


def run(tracks: dict[int, list[tuple[float, float] | None]], *, cls: str = "car", seconds: float, jitter_px: float = 0.0,
        standing_box: list[float] | None = None, standing_from_s: float = 0.0):
    """tracks: id -> per-frame ground position (None: not seen); standing_box: one more track's box, the
    same in every frame from `standing_from_s` on. Returns every closed window."""
    rng = np.random.default_rng(0)
    meter = SegmentMeter(camera(), window_s=60)
    windows = []
    for k in range(int(seconds * FPS)):
        ts = START + timedelta(seconds=k / FPS)
        rows = [(tid, box_at(*pos[k], jitter_px, rng)) for tid, pos in tracks.items() if k < len(pos) and pos[k] is not None]
        rows += [(STANDING_ID, standing_box)] if standing_box is not None and k / FPS >= standing_from_s else []
        detections = Detections(
            xyxy=np.array([box for _, box in rows], np.float32).reshape(-1, 4),
            confidence=np.ones(len(rows)),
            class_id=np.full(len(rows), CLASS_IDS[cls]),
            tracker_id=np.array([tid for tid, _ in rows]),
        )
        windows += meter.update(ts, detections)
    return windows + meter.flush()


def constant(speed_kmh: float, *, start_y_m: float = 0.0, x_m: float = 4.5, seconds: float = 60.0):
    return [(x_m, start_y_m + speed_kmh / 3.6 * k / FPS) for k in range(int(seconds * FPS))]


@pytest.mark.parametrize("speed_kmh", [15.0, 36.0, 50.0, 70.0])
def test_constant_speed(speed_kmh):
    (window,) = run({1: constant(speed_kmh)}, seconds=59.9)
    assert window.vehicle_count == 1
    assert window.mean_speed_kmh == pytest.approx(speed_kmh, rel=0.01)
    expected_density = (45.0 / (speed_kmh / 3.6)) / 60.0 / 0.045
    assert window.density_vpkm == pytest.approx(expected_density, rel=0.05)
    assert window.speed_ratio == pytest.approx(speed_kmh / 50, rel=0.01)


def test_stop_and_go_is_distance_over_time():
    path, y = [], 0.0
    for k in range(int(60 * FPS)):
        t = k / FPS
        speed_mps = 0.0 if 20 <= t < 40 else 2.0
        path.append((4.5, y))
        y += speed_mps / FPS
    (window,) = run({1: path}, seconds=59.9)
    inside = [p for p in path if ZONE_Y_M[0] <= p[1] <= ZONE_Y_M[1]]
    distance_m = inside[-1][1] - inside[0][1]
    time_s = (len(inside) - 1) / FPS
    assert window.mean_speed_kmh == pytest.approx(distance_m / time_s * 3.6, rel=0.03)
    assert window.los == "F"


def test_jitter_across_the_line_counts_once_and_speed_stays_close():
    path = [(4.5, 37.5 + (0.6 if k % 2 else -0.6)) for k in range(100)] + constant(30, start_y_m=38, seconds=10)
    (window,) = run({7: path}, seconds=40, jitter_px=0.0)
    assert window.vehicle_count == 1
    noisy = run({1: constant(36.0)}, seconds=59.9, jitter_px=1.5)[0]
    assert noisy.mean_speed_kmh == pytest.approx(36.0, abs=1.5)


def test_counts_each_vehicle_once_and_ignores_pedestrians():
    tracks = {tid: [None] * (tid * 20) + constant(40) for tid in range(1, 6)}
    (window,) = run(tracks, seconds=59.9)
    assert window.vehicle_count == 5
    assert window.flow_vph == 5 * 60
    (walkers,) = run(tracks, cls="pedestrian", seconds=59.9)
    assert walkers.vehicle_count == 0 and walkers.mean_speed_kmh is None and walkers.los == "A"


@pytest.mark.parametrize("cls", ["car", "bus", "bicycle"])
def test_class_counts_and_occupancy(cls):
    (window,) = run({1: constant(36.0), 2: [None] * 50 + constant(36.0)}, cls=cls, seconds=59.9)
    row = window.as_row()
    assert row[f"{cls}_count"] == window.vehicle_count == 2
    assert sum(row[f"{name}_count"] for name in ("car", "bus", "truck", "motorcycle", "bicycle")) == 2
    length_m = {"car": 4.5, "bus": 12.0, "bicycle": 1.8}[cls]
    expected = 2 * (length_m / 10.0) / (60.0 * 2)
    assert window.occupancy == pytest.approx(expected, abs=2 * 0.2 / 120)


def test_a_vehicle_standing_on_the_line_occupies_it():
    standing = [(4.5, 37.5)] * int(59 * FPS)
    (window,) = run({1: standing}, seconds=59.9)
    assert window.occupancy == pytest.approx(59.0 / (60 * 2), abs=0.01)
    assert window.vehicle_count == 0


def split(path, *, hidden_from_y_m: float, hidden_s: float) -> tuple[list, list]:
    """A path seen as two tracks: the first until it reaches hidden_from_y_m, the second `hidden_s` later."""
    k = next(i for i, p in enumerate(path) if p[1] >= hidden_from_y_m)
    resume = k + int(hidden_s * FPS)
    return path[:k], [None] * resume + path[resume:]


def test_a_vehicle_hidden_while_it_crosses_is_counted_once():
    before, after = split(constant(36.0, seconds=20), hidden_from_y_m=34.0, hidden_s=1.0)
    (window,) = run({1: before, 2: after}, seconds=20)
    assert window.vehicle_count == 1


def test_a_vehicle_lost_just_before_the_line_at_speed_crossed_it_hidden():
    lost, _ = split(constant(36.0, seconds=20), hidden_from_y_m=33.0, hidden_s=1.0)
    (window,) = run({1: lost}, seconds=20)
    assert window.vehicle_count == 1 and window.class_counts[CLASS_IDS["car"]] == 1
    creeping, _ = split(constant(9.0, seconds=40), hidden_from_y_m=33.0, hidden_s=1.0)
    (window,) = run({1: creeping}, seconds=40)
    assert window.vehicle_count == 1, "a queue creeping on at 2.5 m/s goes on over the line"
    edging, _ = split(constant(5.4, seconds=40), hidden_from_y_m=33.0, hidden_s=1.0)
    (window,) = run({1: edging}, seconds=40)
    assert window.vehicle_count == 0, "at 1.5 m/s it may be stopping, hidden in a queue before the line"
    far, _ = split(constant(36.0, seconds=20), hidden_from_y_m=20.0, hidden_s=1.0)
    (window,) = run({1: far}, seconds=20)
    assert window.vehicle_count == 0, "17 m before the line: it may yet turn or stop"
    before, after = split(constant(36.0, seconds=20), hidden_from_y_m=33.0, hidden_s=1.6)
    (window,) = run({1: before, 2: after}, seconds=20)
    assert window.vehicle_count == 1, "found again past the line: the same vehicle"


def test_stitching_neither_double_counts_nor_takes_another_lane():
    before, after = split(constant(36.0, seconds=20), hidden_from_y_m=45.0, hidden_s=1.0)
    (window,) = run({1: before, 2: after}, seconds=20)
    assert window.vehicle_count == 1, "counted on crossing; its continuation is not another vehicle"
    lost, _ = split(constant(36.0, seconds=20), hidden_from_y_m=20.0, hidden_s=1.0)
    other_lane = [None] * int(5.8 * FPS) + constant(36.0, start_y_m=58.0, x_m=7.5, seconds=10)
    (window,) = run({1: lost, 2: other_lane}, seconds=20)
    assert window.vehicle_count == 0, "a vehicle born in the next lane does not continue the lost one"


def test_a_vehicle_first_seen_just_past_a_hidden_line_driving_on_crossed_it():
    line_uv = np.asarray(camera().segments[0].count_line)
    bus_beside_the_pole = [float(line_uv[:, 0].min()) - 5, float(line_uv[:, 1].min()) - 20, float(line_uv[:, 0].max()) + 5, 359.0]
    emerging = [None] * int(4.2 * FPS) + constant(36.0, seconds=20)[int(4.2 * FPS):]
    (window,) = run({1: emerging}, seconds=20, standing_box=bus_beside_the_pole)
    assert window.vehicle_count == 1, "first seen 4.5 m past the hidden line at 36 km/h"
    (window,) = run({1: emerging}, seconds=20)
    assert window.vehicle_count == 0, "with the line in sight, a track born past it is a vehicle found again"
    (window,) = run({1: emerging}, seconds=20, standing_box=bus_beside_the_pole, standing_from_s=3.0)
    assert window.vehicle_count == 0, "the line hidden for a moment, by a vehicle going by"
    standing = [(4.5, 42.0)] * int(20 * FPS)
    (window,) = run({1: standing}, seconds=20, standing_box=bus_beside_the_pole)
    assert window.vehicle_count == 0, "a box standing past the line crossed nothing"
    late = [None] * int(6.0 * FPS) + constant(36.0, seconds=20)[int(6.0 * FPS):]
    (window,) = run({1: late}, seconds=20, standing_box=bus_beside_the_pole)
    assert window.vehicle_count == 0, "first seen 22.5 m past the line: it may have come from a side street"
    second_box = [None] * int(4.2 * FPS) + constant(36.0, x_m=5.0, seconds=20)[int(4.2 * FPS):]
    (window,) = run({1: constant(36.0, seconds=20), 2: second_box}, seconds=20, standing_box=bus_beside_the_pole)
    assert window.vehicle_count == 1, "a second box on a counted vehicle is not another vehicle"


def test_two_tracks_on_one_vehicle_count_once_and_side_by_side_vehicles_twice():
    (window,) = run({1: constant(36.0, x_m=4.5), 2: constant(36.0, x_m=4.8)}, seconds=20)
    assert window.vehicle_count == 1, "a duplicate track crossing at the same place and moment"
    (window,) = run({1: constant(36.0, x_m=2.75), 2: constant(36.0, x_m=6.25)}, seconds=20)
    assert window.vehicle_count == 2, "two lanes, one moment: two vehicles"


def test_crossing_against_the_direction_is_not_counted_but_its_speed_is_a_speed():
    backwards = [(4.5, 60.0 - 36 / 3.6 * k / FPS) for k in range(int(10 * FPS))]
    (window,) = run({1: backwards}, seconds=20)
    assert window.vehicle_count == 0
    assert window.mean_speed_kmh == pytest.approx(36.0, rel=0.01)
    (window,) = run({1: constant(36.0), 2: backwards}, seconds=20)
    assert window.mean_speed_kmh == pytest.approx(36.0, rel=0.01), "a wrong-way vehicle does not cancel another's travel"

    out_and_back = constant(36.0, start_y_m=20.0, seconds=2) + [(4.5, 40.0 - 36 / 3.6 * k / FPS) for k in range(int(2 * FPS))]
    (window,) = run({1: out_and_back}, seconds=20)
    assert window.mean_speed_kmh == pytest.approx(36.0, rel=0.1), "a track that jumps to an oncoming car does not net out"


def test_a_vehicle_is_in_the_zone_where_its_centre_is():
    """The box's anchor is the footprint's near end; for a car driving away from the camera, its rear. The
    truth places a vehicle by its centre, half a length further on."""
    half_m = TYPICAL_LENGTH_M[CLASS_IDS["car"]] / 2
    rear_before_start = [(4.5, ZONE_Y_M[0] - half_m + 0.5)] * int(10 * FPS)
    (window,) = run({1: rear_before_start}, seconds=10)
    assert window.density_vpkm > 0, "its centre is in the zone"
    rear_before_end = [(4.5, ZONE_Y_M[1] - half_m + 0.5)] * int(10 * FPS)
    (window,) = run({1: rear_before_end}, seconds=10)
    assert window.density_vpkm == 0, "its centre is past the zone"


def test_a_car_lost_standing_in_a_queue_stands_on_hidden():
    zone_km = (ZONE_Y_M[1] - ZONE_Y_M[0]) / 1000
    front = [(4.5, 40.0)] * int(60 * FPS)
    hidden = [(4.5, 33.0)] * int(5 * FPS) + [None] * int(55 * FPS)
    (window,) = run({1: front, 2: hidden}, seconds=60)
    held_s = 20.0 - 2.0  # from the longest gap a track bridges to the longest a hidden car is held
    assert window.density_vpkm == pytest.approx((60.0 + 5.0 + held_s) / 60.0 / zone_km, rel=0.03)
    (window,) = run({2: hidden}, seconds=60)
    assert window.density_vpkm == pytest.approx((5.0 - 1 / FPS) / 60.0 / zone_km, rel=0.01), "no queue beside it: a false box"
    taken = [None] * int(10 * FPS) + [(4.5, 33.5)] * int(50 * FPS)
    (window,) = run({1: front, 2: hidden, 3: taken}, seconds=60)
    assert window.density_vpkm == pytest.approx((60.0 + 5.0 + 3.0 + 50.0) / 60.0 / zone_km, rel=0.03), "its spot seen taken"


def test_the_open_window_reads_the_speed_so_far():
    meter = SegmentMeter(camera(), window_s=60)
    assert meter.open_windows() == {}
    path = constant(36.0, seconds=8)  # 10 m/s from y = 0, through the zone (15..60 m) and out
    for k, (x_m, y_m) in enumerate(path):
        meter.update(START + timedelta(seconds=k / FPS), Detections(
            xyxy=np.array([box_at(x_m, y_m)], np.float32), confidence=np.ones(1),
            class_id=np.array([CLASS_IDS["car"]]), tracker_id=np.array([1])))
    window = meter.open_windows()["cam.north"]
    assert window.window_end == START + timedelta(seconds=60)
    assert window.speed_ratio == pytest.approx(36.0 / 50, rel=0.02)
    assert window.vehicle_s == pytest.approx((60.0 - 15.0) / 10.0, abs=0.3)


def test_the_open_window_reads_the_speed_of_the_last_seconds_across_windows():
    """A car standing in the zone for 50 s, then driving on at 3 m/s (10.8 km/h, 0.216 of the limit): the
    window so far reads the stand, the last `RECENT_S` the driving, across the window's end at 60 s."""
    meter = SegmentMeter(camera(), window_s=60)
    path = [(4.5, 20.0 + 3.0 * max(k / FPS - 50.0, 0.0)) for k in range(int(61 * FPS) + 1)]
    recent = {}
    for k, (x_m, y_m) in enumerate(path):
        meter.update(START + timedelta(seconds=k / FPS), Detections(
            xyxy=np.array([box_at(x_m, y_m)], np.float32), confidence=np.ones(1),
            class_id=np.array([CLASS_IDS["car"]]), tracker_id=np.array([1])))
        recent[k / FPS] = meter.open_windows()["cam.north"]
    assert recent[45.0].recent_speed_ratio == pytest.approx(0.0, abs=0.01)
    assert recent[58.0].speed_ratio == pytest.approx(24.0 / 58.0 * 3.6 / 50, rel=0.05)
    assert recent[58.0].recent_speed_ratio == pytest.approx(0.216, rel=0.05)
    assert recent[61.0].window_end == START + timedelta(seconds=120)
    assert recent[61.0].recent_speed_ratio == pytest.approx(0.216, rel=0.05)


def test_windows_align_to_the_epoch():
    windows = run({1: constant(40, seconds=150)}, seconds=150)
    assert [w.window_end for w in windows] == [START + timedelta(seconds=s) for s in (60, 120, 180)]
    assert window_end_for(datetime(2026, 3, 2, 8, 0, 59, tzinfo=timezone.utc), 60) == START + timedelta(seconds=60)


def test_geometry_helpers():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert points_in_polygon(np.array([[5, 5], [11, 5], [-1, -1]], float), square).tolist() == [True, False, False]
    assert segments_cross((0, 0), (0, 2), (-1, 1), (1, 1))
    assert not segments_cross((0, 0), (0, 0.9), (-1, 1), (1, 1))


def test_untracked_detections_are_refused():
    with pytest.raises(ValueError, match="tracker_id"):
        SegmentMeter(camera()).update(START, Detections.empty())
