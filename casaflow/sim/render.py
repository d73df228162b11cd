"""Per-camera renderer of the simulated city, straight to YUV420 (BT.601 limited range, `yuv420p`).

The static background (sky, painted ground, buildings, signal poles and heads with dark lamps) is
rendered once per camera, converted once to YUV and stored as a small bank of noisy frames. A frame
then costs one copy of a bank frame plus the pixels of the lit lamps and of the road users, which
are shaded 3D boxes rasterised as row spans, all faces of all objects at once (painter's order
resolved with `np.maximum.at` on a face-priority buffer).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from casaflow.detections import CLASS_NAMES
from casaflow.geometry import (
    PinholeCamera,
    clip_polygon_to_rect,
    convex_hull,
    polygon_area,
    project_ground_polygon,
    project_polygon,
)
from casaflow.sim.scene import (
    DASH_OFF_M,
    DASH_ON_M,
    ZEBRA_OFF_M,
    ZEBRA_ON_M,
    GroundKind,
    StaticScene,
    points_in_polygon,
)

SIGNAL_STATES = ("r", "y", "g")
NEAR_M = 1.0
GLASS_RGB = (38, 46, 58)
SUN_AZIMUTH_DEG, SUN_ELEVATION_DEG = 135.0, 55.0


@dataclass(frozen=True)
class RoadUser:
    """A road user to draw.

    Attributes:
        object_id: Stable id (the SUMO vehicle or person id).
        cls: One of CLASS_NAMES.
        x_m: Centre of the ground footprint, east.
        y_m: Centre of the ground footprint, north.
        heading_deg: Compass bearing of the front (SUMO `getAngle`).
        length_m: Footprint length along the heading.
        width_m: Footprint width.
        height_m: Height of the box.
        colour_rgb: Body colour.
    """

    object_id: str
    cls: str
    x_m: float
    y_m: float
    heading_deg: float
    length_m: float
    width_m: float
    height_m: float
    colour_rgb: tuple[int, int, int]


@dataclass(frozen=True)
class RenderedFrame:
    """One rendered frame and its ground truth.

    Attributes:
        yuv: (H*3//2, W) uint8 planar YUV420: Y rows, then U, then V (the `yuv420p` ndarray layout).
        object_id: (n,) ids of the road users with at least `min_visible_px` drawn pixels, in input order.
        xyxy: (n, 4) float32 box of the 8 projected corners of each object's 3D box, clipped to the image
            (continuous pixel coordinates: pixel (c, r) covers [c, c+1) x [r, r+1)).
        visible: (n,) float32 in [0, 1]: drawn pixels / the object's own pixels inside the image with
            nothing in front of it (occlusion by nearer objects, buildings, signal poles), times the
            fraction of the convex hull of its 8 projected corners inside the image (cut-off).
    """

    yuv: np.ndarray
    object_id: np.ndarray
    xyxy: np.ndarray
    visible: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.object_id)
        if self.yuv.dtype != np.uint8 or self.yuv.ndim != 2:
            raise ValueError(f"yuv must be a 2-D uint8 array, got {self.yuv.dtype} {self.yuv.shape}")
        if self.xyxy.shape != (n, 4) or self.visible.shape != (n,):
            raise ValueError(f"truth arrays disagree: {n} ids, xyxy {self.xyxy.shape}, visible {self.visible.shape}")


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 255] -> (..., 3) float YUV, BT.601 limited range."""
    m = np.array(
        [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
    ) / 255.0
    return np.asarray(rgb, dtype=np.float64) @ m.T + (16.0, 128.0, 128.0)


def yuv420_to_rgb(arr: np.ndarray) -> np.ndarray:
    """(H*3//2, W) uint8 yuv420p -> (H, W, 3) uint8 RGB (debug and test helper, not for hot paths)."""
    rows, width = arr.shape
    height = rows * 2 // 3
    flat = arr.reshape(-1)
    n_y, n_c = height * width, height * width // 4
    y = flat[:n_y].reshape(height, width).astype(np.float64) - 16.0
    u = flat[n_y : n_y + n_c].reshape(height // 2, width // 2).astype(np.float64) - 128.0
    v = flat[n_y + n_c :].reshape(height // 2, width // 2).astype(np.float64) - 128.0
    u = u.repeat(2, 0).repeat(2, 1)
    v = v.repeat(2, 0).repeat(2, 1)
    rgb = np.stack([1.164 * y + 1.596 * v, 1.164 * y - 0.392 * u - 0.813 * v, 1.164 * y + 2.017 * u], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Template:
    """Faces of one class's shape in normalised object coordinates.

    u is along the heading (-0.5 back .. 0.5 front), w to the left (-0.5 .. 0.5), h up (0 .. 1). Parts
    are drawn bottom-up (by base height h0), then far to near: cameras look down on road users, so a part
    resting on another must come after it. Decals (layer 1) are coplanar sub-rectangles of a face.
    """

    quads: np.ndarray  # (q, 4, 3)
    normals: np.ndarray  # (q, 3)
    part: np.ndarray  # (q,) part index
    layer: np.ndarray  # (q,) 0 = face, 1 = decal drawn over it
    part_centre: np.ndarray  # (p, 3)
    part_h0: np.ndarray  # (p,)
    obj_weight: np.ndarray  # (q,) rgb = obj_weight * colour + fixed_rgb
    fixed_rgb: np.ndarray  # (q, 3)


class _StaticFace(NamedTuple):
    """A planar convex face of the static scene, outward-wound (normal = (q1 - q0) x (q2 - q0))."""

    quad_xyz: np.ndarray
    rgb: np.ndarray
    head_index: int = -1
    lamp_code: int = -1
    facade_height_m: float = 0.0


_FACES = {
    "front": (0, 1, (1.0, 0.0, 0.0)),
    "back": (0, 0, (-1.0, 0.0, 0.0)),
    "left": (1, 1, (0.0, 1.0, 0.0)),
    "right": (1, 0, (0.0, -1.0, 0.0)),
    "top": (2, 1, (0.0, 0.0, 1.0)),
}


def _face_quad(box: tuple[float, ...], face: str, sub: tuple[float, float, float, float] | None) -> np.ndarray:
    """(4, 3) quad of a box face, or of the sub-rectangle `sub` = (a0, a1, b0, b1) on it."""
    axis, side, _ = _FACES[face]
    lo, hi = np.array(box[0::2]), np.array(box[1::2])
    fixed = hi[axis] if side else lo[axis]
    free = [a for a in range(3) if a != axis]
    r0, r1 = (lo[free[0]], hi[free[0]]) if sub is None else sub[:2]
    s0, s1 = (lo[free[1]], hi[free[1]]) if sub is None else sub[2:]
    quad = np.empty((4, 3))
    quad[:, axis] = fixed
    quad[:, free[0]] = (r0, r1, r1, r0)
    quad[:, free[1]] = (s0, s0, s1, s1)
    return quad


def _template(parts: Sequence[dict]) -> _Template:
    quads, normals, part_idx, layer, weights, fixed = [], [], [], [], [], []
    for p_idx, part in enumerate(parts):
        box = part["box"]
        for face in _FACES:
            colour = part.get("top") if face == "top" and "top" in part else part.get("rgb")
            faces = [(None, colour, 0)] + [
                (sub, rgb, 1) for f, sub, rgb in part.get("decals", ()) if f == face
            ]
            for sub, rgb, lay in faces:
                quads.append(_face_quad(box, face, sub))
                normals.append(_FACES[face][2])
                part_idx.append(p_idx)
                layer.append(lay)
                if rgb is None:
                    weights.append(1.0)
                    fixed.append((0.0, 0.0, 0.0))
                elif rgb[0] == "obj":
                    weights.append(rgb[1])
                    fixed.append(rgb[2])
                else:
                    weights.append(0.0)
                    fixed.append(rgb)
    boxes = np.array([part["box"] for part in parts], dtype=np.float64)
    return _Template(
        quads=np.asarray(quads),
        normals=np.asarray(normals),
        part=np.asarray(part_idx),
        layer=np.asarray(layer),
        part_centre=(boxes[:, 0::2] + boxes[:, 1::2]) / 2,
        part_h0=boxes[:, 4],
        obj_weight=np.asarray(weights),
        fixed_rgb=np.asarray(fixed, dtype=np.float64),
    )


def _class_templates() -> dict[str, _Template]:
    dark = (34, 34, 37)
    sides = ("left", "right")
    return {
        "car": _template(
            [
                {
                    "box": (-0.5, 0.5, -0.5, 0.5, 0.0, 0.55),
                    "decals": [(f, (-0.5, 0.5, 0.0, 0.16), dark) for f in sides]
                    + [(f, (-0.5, 0.5, 0.0, 0.14), dark) for f in ("front", "back")]
                    + [("back", (a, b, 0.34, 0.48), (170, 25, 20)) for a, b in ((-0.44, -0.24), (0.24, 0.44))]
                    + [("front", (a, b, 0.3, 0.42), (225, 225, 205)) for a, b in ((-0.44, -0.26), (0.26, 0.44))],
                },
                {"box": (-0.3, 0.2, -0.46, 0.46, 0.55, 1.0), "rgb": GLASS_RGB, "top": ("obj", 0.92, (0, 0, 0))},
            ]
        ),
        "bus": _template(
            [
                {
                    "box": (-0.5, 0.5, -0.5, 0.5, 0.0, 1.0),
                    "decals": [(f, (-0.46, 0.4, 0.42, 0.84), GLASS_RGB) for f in sides]
                    + [(f, (-0.5, 0.5, 0.0, 0.12), dark) for f in sides]
                    + [("front", (-0.45, 0.45, 0.34, 0.9), GLASS_RGB), ("back", (-0.4, 0.4, 0.55, 0.85), GLASS_RGB)],
                }
            ]
        ),
        "truck": _template(
            [
                {
                    "box": (-0.5, 0.26, -0.5, 0.5, 0.0, 1.0),
                    "rgb": ("obj", 0.3, (150.0, 150.0, 147.0)),
                    "decals": [(f, (-0.5, 0.26, 0.0, 0.2), dark) for f in sides]
                    + [(f, (-0.5, 0.5, 0.0, 0.2), dark) for f in ("front", "back")],
                },
                {
                    "box": (0.28, 0.5, -0.5, 0.5, 0.0, 0.72),
                    "decals": [("front", (-0.45, 0.45, 0.42, 0.66), GLASS_RGB)]
                    + [(f, (0.33, 0.47, 0.42, 0.66), GLASS_RGB) for f in sides]
                    + [("front", (-0.5, 0.5, 0.0, 0.16), dark)],
                },
            ]
        ),
        # Two-wheelers differ as on a real street: a motorcycle has a solid body between its wheels,
        # a lit headlamp and tail lamp and a helmeted rider; a bicycle is an open frame on thin wheels,
        # with the rider's legs and bare head.
        "motorcycle": _template(
            [
                {"box": (-0.5, -0.3, -0.1, 0.1, 0.0, 0.28), "rgb": dark},
                {"box": (0.3, 0.5, -0.1, 0.1, 0.0, 0.28), "rgb": dark},
                {
                    "box": (-0.38, 0.42, -0.24, 0.24, 0.14, 0.5),
                    "rgb": ("obj", 0.6, (40.0, 40.0, 44.0)),
                    "decals": [
                        ("front", (-0.16, 0.16, 0.3, 0.46), (240, 236, 200)),
                        ("back", (-0.16, 0.16, 0.3, 0.42), (200, 30, 24)),
                    ],
                },
                {"box": (-0.25, 0.1, -0.45, 0.45, 0.5, 0.84)},
                {"box": (-0.12, 0.06, -0.22, 0.22, 0.84, 1.0), "rgb": (24, 24, 28)},
            ]
        ),
        "bicycle": _template(
            [
                {"box": (-0.5, -0.16, -0.05, 0.05, 0.0, 0.4), "rgb": dark},
                {"box": (0.16, 0.5, -0.05, 0.05, 0.0, 0.4), "rgb": dark},
                {"box": (-0.16, 0.16, -0.04, 0.04, 0.3, 0.38), "rgb": (150, 152, 158)},
                {"box": (-0.14, 0.04, -0.2, 0.2, 0.22, 0.5), "rgb": (46, 52, 72)},
                {"box": (-0.22, 0.12, -0.42, 0.42, 0.5, 0.84)},
                {"box": (-0.1, 0.06, -0.2, 0.2, 0.84, 1.0), "rgb": (160, 118, 92)},
            ]
        ),
        "pedestrian": _template(
            [
                {"box": (-0.35, 0.35, -0.35, 0.35, 0.0, 0.48), "rgb": (50, 50, 66)},
                {"box": (-0.5, 0.5, -0.5, 0.5, 0.48, 0.86)},
                {"box": (-0.35, 0.35, -0.28, 0.28, 0.86, 1.0), "rgb": (52, 38, 30)},
            ]
        ),
    }


def _sun_direction() -> np.ndarray:
    az, el = np.radians(SUN_AZIMUTH_DEG), np.radians(SUN_ELEVATION_DEG)
    return np.array([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)])


def _lambert(normals: np.ndarray) -> np.ndarray:
    """(..., 3) world normals -> (...,) shading factor."""
    return 0.55 + 0.5 * np.maximum(normals @ _sun_direction(), 0.0)


def _row_spans(uv: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, ...]:
    """Row spans of convex quads sampled at pixel centres.

    Args:
        uv: (f, 4, 2) convex quads in pixels.
        rows, cols: Raster size.

    Returns:
        span_face (s,), span_row (s,), c0 (s,), length (s,) int32: pixels [c0, c0 + length) of row
        span_row are covered by face span_face.
    """
    v = uv[..., 1]
    r0 = np.clip(np.ceil(v.min(1) - 0.5), 0, rows).astype(np.int32)
    r1 = np.clip(np.ceil(v.max(1) - 0.5), 0, rows).astype(np.int32)
    n_rows = np.maximum(r1 - r0, 0)
    total = int(n_rows.sum())
    span_face = np.repeat(np.arange(len(uv), dtype=np.int32), n_rows)
    span_row = np.arange(total, dtype=np.int32) + np.repeat(r0 - (np.cumsum(n_rows, dtype=np.int32) - n_rows), n_rows)
    a = uv.transpose(1, 2, 0)  # (4, 2, f)
    b = np.roll(a, -1, axis=0)
    dy = b[:, 1] - a[:, 1]
    flat = dy == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(flat, 0.0, (b[:, 0] - a[:, 0]) / np.where(flat, 1.0, dy))
    lines = np.empty((4, 4, len(uv)), dtype=np.float32)
    lines[0] = np.minimum(a[:, 1], b[:, 1])
    lines[1] = np.where(flat, -np.inf, np.maximum(a[:, 1], b[:, 1]))
    lines[2] = a[:, 0] - slope * a[:, 1]
    lines[3] = slope
    lo_y, hi_y, x0, k = np.take(lines, span_face, axis=2)
    yc = span_row.astype(np.float32) + np.float32(0.5)
    x = x0 + k * yc
    valid = (yc >= lo_y) & (yc < hi_y)
    xl = np.where(valid, x, np.float32(np.inf)).min(axis=0)
    xr = np.where(valid, x, np.float32(-np.inf)).max(axis=0)
    c0 = np.clip(np.ceil(xl - np.float32(0.5)), 0, cols).astype(np.int32)
    c1 = np.clip(np.ceil(xr - np.float32(0.5)), 0, cols).astype(np.int32)
    return span_face, span_row, c0, np.maximum(c1 - c0, 0)


def _expand_spans(span_face: np.ndarray, span_row: np.ndarray, c0: np.ndarray, length: np.ndarray, cols: int):
    """Spans -> flat pixel indices (p,) and their face (p,)."""
    total = int(length.sum())
    start = span_row * np.int32(cols) + c0 - (np.cumsum(length, dtype=np.int32) - length)
    return np.arange(total, dtype=np.int32) + np.repeat(start, length), np.repeat(span_face, length)


class CameraRenderer:
    """Renders one camera's view of the city; see the module docstring.

    Args:
        scene: The static scene.
        camera: The camera; width and height must be even.
        seed: Seed of the sensor noise and ground texture.
        lighting: Gain applied to all colours (per-camera exposure).
        noise_sigma: Standard deviation of the Gaussian sensor noise on Y, in levels.
        far_m: Scene items farther than this from the camera are not drawn.
        min_visible_px: Road users with fewer visible pixels are neither drawn nor reported.
        noise_frames: Size of the cycled bank of noise frames.

    Attributes:
        signal_regions: Head id -> (x1, y1, x2, y2) pixel box (padded by 1 px) of each signal head with at
            least one lamp pixel visible; only these heads are lit.
        static_depth_m: (H, W) depth of the static 3D scene (buildings, signals), inf elsewhere.
        background_yuv: (H*3//2, W) the empty-road frame of noise frame 0.

    Not thread-safe: render() reuses scratch buffers; use one renderer per camera and thread.
    """

    def __init__(
        self,
        scene: StaticScene,
        camera: PinholeCamera,
        *,
        seed: int,
        lighting: float = 1.0,
        noise_sigma: float = 2.0,
        far_m: float = 300.0,
        min_visible_px: int = 4,
        noise_frames: int = 8,
    ) -> None:
        if camera.width_px % 2 or camera.height_px % 2:
            raise ValueError("camera width_px and height_px must be even for yuv420p")
        self.scene = scene
        self.camera = camera
        self.lighting = float(lighting)
        self.far_m = float(far_m)
        self.min_visible_px = int(min_visible_px)
        self._templates = _class_templates()
        self._frame_counter = 0
        h, w = camera.height_px, camera.width_px
        rng = np.random.default_rng(seed)

        rgb, depth, labels = self._render_background(rng)
        self.static_depth_m = depth
        self._static_depth_flat = depth.astype(np.float32).reshape(-1)
        depth_half = depth.reshape(h // 2, 2, w // 2, 2).min(axis=(1, 3))
        self._static_depth_half_flat = depth_half.astype(np.float32).reshape(-1)
        self._has_static = bool(np.isfinite(depth).any())

        yuv = rgb_to_yuv(np.clip(rgb * self.lighting, 0, 255))
        y_plane = yuv[..., 0]
        uv_planes = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
        noise = np.rint(rng.normal(0.0, noise_sigma, size=(noise_frames, h * w)))
        self._noise = np.clip(noise, -16, 16).astype(np.int16)
        chroma = np.clip(np.rint(uv_planes), 0, 255).astype(np.uint8)
        self._bank = np.empty((noise_frames, h * w * 3 // 2), dtype=np.uint8)
        self._bank[:, : h * w] = np.clip(np.rint(y_plane.reshape(-1)) + self._noise, 0, 255)
        self._bank[:, h * w : h * w * 5 // 4] = chroma[..., 0].reshape(-1)
        self._bank[:, h * w * 5 // 4 :] = chroma[..., 1].reshape(-1)
        self.background_yuv = self._bank[0].reshape(h * 3 // 2, w)

        self._lamps, self.signal_regions = self._lamp_pixels(labels)
        self._priority = np.full(h * w, -1, dtype=np.int32)
        self._priority_half = np.full(h * w // 4, -1, dtype=np.int32)

    def _render_background(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (H, W, 3) float RGB, (H, W) static depth (inf = none) and (2, H, W) labels: the signal
        head index and the lamp code (head index * 3 + state index) of each pixel, -1 = none."""
        cam = self.camera
        h, w = cam.height_px, cam.width_px
        uc, vc = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        rays = cam.pixel_rays(np.column_stack([uc.ravel(), vc.ravel()])).reshape(h, w, 3)
        ray_len = np.linalg.norm(rays, axis=-1)
        elevation = np.arcsin(rays[..., 2] / ray_len)
        ground = rays[..., 2] < -1e-9
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(ground, -cam.height_m / rays[..., 2], np.nan)
        gx = cam.x_m + t * rays[..., 0]
        gy = cam.y_m + t * rays[..., 1]
        ground_dist = np.hypot(gx - cam.x_m, gy - cam.y_m)

        kind = self._classify_ground(gx, gy)
        palette = np.zeros((len(GroundKind), 3))
        palette[GroundKind.GROUND] = (150, 138, 116)
        palette[GroundKind.ASPHALT] = (82, 82, 85)
        palette[GroundKind.SIDEWALK] = (172, 166, 156)
        palette[GroundKind.KERB] = (212, 210, 202)
        palette[[GroundKind.LINE, GroundKind.DASHED, GroundKind.STOP_LINE, GroundKind.ZEBRA]] = (230, 230, 224)
        texture = 1.0 + 0.045 * rng.standard_normal((h, w))
        rgb = palette[kind] * texture[..., None]

        haze_rgb = np.array([196.0, 204.0, 212.0])
        fog = 1.0 - np.exp(-np.nan_to_num(ground_dist, nan=1e9) / 450.0)
        rgb = rgb * (1 - fog[..., None]) + haze_rgb * fog[..., None]
        sky_t = np.clip(elevation / np.radians(35.0), 0.0, 1.0)[..., None] ** 0.7
        sky = haze_rgb * (1 - sky_t) + np.array([92.0, 142.0, 206.0]) * sky_t
        rgb = np.where(ground[..., None], rgb, sky)

        depth = np.full((h, w), np.inf)
        labels = np.full((2, h, w), -1, dtype=np.int32)
        for face in self._static_faces():
            self._draw_static_face(face, rgb=rgb, depth=depth, labels=labels, haze_rgb=haze_rgb)
        return rgb, depth, labels

    def _classify_ground(self, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
        """(H, W) GroundKind per pixel from the pixels' ground points gx, gy (NaN = sky)."""
        cam, scene = self.camera, self.scene
        kind_map = np.zeros(gx.shape, dtype=np.uint8)
        cam_xy = np.array([cam.x_m, cam.y_m])
        p0, p1, width = scene.strip_p0_xy, scene.strip_p1_xy, scene.strip_width_m
        seg = p1 - p0
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        direction = seg / np.maximum(seg_len, 1e-9)[:, None]
        along = np.clip(((cam_xy - p0) * direction).sum(1), 0, seg_len)
        dist = np.hypot(*(p0 + direction * along[:, None] - cam_xy).T)
        near_strip = dist < self.far_m + width
        poly_near = [
            bool(np.hypot(*(poly - cam_xy).T).min() < self.far_m) or bool(points_in_polygon(cam_xy[0], cam_xy[1], poly))
            for poly in scene.polygons
        ]
        h, w = gx.shape

        def window(poly_xy: np.ndarray) -> tuple[slice, slice] | None:
            uv = project_ground_polygon(cam, poly_xy, near_m=0.5)
            if len(uv) == 0:
                return None
            c0, r0 = np.floor(uv.min(0)).astype(int)
            c1, r1 = np.ceil(uv.max(0)).astype(int)
            return slice(max(r0, 0), min(r1, h)), slice(max(c0, 0), min(c1, w))

        for k in GroundKind:
            for poly, poly_kind, near in zip(scene.polygons, scene.polygon_kind, poly_near):
                if poly_kind != k or not near:
                    continue
                win = window(poly)
                if win is not None:
                    kind_map[win][points_in_polygon(gx[win], gy[win], poly)] = k
            for i in np.flatnonzero(near_strip & (scene.strip_kind == k)):
                d, half = direction[i], width[i] / 2
                ext0, ext1 = scene.strip_ext_m[i]
                normal = np.array([-d[1], d[0]])
                rect = np.array(
                    [
                        p0[i] - d * ext0 - normal * half,
                        p1[i] + d * ext1 - normal * half,
                        p1[i] + d * ext1 + normal * half,
                        p0[i] - d * ext0 + normal * half,
                    ]
                )
                win = window(rect)
                if win is None:
                    continue
                dx, dy = gx[win] - p0[i, 0], gy[win] - p0[i, 1]
                s = dx * d[0] + dy * d[1]
                mask = (s >= -ext0) & (s <= seg_len[i] + ext1) & (np.abs(dy * d[0] - dx * d[1]) <= half)
                if k == GroundKind.DASHED:
                    mask &= np.mod(scene.strip_s0_m[i] + s, DASH_ON_M + DASH_OFF_M) < DASH_ON_M
                elif k == GroundKind.ZEBRA:
                    mask &= np.mod(scene.strip_s0_m[i] + s, ZEBRA_ON_M + ZEBRA_OFF_M) < ZEBRA_ON_M
                kind_map[win][mask] = k
        return kind_map

    def _static_faces(self) -> Iterator[_StaticFace]:
        """Faces of the buildings, signal poles and heads (lamps dark) within far_m."""
        scene, cam = self.scene, self.camera
        cam_xy = np.array([cam.x_m, cam.y_m])
        roof_rgb = np.array([150.0, 146.0, 140.0])
        for foot, height, colour in zip(
            scene.building_footprint_xy, scene.building_height_m, scene.building_colour_rgb
        ):
            if np.hypot(*(foot.mean(0) - cam_xy)) > self.far_m + 40.0:
                continue
            base = np.column_stack([foot, np.zeros(4)])
            top = np.column_stack([foot, np.full(4, height)])
            for i in range(4):
                j = (i + 1) % 4
                quad = np.stack([base[i], base[j], top[j], top[i]])
                yield _StaticFace(quad, colour.astype(np.float64), facade_height_m=float(height))
            yield _StaticFace(top, roof_rgb)
        head_w, head_d, head_h, lamp_m = 0.4, 0.3, 1.0, 0.26
        for h_idx, head in enumerate(scene.signal_heads):
            if np.hypot(head.x_m - cam.x_m, head.y_m - cam.y_m) > self.far_m:
                continue
            face_rad = np.radians(head.facing_deg)
            fwd = np.array([np.sin(face_rad), np.cos(face_rad), 0.0])
            side = np.array([np.cos(face_rad), -np.sin(face_rad), 0.0])
            base = np.array([head.x_m, head.y_m, 0.0])
            top_z = head.pole_height_m
            for quad in _box_quads(base, fwd, side, depth_m=0.16, width_m=0.16, z0=0.0, z1=top_z - head_h):
                yield _StaticFace(quad, np.array([88.0, 88.0, 92.0]))
            for quad in _box_quads(base, fwd, side, depth_m=head_d, width_m=head_w, z0=top_z - head_h, z1=top_z):
                yield _StaticFace(quad, np.array([28.0, 28.0, 30.0]), head_index=h_idx)
            for s_idx, dim_rgb in enumerate(((80, 24, 20), (80, 60, 14), (18, 64, 36))):
                zc = top_z - head_h * (0.18 + 0.32 * s_idx)
                centre = base + fwd * (head_d / 2 + 0.01) + np.array([0.0, 0.0, zc])
                quad = np.stack(
                    [
                        centre + side * sx * lamp_m / 2 + np.array([0.0, 0.0, sz * lamp_m / 2])
                        for sx, sz in ((1, -1), (-1, -1), (-1, 1), (1, 1))
                    ]
                )
                yield _StaticFace(
                    quad, np.array(dim_rgb, dtype=np.float64), head_index=h_idx, lamp_code=h_idx * 3 + s_idx
                )

    def _draw_static_face(
        self, face: _StaticFace, *, rgb: np.ndarray, depth: np.ndarray, labels: np.ndarray, haze_rgb: np.ndarray
    ) -> None:
        """Z-buffers one planar convex face into rgb (H, W, 3), depth (H, W) and labels (2, H, W)."""
        cam, quad = self.camera, face.quad_xyz
        normal_w = np.cross(quad[1] - quad[0], quad[2] - quad[0])
        normal_w /= np.linalg.norm(normal_w)
        if np.dot(cam.center_xyz - quad[0], normal_w) <= 0:
            return
        uv = project_polygon(cam, quad, near_m=0.3)
        if len(uv) == 0:
            return
        h, w = depth.shape
        c0, r0 = np.floor(uv.min(0)).astype(int)
        c1, r1 = np.ceil(uv.max(0)).astype(int)
        rows, cols = slice(max(r0, 0), min(r1, h)), slice(max(c0, 0), min(c1, w))
        uc = (np.arange(cols.start, cols.stop) + 0.5)[None, :]
        vc = (np.arange(rows.start, rows.stop) + 0.5)[:, None]
        inside = points_in_polygon(uc, vc, uv)
        n_cam = cam.rotation @ normal_w
        plane_offset = float(n_cam @ cam.to_camera(quad[0]))
        ray_dot = (
            n_cam[0] * (uc - cam.width_px / 2) / cam.focal_px
            + n_cam[1] * (vc - cam.height_px / 2) / cam.focal_px
            + n_cam[2]
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            z = plane_offset / ray_dot
        tolerance_m = 0.02 if face.lamp_code >= 0 else 0.0
        inside &= (z > 0) & (z < depth[rows, cols] + tolerance_m)
        if not inside.any():
            return
        shade = _lambert(normal_w)
        colour = np.broadcast_to(face.rgb * shade, inside.shape + (3,)).copy()
        if face.facade_height_m > 0:
            pix = np.stack(np.broadcast_arrays(uc, vc), -1).reshape(-1, 2)
            pts = cam.center_xyz + cam.pixel_rays(pix).reshape(inside.shape + (3,)) * z[..., None]
            length = float(np.linalg.norm(quad[1] - quad[0]))
            along = (pts - quad[0]) @ ((quad[1] - quad[0]) / length)
            storey = np.mod(pts[..., 2], 3.3)
            windows = (
                (np.mod(along - 1.0, 3.6) < 1.6)
                & (storey > 1.0)
                & (storey < 2.4)
                & (along > 1.0)
                & (along < length - 1.0)
                & (pts[..., 2] > 3.0)
                & (pts[..., 2] < face.facade_height_m - 1.0)
            )
            colour[windows] = np.array([70.0, 80.0, 92.0]) * shade
        fog = 1.0 - np.exp(-np.hypot(*(quad.mean(0)[:2] - cam.center_xyz[:2])) / 450.0)
        colour = colour * (1 - fog) + haze_rgb * fog
        rgb[rows, cols][inside] = colour[inside]
        depth[rows, cols][inside] = z[inside]
        labels[0, rows, cols][inside] = face.head_index
        labels[1, rows, cols][inside] = face.lamp_code

    def _lamp_pixels(self, labels: np.ndarray) -> tuple[dict, dict[str, tuple[int, int, int, int]]]:
        """Lit-lamp pixels and regions of the heads whose lamps are visible.

        Returns:
            lamps: head id -> per state ('r', 'y', 'g'): (full-res flat idx, half-res flat idx, lit yuv (3,)).
            regions: head id -> (x1, y1, x2, y2) pixel box of the head's drawn pixels, padded by 1 px.
        """
        head_label, lamp_label = labels
        h, w = lamp_label.shape
        lit = rgb_to_yuv(np.clip(np.array([(255, 50, 35), (255, 182, 0), (70, 255, 150)]) * self.lighting, 0, 255))
        lit = np.clip(np.rint(lit), 0, 255).astype(np.uint8)
        half = lamp_label.reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3).reshape(h // 2, w // 2, 4)
        lamps: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        regions: dict[str, tuple[int, int, int, int]] = {}
        for h_idx in np.unique(lamp_label[lamp_label >= 0] // 3):
            head_id = self.scene.signal_heads[h_idx].head_id
            lamps[head_id] = [
                (
                    np.flatnonzero(lamp_label == h_idx * 3 + s_idx),
                    np.flatnonzero((half == h_idx * 3 + s_idx).any(-1)),
                    lit[s_idx],
                )
                for s_idx in range(len(SIGNAL_STATES))
            ]
            rows, cols = np.nonzero(head_label == h_idx)
            regions[head_id] = (
                max(int(cols.min()) - 1, 0),
                max(int(rows.min()) - 1, 0),
                min(int(cols.max()) + 2, w),
                min(int(rows.max()) + 2, h),
            )
        return lamps, regions

    def render(
        self,
        road_users: Sequence[RoadUser],
        signal_states: Mapping[str, str],
        *,
        frame_index: int | None = None,
    ) -> RenderedFrame:
        """Renders one frame.

        Args:
            road_users: Objects to draw.
            signal_states: Signal head id -> 'r', 'y' or 'g'; heads not listed stay dark.
            frame_index: Picks the noise frame; by default an internal counter advances per call.

        Returns:
            The frame and its ground truth.
        """
        cam = self.camera
        h, w = cam.height_px, cam.width_px
        n_y, n_c = h * w, h * w // 4
        if frame_index is None:
            frame_index = self._frame_counter
            self._frame_counter += 1
        noise = self._noise[frame_index % len(self._noise)]
        out = self._bank[frame_index % len(self._bank)].copy()
        y_plane, u_plane, v_plane = out[:n_y], out[n_y : n_y + n_c], out[n_y + n_c :]
        for head_id, state in signal_states.items():
            per_state = self._lamps.get(head_id)
            if per_state is None or state not in SIGNAL_STATES:
                continue
            full_idx, half_idx, lit = per_state[SIGNAL_STATES.index(state)]
            y_plane[full_idx] = lit[0] + noise[full_idx]
            u_plane[half_idx] = lit[1]
            v_plane[half_idx] = lit[2]
        ids, xyxy, visible = self._draw_road_users(road_users, (y_plane, u_plane, v_plane), noise=noise)
        return RenderedFrame(yuv=out.reshape(h * 3 // 2, w), object_id=ids, xyxy=xyxy, visible=visible)

    def _draw_road_users(
        self,
        road_users: Sequence[RoadUser],
        planes: tuple[np.ndarray, np.ndarray, np.ndarray],
        *,
        noise: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draws the road users into the flat Y, U, V planes; returns (object_id, xyxy, visible)."""
        cam = self.camera
        h, w = cam.height_px, cam.width_px
        y_plane, u_plane, v_plane = planes
        empty = (np.empty(0, dtype=object), np.empty((0, 4), dtype=np.float32), np.empty(0, dtype=np.float32))
        if not road_users:
            return empty
        unknown = {u.cls for u in road_users} - self._templates.keys()
        if unknown:
            raise ValueError(f"unknown road user class(es) {sorted(unknown)}; expected {CLASS_NAMES}")
        num = np.array(
            [(u.x_m, u.y_m, u.heading_deg, u.length_m, u.width_m, u.height_m, *u.colour_rgb) for u in road_users],
            dtype=np.float64,
        )
        heading = np.radians(num[:, 2])
        frame = np.stack(
            [np.column_stack([np.sin(heading), np.cos(heading)]), np.column_stack([-np.cos(heading), np.sin(heading)])],
            axis=1,
        )  # (n, 2, 2): forward and left unit vectors
        box = np.array([(a, b, c) for a in (-0.5, 0.5) for b in (-0.5, 0.5) for c in (0.0, 1.0)])
        cam_pts = cam.to_camera(_to_world(box, num, frame))
        depth = cam_pts[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv8 = cam_pts[..., :2] / depth[..., None] * cam.focal_px + (w / 2, h / 2)
        lo, hi = uv8.min(1), uv8.max(1)
        keep = (depth >= NEAR_M).all(1) & (hi[:, 0] > 0) & (lo[:, 0] < w) & (hi[:, 1] > 0) & (lo[:, 1] < h)
        kept = np.flatnonzero(keep)
        if len(kept) == 0:
            return empty
        n_obj = len(kept)
        centre_xyz = np.column_stack([num[kept, :2], num[kept, 5] / 2])
        obj_depth = cam.to_camera(centre_xyz)[:, 2].astype(np.float32)
        obj_rank = np.empty(n_obj, dtype=np.int64)
        obj_rank[np.argsort(-np.linalg.norm(centre_xyz - cam.center_xyz, axis=1), kind="stable")] = np.arange(n_obj)

        uv, face_obj, face_yuv = self._object_faces(
            road_users, num[kept], frame[kept], obj_rank=obj_rank, kept=kept
        )
        face_depth = obj_depth[face_obj]

        spans = _row_spans(uv, h, w)
        idx, fid = _expand_spans(*spans, w)
        if self._has_static:
            unblocked = self._static_depth_flat[idx] > face_depth[fid]
            idx, fid = idx[unblocked], fid[unblocked]
        win = self._resolve(self._priority, idx, fid)
        widx, wfid = idx[win], fid[win]
        face_px = np.bincount(wfid, minlength=len(face_obj))
        counts = np.bincount(face_obj, weights=face_px, minlength=n_obj).astype(np.int64)
        ok = counts >= self.min_visible_px
        if not ok.all():
            drawn = ok[face_obj[wfid]]
            widx, wfid = widx[drawn], wfid[drawn]
        y_plane[widx] = face_yuv[wfid, 0] + noise[widx]

        hidx, hfid = _expand_spans(*_row_spans(uv / 2.0, h // 2, w // 2), w // 2)
        keep_half = ok[face_obj[hfid]]
        if self._has_static:
            keep_half &= self._static_depth_half_flat[hidx] > face_depth[hfid]
        hidx, hfid = hidx[keep_half], hfid[keep_half]
        hwin = self._resolve(self._priority_half, hidx, hfid)
        u_plane[hidx[hwin]] = face_yuv[hfid[hwin], 1]
        v_plane[hidx[hwin]] = face_yuv[hfid[hwin], 2]

        own = self._own_area(face_obj, *spans, n_obj=n_obj, rows=h)
        obj_lo, obj_hi = lo[kept], hi[kept]
        in_image = np.ones(n_obj)
        for i in np.flatnonzero((obj_lo[:, 0] < 0) | (obj_lo[:, 1] < 0) | (obj_hi[:, 0] > w) | (obj_hi[:, 1] > h)):
            hull = convex_hull(uv8[kept[i]])
            inside = polygon_area(clip_polygon_to_rect(hull, width_px=w, height_px=h))
            in_image[i] = inside / max(polygon_area(hull), 1e-9)
        visible = np.where(own > 0, counts / np.maximum(own, 1), 0.0) * in_image
        report = np.flatnonzero(ok)
        xyxy = np.column_stack([np.clip(obj_lo[report], 0, (w, h)), np.clip(obj_hi[report], 0, (w, h))])
        ids = np.array([road_users[i].object_id for i in kept[report]], dtype=object)
        return ids, xyxy.astype(np.float32), np.clip(visible[report], 0.0, 1.0).astype(np.float32)

    def _object_faces(
        self,
        road_users: Sequence[RoadUser],
        num: np.ndarray,
        frame: np.ndarray,
        *,
        obj_rank: np.ndarray,
        kept: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Front-facing faces of the kept objects in painter's order (far objects first).

        Args:
            road_users: All road users.
            num: (m, 9) x, y, heading, length, width, height, r, g, b of the kept objects.
            frame: (m, 2, 2) forward and left unit vectors of the kept objects.
            obj_rank: (m,) drawing rank of each kept object.
            kept: (m,) index of each kept object in road_users.

        Returns:
            uv (f, 4, 2) pixel quads, face_obj (f,) int32 kept-object index, face_yuv (f, 3) int16.
        """
        cam = self.camera
        classes = np.array([road_users[i].cls for i in kept])
        verts, normals, rgbs, owners, keys = [], [], [], [], []
        for cls_name in np.unique(classes):
            tpl = self._templates[str(cls_name)]
            local = np.flatnonzero(classes == cls_name)
            world = _to_world(tpl.quads, num[local], frame[local])  # (k, q, 4, 3)
            normal = np.einsum("qa,kab->kqb", tpl.normals[:, :2], frame[local])
            normal = np.concatenate([normal, np.broadcast_to(tpl.normals[None, :, 2:], normal.shape[:2] + (1,))], -1)
            front = ((cam.center_xyz - world[:, :, 0]) * normal).sum(-1) > 1e-9
            part_dist = np.linalg.norm(_to_world(tpl.part_centre, num[local], frame[local]) - cam.center_xyz, axis=-1)
            oi, fi = np.nonzero(front)
            verts.append(world[oi, fi])
            normals.append(normal[oi, fi])
            rgbs.append(tpl.obj_weight[fi, None] * num[local[oi], 6:9] + tpl.fixed_rgb[fi])
            owners.append(local[oi])
            keys.append(
                np.column_stack(
                    [obj_rank[local[oi]], tpl.part_h0[tpl.part[fi]], -part_dist[oi, tpl.part[fi]], tpl.layer[fi]]
                )
            )
        order = np.lexsort(np.concatenate(keys).T[::-1])
        quads = np.concatenate(verts)[order]
        shade = _lambert(np.concatenate(normals)[order])
        face_rgb = np.clip(np.concatenate(rgbs)[order] * (shade * self.lighting)[:, None], 0, 255)
        face_yuv = np.rint(rgb_to_yuv(face_rgb)).astype(np.int16)
        cam_v = cam.to_camera(quads)
        uv = cam_v[..., :2] / cam_v[..., 2:3] * cam.focal_px + (cam.width_px / 2, cam.height_px / 2)
        return uv, np.concatenate(owners)[order].astype(np.int32), face_yuv

    @staticmethod
    def _resolve(priority: np.ndarray, idx: np.ndarray, fid: np.ndarray) -> np.ndarray:
        """Painter's order: marks, per pixel, the entry with the highest face priority."""
        np.maximum.at(priority, idx, fid)
        win = priority[idx] == fid
        priority.fill(-1)
        return win

    @staticmethod
    def _own_area(face_obj, span_face, span_row, c0, length, *, n_obj: int, rows: int) -> np.ndarray:
        """(n_obj,) pixels inside the image covered by each object, occlusion ignored: per row, the union of
        its faces' spans (the road seen through a bicycle's frame is not the bicycle's)."""
        nonempty = length > 0
        owner = face_obj[span_face[nonempty]].astype(np.int64)
        row_width = int((c0[nonempty] + length[nonempty]).max(initial=0)) + 1
        start = (owner * rows + span_row[nonempty]) * row_width + c0[nonempty]
        order = np.argsort(start, kind="stable")
        start, owner = start[order], owner[order]
        end = start + length[nonempty][order]
        reached = np.concatenate(([np.iinfo(np.int64).min], np.maximum.accumulate(end)[:-1]))
        covered = np.maximum(end - np.maximum(start, reached), 0)
        return np.bincount(owner, weights=covered, minlength=n_obj).astype(np.int64)


def _to_world(points: np.ndarray, num: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Template points (..., 3) in normalised object coordinates -> (k, ..., 3) world points of k objects.

    Args:
        points: (..., 3) u forward (-0.5 .. 0.5), w left (-0.5 .. 0.5), h up (0 .. 1).
        num: (k, >= 6) x, y, heading, length, width, height of each object.
        frame: (k, 2, 2) forward and left unit vectors.
    """
    expand = (slice(None),) + (None,) * (points.ndim - 1)
    scaled = points[None] * num[:, 3:6][expand]
    out = np.empty(scaled.shape)
    out[..., :2] = (
        num[:, :2][expand] + scaled[..., 0:1] * frame[:, 0][expand] + scaled[..., 1:2] * frame[:, 1][expand]
    )
    out[..., 2] = scaled[..., 2]
    return out


def _box_quads(
    base_xyz: np.ndarray, fwd: np.ndarray, side: np.ndarray, *, depth_m: float, width_m: float, z0: float, z1: float
) -> list[np.ndarray]:
    """Outward-wound (4, 3) quads of an upright box's sides and top; fwd and side are horizontal units."""
    up = np.array([0.0, 0.0, 1.0])

    def corner(a: int, b: int, c: int) -> np.ndarray:
        return base_xyz + fwd * a * depth_m / 2 + side * b * width_m / 2 + up * (z1 if c else z0)

    faces = (
        ((1, 1, 0), (1, -1, 0), (1, -1, 1), (1, 1, 1)),
        ((-1, -1, 0), (-1, 1, 0), (-1, 1, 1), (-1, -1, 1)),
        ((-1, 1, 0), (1, 1, 0), (1, 1, 1), (-1, 1, 1)),
        ((1, -1, 0), (-1, -1, 0), (-1, -1, 1), (1, -1, 1)),
        ((-1, -1, 1), (-1, 1, 1), (1, 1, 1), (1, -1, 1)),
    )
    return [np.array([corner(*k) for k in face]) for face in faces]
