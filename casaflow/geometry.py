"""Pinhole camera model over the local ground frame.

Ground frame: metres, x east, y north, z up (SUMO network coordinates). Bearings are compass degrees:
0 = north, 90 = east, clockwise. Camera frame: x right, y down (image), z forward (optical axis).
Pixel coordinates are continuous: pixel (col c, row r) covers [c, c+1) x [r, r+1), its centre is
(c + 0.5, r + 0.5), and the principal point is (width_px / 2, height_px / 2).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PinholeCamera:
    """A calibrated camera without roll or distortion.

    Attributes:
        x_m: Camera centre, east coordinate.
        y_m: Camera centre, north coordinate.
        height_m: Camera centre height above the ground plane z = 0.
        yaw_deg: Compass bearing of the optical axis's horizontal projection.
        pitch_deg: Down-tilt below horizontal (positive looks down).
        focal_px: Focal length in pixels.
        width_px: Image width.
        height_px: Image height.
    """

    x_m: float
    y_m: float
    height_m: float
    yaw_deg: float
    pitch_deg: float
    focal_px: float
    width_px: int
    height_px: int

    def __post_init__(self) -> None:
        if self.focal_px <= 0 or self.width_px <= 0 or self.height_px <= 0:
            raise ValueError("focal_px, width_px and height_px must be positive")
        if not -89.0 < self.pitch_deg < 89.0:
            raise ValueError(f"pitch_deg must be within (-89, 89), got {self.pitch_deg}")

    @functools.cached_property
    def center_xyz(self) -> np.ndarray:
        """(3,) camera centre in the ground frame, metres."""
        return np.array([self.x_m, self.y_m, self.height_m], dtype=np.float64)

    @functools.cached_property
    def rotation(self) -> np.ndarray:
        """(3,3) world-to-camera rotation; its rows are the camera's right, down and forward axes."""
        yaw, pitch = np.radians(self.yaw_deg), np.radians(self.pitch_deg)
        forward = np.array([np.sin(yaw) * np.cos(pitch), np.cos(yaw) * np.cos(pitch), -np.sin(pitch)])
        right = np.array([np.cos(yaw), -np.sin(yaw), 0.0])
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    @functools.cached_property
    def intrinsics(self) -> np.ndarray:
        """(3,3) camera matrix K."""
        return np.array(
            [
                [self.focal_px, 0.0, self.width_px / 2.0],
                [0.0, self.focal_px, self.height_px / 2.0],
                [0.0, 0.0, 1.0],
            ]
        )

    @functools.cached_property
    def homography_ground_to_image(self) -> np.ndarray:
        """(3,3) H with [u, v, 1]^T ~ H [x, y, 1]^T for ground points (z = 0); H[2, 2] = 1 where possible."""
        rot = self.rotation
        return _normalise(self.intrinsics @ np.column_stack([rot[:, 0], rot[:, 1], -rot @ self.center_xyz]))

    @functools.cached_property
    def homography_image_to_ground(self) -> np.ndarray:
        """(3,3) H with [x, y, 1]^T ~ H [u, v, 1]^T: image pixels to ground metres; H[2, 2] = 1 where possible."""
        return _normalise(np.linalg.inv(self.homography_ground_to_image))

    @property
    def horizon_v(self) -> float:
        """Image row (continuous) of the horizon; rows above it see the sky."""
        return self.height_px / 2.0 - self.focal_px * float(np.tan(np.radians(self.pitch_deg)))

    def to_camera(self, points_xyz: np.ndarray) -> np.ndarray:
        """World points (..., 3) to camera coordinates (..., 3), metres."""
        return (np.asarray(points_xyz, dtype=np.float64) - self.center_xyz) @ self.rotation.T

    def project(self, points_xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Projects world points.

        Args:
            points_xyz: (n, 3) ground-frame points, metres.

        Returns:
            uv: (n, 2) float64 pixel coordinates (meaningless where depth <= 0).
            depth_m: (n,) depth along the optical axis; <= 0 means behind the camera.
        """
        cam = self.to_camera(np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3))
        depth = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = cam[:, :2] / depth[:, None] * self.focal_px
        uv += (self.width_px / 2.0, self.height_px / 2.0)
        return uv, depth

    def ground_to_image(self, xy: np.ndarray) -> np.ndarray:
        """(n, 2) ground points (z = 0), metres -> (n, 2) pixels."""
        return apply_homography(self.homography_ground_to_image, xy)

    def image_to_ground(self, uv: np.ndarray) -> np.ndarray:
        """(n, 2) pixels -> (n, 2) ground points (z = 0), metres.

        Pixels above the horizon have no ground point; their result is the ray's backward intersection.
        """
        return apply_homography(self.homography_image_to_ground, uv)

    def pixel_rays(self, uv: np.ndarray) -> np.ndarray:
        """(n, 2) pixels -> (n, 3) world-frame ray directions with unit forward component."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        cam = np.empty((len(uv), 3))
        cam[:, 0] = (uv[:, 0] - self.width_px / 2.0) / self.focal_px
        cam[:, 1] = (uv[:, 1] - self.height_px / 2.0) / self.focal_px
        cam[:, 2] = 1.0
        return cam @ self.rotation


def _normalise(h: np.ndarray) -> np.ndarray:
    """Scales a homography to h[2, 2] = 1, or to unit norm when h[2, 2] is (nearly) zero."""
    norm = float(np.linalg.norm(h))
    return h / h[2, 2] if abs(h[2, 2]) > 1e-9 * norm else h / norm


def apply_homography(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Applies a 3x3 homography to (n, 2) points, returning (n, 2) float64."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    out = pts @ h[:, :2].T + h[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return out[:, :2] / out[:, 2:3]


def _clip_half_space(poly: np.ndarray, signed: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman against one half-space: keeps points with signed >= 0.

    Args:
        poly: (n, d) polygon vertices.
        signed: (n,) signed distances of the vertices to the clipping plane.

    Returns:
        (m, d) clipped polygon (m may be 0).
    """
    n = len(poly)
    if n == 0 or np.all(signed >= 0):
        return poly
    if np.all(signed < 0):
        return poly[:0]
    out = []
    for i in range(n):
        j = (i + 1) % n
        a_in, b_in = signed[i] >= 0, signed[j] >= 0
        if a_in:
            out.append(poly[i])
        if a_in != b_in:
            t = signed[i] / (signed[i] - signed[j])
            out.append(poly[i] + t * (poly[j] - poly[i]))
    return np.asarray(out, dtype=np.float64).reshape(-1, poly.shape[1])


def clip_polygon_to_rect(poly_uv: np.ndarray, *, width_px: float, height_px: float) -> np.ndarray:
    """Clips an (n, 2) polygon to the image rectangle [0, width] x [0, height] -> (m, 2)."""
    poly = np.asarray(poly_uv, dtype=np.float64).reshape(-1, 2)
    for axis, limit in ((0, 0.0), (1, 0.0)):
        poly = _clip_half_space(poly, poly[:, axis] - limit)
    for axis, limit in ((0, float(width_px)), (1, float(height_px))):
        poly = _clip_half_space(poly, limit - poly[:, axis])
    return poly


def project_polygon(
    camera: PinholeCamera, poly_xyz: np.ndarray, *, near_m: float = 1.0, clip_to_image: bool = True
) -> np.ndarray:
    """Projects a planar 3D polygon, clipping it against the near plane first.

    Args:
        camera: The camera.
        poly_xyz: (n, 3) world polygon vertices, metres.
        near_m: Keeps the part with depth >= near_m.
        clip_to_image: Also clips the projection to the image rectangle.

    Returns:
        (m, 2) pixel polygon; (0, 2) when nothing is visible.
    """
    cam = camera.to_camera(np.asarray(poly_xyz, dtype=np.float64).reshape(-1, 3))
    cam = _clip_half_space(cam, cam[:, 2] - near_m)
    if len(cam) < 3:
        return np.empty((0, 2))
    uv = cam[:, :2] / cam[:, 2:3] * camera.focal_px + (camera.width_px / 2.0, camera.height_px / 2.0)
    if clip_to_image:
        uv = clip_polygon_to_rect(uv, width_px=camera.width_px, height_px=camera.height_px)
    return uv if len(uv) >= 3 else np.empty((0, 2))


def project_ground_polygon(camera: PinholeCamera, poly_xy: np.ndarray, near_m: float = 1.0) -> np.ndarray:
    """Image polygon of the visible part of a ground polygon (z = 0).

    The polygon is clipped in 3D against the near plane (depth >= near_m) before projection, then
    clipped to the image rectangle (exact for convex polygons).

    Args:
        camera: The camera.
        poly_xy: (n, 2) ground polygon, metres.
        near_m: Near-plane depth, metres.

    Returns:
        (m, 2) pixel polygon; (0, 2) when nothing is visible.
    """
    poly_xy = np.asarray(poly_xy, dtype=np.float64).reshape(-1, 2)
    return project_polygon(camera, np.column_stack([poly_xy, np.zeros(len(poly_xy))]), near_m=near_m)


def polygon_area(poly: np.ndarray) -> float:
    """Unsigned shoelace area of an (n, 2) polygon."""
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (counter-clockwise, monotone chain) of (n, 2) points -> (m, 2)."""
    pts = np.unique(np.asarray(points, dtype=np.float64).reshape(-1, 2), axis=0)
    if len(pts) < 3:
        return pts

    def half(seq: np.ndarray) -> list[np.ndarray]:
        chain: list[np.ndarray] = []
        for p in seq:
            while len(chain) >= 2:
                o, a = chain[-2], chain[-1]
                if (a[0] - o[0]) * (p[1] - o[1]) - (a[1] - o[1]) * (p[0] - o[0]) > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(n,2) points, (m,2) polygon vertices -> (n,) bool, even-odd rule."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddles = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return np.count_nonzero(straddles & (x < x_cross), axis=1) % 2 == 1


def segments_cross(p0, p1, q0, q1) -> bool:
    """Whether the segment p0-p1 (a track's step) crosses the segment q0-q1 (a count line)."""

    def side(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = side(q0, q1, p0), side(q0, q1, p1)
    d3, d4 = side(p0, p1, q0), side(p0, p1, q1)
    return (d1 > 0) != (d2 > 0) and (d3 > 0) != (d4 > 0) and d1 != 0


def away_from_camera_xy(image_to_ground: np.ndarray, uv: np.ndarray, *, px: float = 4.0) -> np.ndarray:
    """(n, 2) ground vectors from the ground points under image points `uv` (n, 2) to those `px` pixels
    above them: which way is away from the camera there (up the image is farther along the ground)."""
    uv = np.asarray(uv, np.float64).reshape(-1, 2)
    return apply_homography(image_to_ground, uv - [0.0, px]) - apply_homography(image_to_ground, uv)


def along_across_m(rel_xy: np.ndarray, direction_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground offsets `rel_xy` (..., 2) split along a unit `direction_xy` (signed) and across it (unsigned)."""
    rel_xy = np.asarray(rel_xy, np.float64)
    return rel_xy @ direction_xy, np.abs(rel_xy[..., 0] * direction_xy[1] - rel_xy[..., 1] * direction_xy[0])
