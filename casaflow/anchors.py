"""Where a road user stands: the image point of its ground footprint that tracks and measurements follow.

A box's bottom centre is the footprint's centre only for a vehicle seen end-on. Seen along the road
from the side, a long vehicle's box reaches from its near end towards the vanishing point, and the
bottom centre lands beside the vehicle, a lane or more away for a bus or a truck: a westbound truck
standing in a queue was measured for a minute as a slow eastbound vehicle. For buses and trucks the
anchor is the centre of the footprint's near end instead: on the box's bottom edge, half the vehicle's
width (in pixels at that row) in from the side of the box that holds the near end; a box no wider than
that is seen end-on and keeps its centre. Other classes keep the bottom centre.

A box cut by the picture's left or right edge shows only part of the road user, whose footprint lies
further out than the visible part's centre: its anchor is put on that edge. A car queued on a cross
street, half out of the picture, otherwise stood inside the next lane's zone: measured for minutes as a
standing car in free-flowing traffic (LOS A read as D). A box cut by the bottom edge as well belongs to a
road user passing right in front of the camera, whose footprint runs out of the picture below it: its
bottom centre stays in its lane, the side edge does not (a bus queued beside the pole, cut by the left and
bottom edges, stood in the oncoming lanes and read them as jammed). Where such a footprint is unknown, its
motion is too: `cut_by_edge` tells which boxes (left, right or bottom edge) give no trajectory point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from casaflow.detections import CLASS_NAMES, TYPICAL_LENGTH_M
from casaflow.geometry import apply_homography, away_from_camera_xy, points_in_polygon
from casaflow.inventory import Camera, Segment

TYPICAL_WIDTH_M: tuple[float, ...] = (1.8, 2.55, 2.5, 0.8, 0.65, 0.5)
"""Typical width of each class of `CLASS_NAMES`, metres."""

assert len(TYPICAL_WIDTH_M) == len(CLASS_NAMES)

CUT_MARGIN_PX = 4.0
"""A box edge this close to the picture's side edge is cut by it (detectors place border edges a few pixels
off)."""
BOTTOM_CUT_MARGIN_PX = 8.0
"""The same for the bottom edge, where boxes are tallest and their bottom edges furthest off: of the stage-6
detector's boxes whose bottom lay 4 to 8 px above a 360 px picture's bottom on seeds 215, 239, 241 and 242,
77 % belonged to road users the edge cut (a truck coming into view at 60 km/h, its box 7 px short, seed 215
cam03)."""

LONG_CLASS = np.asarray(TYPICAL_LENGTH_M) >= 6.0
"""Classes whose bottom centre strays from the footprint by a lane or more (buses, trucks). A car's strays
by less than the anchor's own error at range, where a few pixels of box are metres across the road."""


class GroundAnchors:
    """Footprint anchors of one camera's boxes, in image pixels (zones and count lines are drawn there)."""

    def __init__(self, image_to_ground: np.ndarray, segments: Sequence[Segment] = (), *,
                 image_size_px: tuple[int, int] | None = None) -> None:
        self.image_size_px = image_size_px
        """(width, height) of the camera's frames; the pipeline sets it from each frame. None: only the left
        edge is known."""
        self.image_to_ground = np.asarray(image_to_ground, np.float64).reshape(3, 3)
        self.ground_to_image = np.linalg.inv(self.image_to_ground)
        self.zones_uv = [np.asarray(s.zone, np.float64) for s in segments]
        bearings = [math.radians(s.direction_deg) for s in segments]
        self.axes_xy = np.array([[math.sin(b), math.cos(b)] for b in bearings]).reshape(-1, 2)

    @classmethod
    def for_camera(cls, camera: Camera) -> GroundAnchors:
        return cls(camera.calibration.image_to_ground, camera.segments)

    def ground_points(self, xyxy: np.ndarray, class_id: np.ndarray) -> np.ndarray:
        """(n, 2) ground metres of `image_points`."""
        return apply_homography(self.image_to_ground, self.image_points(xyxy, class_id))

    def image_points(self, xyxy: np.ndarray, class_id: np.ndarray) -> np.ndarray:
        """(n, 2) anchors `u, v` for (n, 4) boxes: the near end's centre on the bottom edge, or the bottom
        centre for a box in no segment's zone (no road axis to reason with); on the picture's side edge for a
        box cut by it and not by the bottom edge."""
        xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
        anchors = np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3]], axis=1)
        self._place_near_ends(xyxy, np.asarray(class_id, np.int64), anchors)
        left, right, bottom = self._cut_sides(xyxy)
        left, right = left & ~bottom, right & ~bottom
        anchors[left, 0] = 0.0
        if self.image_size_px is not None:
            anchors[right, 0] = self.image_size_px[0]
        return anchors

    def cut_by_edge(self, xyxy: np.ndarray) -> np.ndarray:
        """(n,) bool: boxes cut by the picture's left, right or bottom edge, whose footprint is out of sight.
        Their anchors stay on the edge while the road user moves, then leap when it comes into full view: no
        speed or leap test may use them."""
        left, right, bottom = self._cut_sides(np.asarray(xyxy, np.float64).reshape(-1, 4))
        return left | right | bottom

    def _cut_sides(self, xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n,) bool each: boxes cut by the left, right and bottom edge (the last two False while the
        frame's size is unknown)."""
        left = xyxy[:, 0] <= CUT_MARGIN_PX
        if self.image_size_px is None:
            return left, np.zeros_like(left), np.zeros_like(left)
        width_px, height_px = self.image_size_px
        return left, xyxy[:, 2] >= width_px - CUT_MARGIN_PX, xyxy[:, 3] >= height_px - BOTTOM_CUT_MARGIN_PX

    def _place_near_ends(self, xyxy: np.ndarray, class_id: np.ndarray, anchors: np.ndarray) -> None:
        """Moves the anchors of buses and trucks in a zone to their near end's centre, in place."""
        long = np.flatnonzero(LONG_CLASS[class_id]) if len(self.axes_xy) else []
        if not len(long):
            return
        zone = np.full(len(long), -1)
        for index, polygon in reversed(list(enumerate(self.zones_uv))):
            zone[points_in_polygon(anchors[long], polygon)] = index
        on_road = long[zone >= 0]
        if not len(on_road):
            return
        bottom = anchors[on_road]
        axis = self.axes_xy[zone[zone >= 0]]
        ground = apply_homography(self.image_to_ground, bottom)
        away = away_from_camera_xy(self.image_to_ground, bottom)
        far = axis * np.sign(np.sum(axis * away, axis=1, keepdims=True) + 1e-12)
        far_u = apply_homography(self.ground_to_image, ground + far)[:, 0]
        lateral = np.stack([-axis[:, 1], axis[:, 0]], axis=1)
        width_m = np.asarray(TYPICAL_WIDTH_M)[class_id[on_road]]
        width_px = np.abs(apply_homography(self.ground_to_image, ground + lateral * width_m[:, None])[:, 0] - bottom[:, 0])
        x1, x2 = xyxy[on_road, 0], xyxy[on_road, 2]
        half_px = np.minimum(width_px, x2 - x1) / 2
        near_u = np.where(far_u > bottom[:, 0], x1 + half_px, x2 - half_px)
        finite = np.isfinite(near_u)
        bottom[finite, 0] = near_u[finite]
        anchors[on_road] = bottom
