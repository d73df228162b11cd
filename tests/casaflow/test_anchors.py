"""GroundAnchors puts a vehicle in its own lane: projected 3D boxes of long vehicles seen along a two-way
road, whose box bottom centres fall in the opposite direction's lanes, and boxes cut by the picture's edge."""

import numpy as np
import pytest

from casaflow.anchors import GroundAnchors
from casaflow.detections import CLASS_IDS
from casaflow.geometry import PinholeCamera, apply_homography, points_in_polygon, project_ground_polygon
from casaflow.inventory import Calibration, Camera, Segment

PINHOLE = PinholeCamera(x_m=20.0, y_m=0, height_m=8, yaw_deg=-25, pitch_deg=15, focal_px=500, width_px=640, height_px=360)
"""A pole 20 m right of the road's centre line, looking up the road."""
NORTH_X_M, SOUTH_X_M = (0.0, 7.0), (-7.0, 0.0)


def segment(name: str, lanes_x_m: tuple[float, float], direction_deg: float, pinhole: PinholeCamera = PINHOLE) -> Segment:
    zone = np.array([[lanes_x_m[0], 8.0], [lanes_x_m[1], 8.0], [lanes_x_m[1], 90.0], [lanes_x_m[0], 90.0]])
    line = pinhole.ground_to_image(np.array([[lanes_x_m[0], 40.0], [lanes_x_m[1], 40.0]]))
    return Segment(id=f"cam.{name}", zone=project_ground_polygon(pinhole, zone).tolist(), count_line=line.tolist(),
                   direction_deg=direction_deg, lanes=2, length_m=82.0, speed_limit_kmh=50, geometry=[[0, 0], [0, 0.001]])


CAMERA = Camera(id="cam", url="x.mp4", lon=0, lat=0,
                calibration=Calibration(homography=PINHOLE.homography_image_to_ground.tolist()),
                segments=[segment("north", NORTH_X_M, 0.0), segment("south", SOUTH_X_M, 180.0)])


def image_box(centre_x_m: float, centre_y_m: float, length_m: float, width_m: float, height_m: float) -> list[float]:
    """The image box of a road-aligned 3D box standing on the ground."""
    xs = centre_x_m + np.array([-1, 1]) * width_m / 2
    ys = centre_y_m + np.array([-1, 1]) * length_m / 2
    corners = np.array([[x, y, z] for x in xs for y in ys for z in (0.0, height_m)])
    uv, _ = PINHOLE.project(corners)
    return [uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()]


def zone_of(anchor_uv: np.ndarray) -> list[str]:
    return [s.id for s in CAMERA.segments if points_in_polygon(anchor_uv[None], np.asarray(s.zone))[0]]


@pytest.mark.parametrize(("cls", "length_m", "width_m", "height_m"), [("truck", 10.0, 2.5, 3.6), ("bus", 12.0, 2.55, 3.2)])
@pytest.mark.parametrize("distance_m", [22.0, 30.0, 40.0])
def test_a_long_vehicle_in_the_far_lane_stays_in_its_lane(cls, length_m, width_m, height_m, distance_m):
    box = image_box(-2.0, distance_m, length_m, width_m, height_m)
    bottom_centre = np.array([(box[0] + box[2]) / 2, box[3]])
    anchor = GroundAnchors.for_camera(CAMERA).image_points(np.array([box]), np.array([CLASS_IDS[cls]]))[0]
    assert zone_of(bottom_centre) == ["cam.north"]  # the naive anchor puts it on the other side of the road
    assert zone_of(anchor) == ["cam.south"]
    x_m = apply_homography(CAMERA.calibration.image_to_ground, anchor[None])[0, 0]
    assert abs(x_m - -2.0) < 1.0


@pytest.mark.parametrize("centre_x_m", [-5.0, -2.0, 2.0, 5.0])
def test_cars_keep_their_bottom_centre_in_their_lane(centre_x_m):
    box = image_box(centre_x_m, 30.0, 4.5, 1.8, 1.5)
    anchor = GroundAnchors.for_camera(CAMERA).image_points(np.array([box]), np.array([CLASS_IDS["car"]]))[0]
    assert np.allclose(anchor, [(box[0] + box[2]) / 2, box[3]])
    assert zone_of(anchor) == ["cam.north" if centre_x_m > 0 else "cam.south"]


def test_a_box_outside_every_zone_keeps_its_bottom_centre():
    box = np.array([[10.0, 10.0, 30.0, 20.0]])
    assert np.allclose(GroundAnchors.for_camera(CAMERA).image_points(box, np.array([0])), [[20.0, 20.0]])


def test_a_box_cut_by_the_pictures_edge_stands_on_that_edge():
    anchors = GroundAnchors.for_camera(CAMERA)
    boxes = np.array([[0.0, 200.0, 60.0, 240.0], [2.5, 200.0, 60.0, 240.0], [580.0, 200.0, 638.0, 240.0], [300.0, 200.0, 360.0, 240.0]])
    cars = np.full(len(boxes), CLASS_IDS["car"])
    assert np.allclose(anchors.image_points(boxes, cars)[:, 0], [0.0, 0.0, 609.0, 330.0]), "right edge unknown yet"
    assert anchors.cut_by_edge(boxes).tolist() == [True, True, False, False]
    anchors.image_size_px = (640, 360)
    assert np.allclose(anchors.image_points(boxes, cars), [[0.0, 240.0], [0.0, 240.0], [640.0, 240.0], [330.0, 240.0]])
    entering_from_below = [300.0, 250.0, 380.0, 358.0]
    assert anchors.cut_by_edge(np.vstack([boxes, entering_from_below])).tolist() == [True, True, True, False, True]
    bottom_7_px_short, side_6_px_short = [300.0, 250.0, 380.0, 353.0], [580.0, 200.0, 634.0, 240.0]
    assert anchors.cut_by_edge(np.array([bottom_7_px_short, side_6_px_short])).tolist() == [True, False]


def test_a_bus_beside_the_pole_cut_by_the_side_and_bottom_edges_stays_in_its_lane():
    """Looking along the road from a pole beside it: a bus queued at the foot of the pole fills the picture's
    bottom-left corner. Put on the left edge, its anchor would stand in the oncoming lane."""
    pole = PinholeCamera(x_m=6.0, y_m=0, height_m=7, yaw_deg=0, pitch_deg=14, focal_px=400, width_px=640, height_px=360)
    camera = Camera(id="cam", url="x.mp4", lon=0, lat=0, calibration=Calibration(homography=pole.homography_image_to_ground.tolist()),
                    segments=[segment("north", (0.0, 3.5), 0.0, pole), segment("south", (-3.5, 0.0), 180.0, pole)])
    xs = 1.75 + np.array([-1, 1]) * 2.55 / 2
    ys = 11.0 + np.array([-1, 1]) * 12.0 / 2
    uv, _ = pole.project(np.array([[x, y, z] for x in xs for y in ys for z in (0.0, 3.2)]))
    box = np.clip([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()], 0, [640, 360, 640, 360])
    anchors = GroundAnchors.for_camera(camera)
    anchors.image_size_px = (640, 360)
    assert box[0] == 0 and box[3] == 360 and anchors.cut_by_edge(box[None]).tolist() == [True]
    anchor_xy = anchors.ground_points(box[None], np.array([CLASS_IDS["bus"]]))[0]
    assert 0.0 < anchor_xy[0] < 3.5, "in the bus's own lane, not beyond the road's centre line"
