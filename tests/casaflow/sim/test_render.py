"""Pins the simulated city's scene and renderer contract.

- The scene has lanes, stop lines and one signal head per TLS-controlled incoming edge; buildings keep
  3 m from every lane.
- A frame is one uint8 (H*3//2, W) yuv420p array that PyAV takes and gives back unchanged; the same
  seed and inputs give the same bytes.
- Ground truth agrees with the pixels: outside all truth boxes and signal regions the frame equals the
  empty-road frame; inside each box it does not. `visible` is about 1 for an object in full view and
  drops with occlusion and with cut-off at the image border. Objects behind the camera or nearer than
  1 m are neither drawn nor reported.
- Two-wheelers differ as on a street: a bicycle's open frame, a motorcycle's body and headlamp.
"""

import av
import numpy as np
import pytest

from casaflow.geometry import PinholeCamera
from casaflow.sim.render import CameraRenderer, RoadUser, rgb_to_yuv, yuv420_to_rgb

W, H = 640, 360
DIMS = {
    "car": (4.3, 1.8, 1.5),
    "bus": (12.0, 2.5, 3.2),
    "truck": (7.5, 2.4, 3.4),
    "motorcycle": (2.2, 0.9, 1.5),
    "bicycle": (1.6, 0.65, 1.7),
    "pedestrian": (0.25, 0.5, 1.75),
}


def user(object_id: str, cls: str, x_m: float, y_m: float, heading_deg: float = 0.0, rgb=(200, 40, 40)) -> RoadUser:
    length, width, height = DIMS[cls]
    return RoadUser(object_id, cls, x_m, y_m, heading_deg, length, width, height, rgb)


@pytest.fixture(scope="module")
def camera() -> PinholeCamera:
    """On the east sidewalk of the northbound road x in [0, 6.4], looking north at the A1 junction."""
    return PinholeCamera(x_m=9.0, y_m=20.0, height_m=8.0, yaw_deg=0.0, pitch_deg=20.0, focal_px=500.0,
                         width_px=W, height_px=H)


@pytest.fixture(scope="module")
def renderer(grid_scene, camera) -> CameraRenderer:
    return CameraRenderer(grid_scene, camera, seed=11, lighting=0.95)


@pytest.fixture(scope="module")
def traffic() -> list[RoadUser]:
    rng = np.random.default_rng(3)
    users = []
    for i, cls in enumerate(["car", "bus", "truck", "car", "motorcycle", "bicycle", "car", "car", "truck", "car"]):
        x = (4.8, 1.6, -1.6, -4.8)[i % 4]
        colour = tuple(int(c) for c in rng.integers(40, 230, 3))
        users.append(user(f"v{i}", cls, x, 35.0 + 9.0 * i, 0.0 if x > 0 else 180.0, colour))
    users.append(user("p0", "pedestrian", 7.4, 45.0, 0.0, (30, 80, 200)))
    return users


def test_scene_has_lanes_stop_lines_signal_heads_and_clear_buildings(grid_scene):
    assert any(lane.is_sidewalk for lane in grid_scene.lanes)
    assert {"A0A1", "A2A1", "B1A1"} <= {head.head_id for head in grid_scene.signal_heads}
    assert "A0A1_1" in grid_scene.stop_line_lane_ids
    assert len(grid_scene.building_height_m) > 10
    assert ((grid_scene.building_height_m >= 8) & (grid_scene.building_height_m <= 30)).all()
    edge_pts = np.concatenate(
        [np.linspace(f, np.roll(f, -1, axis=0), 20).reshape(-1, 2) for f in grid_scene.building_footprint_xy]
    )
    for lane in grid_scene.lanes:
        a, b = lane.shape_xy[:-1], lane.shape_xy[1:]
        d = b - a
        t = np.clip(((edge_pts[:, None] - a) * d).sum(-1) / (d * d).sum(-1), 0, 1)
        dist = np.linalg.norm(edge_pts[:, None] - (a + t[..., None] * d), axis=-1).min()
        assert dist - lane.width_m / 2 >= 3.0 - 1e-6, lane.lane_id


