"""Pins the pinhole camera contract: ground frame x east / y north / z up, compass yaw, positive pitch
looks down, continuous pixel coordinates with the principal point at the image centre; homographies agree
with `project`; ground polygons are clipped against the near plane in 3D before projection."""

import numpy as np
import pytest

from casaflow.geometry import (
    PinholeCamera,
    along_across_m,
    apply_homography,
    clip_polygon_to_rect,
    convex_hull,
    polygon_area,
    project_ground_polygon,
)


def make_camera(**overrides) -> PinholeCamera:
    params = dict(x_m=10.0, y_m=-20.0, height_m=8.0, yaw_deg=30.0, pitch_deg=20.0, focal_px=500.0,
                  width_px=640, height_px=360)
    params.update(overrides)
    return PinholeCamera(**params)


def ground_points_in_view(camera: PinholeCamera, n: int = 50) -> np.ndarray:
    rng = np.random.default_rng(0)
    uv = np.column_stack([rng.uniform(0, camera.width_px, n), rng.uniform(camera.horizon_v + 20, camera.height_px, n)])
    return camera.image_to_ground(uv)


def test_project_then_back_project_returns_the_point():
    camera = make_camera()
    rng = np.random.default_rng(1)
    xyz = np.column_stack([rng.uniform(0, 60, 40), rng.uniform(0, 60, 40), rng.uniform(0, 10, 40)])
    uv, depth = camera.project(xyz)
    back = camera.center_xyz + camera.pixel_rays(uv) * depth[:, None]
    np.testing.assert_allclose(back, xyz, atol=1e-9)


def test_ground_round_trip_through_homographies():
    camera = make_camera()
    xy = ground_points_in_view(camera)
    np.testing.assert_allclose(camera.image_to_ground(camera.ground_to_image(xy)), xy, atol=1e-8)
    product = camera.homography_image_to_ground @ camera.homography_ground_to_image
    np.testing.assert_allclose(product / product[2, 2], np.eye(3), atol=1e-9)


def test_homography_agrees_with_project_for_ground_points():
    camera = make_camera()
    xy = ground_points_in_view(camera)
    uv, depth = camera.project(np.column_stack([xy, np.zeros(len(xy))]))
    assert (depth > 0).all()
    np.testing.assert_allclose(apply_homography(camera.homography_ground_to_image, xy), uv, atol=1e-8)
    np.testing.assert_allclose(camera.homography_image_to_ground[2, 2], 1.0)


@pytest.mark.parametrize(
    ("yaw_deg", "ahead_xy", "right_xy"),
    [(0.0, (0.0, 50.0), (5.0, 50.0)), (90.0, (50.0, 0.0), (50.0, -5.0)), (180.0, (0.0, -50.0), (-5.0, -50.0))],
)
def test_compass_yaw_and_image_axes(yaw_deg, ahead_xy, right_xy):
    camera = make_camera(x_m=0.0, y_m=0.0, yaw_deg=yaw_deg)
    uv = camera.ground_to_image(np.array([ahead_xy, right_xy]))
    assert uv[0, 0] == pytest.approx(camera.width_px / 2)
    assert uv[1, 0] > camera.width_px / 2
    assert camera.horizon_v < uv[0, 1] < camera.height_px


def test_horizon_row_is_where_far_ground_points_land():
    camera = make_camera(x_m=0.0, y_m=0.0, yaw_deg=0.0, pitch_deg=10.0)
    uv = camera.ground_to_image(np.array([[0.0, 1e7]]))
    assert uv[0, 1] == pytest.approx(camera.horizon_v, abs=1e-3)


def test_near_plane_clipping_of_a_polygon_extending_behind_the_camera():
    camera = make_camera(x_m=0.0, y_m=0.0, yaw_deg=0.0, pitch_deg=20.0)
    square = np.array([[-10.0, -30.0], [10.0, -30.0], [10.0, 40.0], [-10.0, 40.0]])
    poly = project_ground_polygon(camera, square, near_m=1.0)
    assert len(poly) >= 3
    assert np.isfinite(poly).all()
    assert (poly >= -1e-9).all() and (poly[:, 0] <= camera.width_px + 1e-9).all()
    assert (poly[:, 1] <= camera.height_px + 1e-9).all()
    ground = camera.image_to_ground(poly)
    assert (np.abs(ground[:, 0]) <= 10 + 1e-6).all() and (ground[:, 1] <= 40 + 1e-6).all()
    assert (ground[:, 1] > 0).all()
    behind = np.array([[-10.0, -30.0], [10.0, -30.0], [10.0, -5.0], [-10.0, -5.0]])
    assert project_ground_polygon(camera, behind).shape == (0, 2)


def test_polygon_helpers():
    square = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]])
    assert polygon_area(square) == pytest.approx(16.0)
    assert polygon_area(clip_polygon_to_rect(square + 2.0, width_px=5, height_px=5)) == pytest.approx(9.0)
    hull = convex_hull(np.vstack([square, [[2.0, 2.0], [1.0, 3.0]]]))
    assert polygon_area(hull) == pytest.approx(16.0) and len(hull) == 4


@pytest.mark.parametrize("bad", [dict(focal_px=0.0), dict(width_px=0), dict(pitch_deg=90.0), dict(pitch_deg=-95.0)])
def test_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        make_camera(**bad)


def test_along_across_splits_offsets_by_a_direction():
    north = np.array([0.0, 1.0])
    along, across = along_across_m(np.array([[3.0, 4.0], [-2.0, -5.0]]), north)
    np.testing.assert_allclose(along, [4.0, -5.0])
    np.testing.assert_allclose(across, [3.0, 2.0])
    along, across = along_across_m(np.array([3.0, 4.0]), np.array([0.6, 0.8]))
    assert along == pytest.approx(5.0) and across == pytest.approx(0.0)