def test_frame_layout_round_trips_through_pyav(renderer, traffic):
    frame = renderer.render(traffic, {})
    assert frame.yuv.dtype == np.uint8 and frame.yuv.shape == (H * 3 // 2, W)
    back = av.VideoFrame.from_ndarray(frame.yuv, format="yuv420p").to_ndarray()
    np.testing.assert_array_equal(back, frame.yuv)
    assert yuv420_to_rgb(frame.yuv).shape == (H, W, 3)
    assert frame.xyxy.dtype == np.float32 and frame.xyxy.shape == (len(frame.object_id), 4)
    assert frame.visible.dtype == np.float32


def test_same_seed_and_inputs_give_the_same_bytes(grid_scene, camera, traffic):
    states = {"A0A1": "g"}
    a = CameraRenderer(grid_scene, camera, seed=5)
    b = CameraRenderer(grid_scene, camera, seed=5)
    frames_a = [a.render(traffic, states).yuv for _ in range(2)]
    frames_b = [b.render(traffic, states).yuv for _ in range(2)]
    for fa, fb in zip(frames_a, frames_b):
        np.testing.assert_array_equal(fa, fb)
    again = [a.render(traffic, states, frame_index=3).yuv for _ in range(2)]
    np.testing.assert_array_equal(again[0], again[1])
    other = CameraRenderer(grid_scene, camera, seed=6).render(traffic, states, frame_index=0).yuv
    assert not np.array_equal(other, frames_a[0])


def planes(yuv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = yuv.reshape(-1)
    y = flat[: H * W].reshape(H, W)
    u = flat[H * W : H * W * 5 // 4].reshape(H // 2, W // 2)
    v = flat[H * W * 5 // 4 :].reshape(H // 2, W // 2)
    return y, u, v


def box_mask(boxes, shape, scale: int = 1, pad: int = 0) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for x1, y1, x2, y2 in boxes:
        mask[
            max(int(np.floor(y1 / scale)) - pad, 0) : int(np.ceil(y2 / scale)) + pad,
            max(int(np.floor(x1 / scale)) - pad, 0) : int(np.ceil(x2 / scale)) + pad,
        ] = True
    return mask


def test_truth_boxes_agree_with_pixels(renderer, traffic):
    states = {head: "r" for head in renderer.signal_regions}
    assert renderer.signal_regions, "the camera looks at the A1 junction's signal for its road"
    frame = renderer.render(traffic, states, frame_index=2)
    empty = renderer.render([], {}, frame_index=2)
    assert len(frame.object_id) >= 8
    boxes = list(frame.xyxy) + list(renderer.signal_regions.values())
    y, u, v = planes(frame.yuv)
    y0, u0, v0 = planes(empty.yuv)
    outside = ~box_mask(boxes, (H, W))
    np.testing.assert_array_equal(y[outside], y0[outside])
    outside_c = ~box_mask(boxes, (H // 2, W // 2), scale=2, pad=1)
    np.testing.assert_array_equal(u[outside_c], u0[outside_c])
    np.testing.assert_array_equal(v[outside_c], v0[outside_c])
    changed = y != y0
    for (x1, y1, x2, y2), vis in zip(frame.xyxy, frame.visible):
        assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
        inside = changed[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))]
        assert inside.sum() >= 0.2 * vis * (x2 - x1) * (y2 - y1)


@pytest.mark.parametrize("cls", sorted(DIMS))
def test_object_in_full_view_is_fully_visible(renderer, cls):
    frame = renderer.render([user("a", cls, 4.8, 40.0, 30.0)], {})
    assert list(frame.object_id) == ["a"]
    assert frame.visible[0] == pytest.approx(1.0, abs=0.03)


def test_occlusion_lowers_visible_of_the_farther_object(renderer):
    far = user("far", "car", 9.0, 50.0)
    alone = renderer.render([far], {})
    both = renderer.render([user("near", "truck", 9.0, 36.0), far], {})
    vis = dict(zip(both.object_id, both.visible))
    assert alone.visible[0] == pytest.approx(1.0, abs=0.03)
    assert vis["near"] == pytest.approx(1.0, abs=0.03)
    assert 0.05 < vis["far"] < alone.visible[0] - 0.2


def test_object_cut_off_by_the_image_border(renderer, camera):
    edge_xy = camera.image_to_ground(np.array([[0.0, 300.0]]))[0]
    frame = renderer.render([user("edge", "bus", edge_xy[0], edge_xy[1], 0.0)], {})
    assert list(frame.object_id) == ["edge"]
    assert 0.1 < frame.visible[0] < 0.9
    assert frame.xyxy[0, 0] == 0.0


def test_objects_behind_or_too_close_are_skipped(renderer):
    users = [user("behind", "car", 9.0, 10.0, 0.0), user("below", "bus", 9.0, 21.0, 0.0)]
    frame = renderer.render(users, {}, frame_index=1)
    assert len(frame.object_id) == 0
    np.testing.assert_array_equal(frame.yuv, renderer.render([], {}, frame_index=1).yuv)


def test_signal_state_changes_pixels_only_in_its_region(renderer):
    head_id, (x1, y1, x2, y2) = next(iter(renderer.signal_regions.items()))
    frames = {s: renderer.render([], {head_id: s}, frame_index=0).yuv for s in ("r", "y", "g")}
    dark = renderer.render([], {}, frame_index=0).yuv
    region = np.zeros((H, W), dtype=bool)
    region[y1:y2, x1:x2] = True
    for state, yuv in frames.items():
        y, y_dark = planes(yuv)[0], planes(dark)[0]
        assert (y != y_dark)[region].any(), state
        np.testing.assert_array_equal(y[~region], y_dark[~region])
    assert not np.array_equal(frames["r"], frames["g"])


def test_unknown_class_is_rejected(renderer):
    with pytest.raises(ValueError, match="class"):
        renderer.render([RoadUser("x", "tram", 4.8, 40.0, 0.0, 4.0, 2.0, 2.0, (1, 2, 3))], {})


def test_bt601_limited_range_round_trip():
    blocks = np.random.default_rng(0).integers(0, 256, size=(2, 3, 3))
    yuv = np.rint(rgb_to_yuv(blocks))
    assert (yuv[..., 0] >= 16).all() and (yuv[..., 0] <= 235).all()
    y_plane = yuv[..., 0].repeat(2, 0).repeat(2, 1)
    arr = np.concatenate([y_plane.ravel(), yuv[..., 1].ravel(), yuv[..., 2].ravel()]).astype(np.uint8).reshape(6, 6)
    np.testing.assert_allclose(yuv420_to_rgb(arr), blocks.repeat(2, 0).repeat(2, 1), atol=3)


def test_two_wheelers_differ_as_on_a_real_street(renderer, camera):
    """Seen side-on, a bicycle shows the road under its frame between the wheels, where a motorcycle has
    its body; a motorcycle shows a headlamp to the camera it faces, a bicycle looks alike from both ends."""
    empty_y = planes(renderer.render([], {}, frame_index=1).yuv)[0]
    (u, v), = camera.project(np.array([[4.8, 45.0, 0.3]]))[0].round().astype(int)
    side_on = {cls: planes(renderer.render([user("v", cls, 4.8, 45.0, 90.0, (200, 40, 40))], {}, frame_index=1).yuv)[0]
               for cls in ("bicycle", "motorcycle")}
    assert side_on["bicycle"][v, u] == empty_y[v, u]
    assert side_on["motorcycle"][v, u] != empty_y[v, u]
    brightest = {}
    for cls in ("bicycle", "motorcycle"):
        for heading_deg in (0.0, 180.0):
            y = planes(renderer.render([user("v", cls, 4.8, 45.0, heading_deg, (60, 60, 150))], {}, frame_index=1).yuv)[0]
            brightest[cls, heading_deg] = int(y[y != empty_y].max())
    assert brightest["motorcycle", 180.0] > brightest["motorcycle", 0.0] + 40, "a headlamp facing the camera"
    assert abs(brightest["bicycle", 180.0] - brightest["bicycle", 0.0]) <= 10
