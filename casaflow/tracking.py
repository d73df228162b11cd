"""ByteTrack-style multi-object tracking, one tracker per camera.

Each frame's detections are split by confidence. High-confidence boxes are matched first to the confirmed
and lost tracks by IoU against Kalman-predicted boxes; low-confidence boxes then keep still-unmatched tracked
objects alive (the second stage that lets a partly occluded car keep its id); the remaining high boxes
confirm tentative tracks or start new ones. Lost tracks are dropped after `lost_track_buffer_s`, so memory
stays bounded on a 24/7 stream. Time is taken from the frames' `ts`, so dropped frames only widen the
prediction step. Ids are unique per camera and keyed `(camera_id, track_id)`.

A box overlapping a higher-confidence box of any class (`twin_rows`) is one road user seen twice and is
left out. The matching maths are free functions (`iou_matrix`, `twin_rows`, `linear_assignment`,
`KalmanFilter`); the tracker only orchestrates.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

from casaflow.detections import CLASS_NAMES, Detections
from casaflow.anchors import GroundAnchors

try:
    from scipy.optimize import linear_sum_assignment as _scipy_assignment
except ImportError:
    _scipy_assignment = None

TrackState = Literal["tentative", "tracked", "lost"]
CLASS_VOTE_MIN_HEIGHT_PX = 12.0
"""A box shorter than this carries a guess at its class (the detector's accuracy is measured from 12 px up):
a far motorcycle read as a pedestrian for seconds must not outvote its class once it is near."""
RECENT_CLASSES = 32
"""Matched boxes whose class a track remembers in order (`Track.class_share`): a second at 30 fps."""


def iou_matrix(xyxy_a: np.ndarray, xyxy_b: np.ndarray, *, buffer_ratio: float = 0.0) -> np.ndarray:
    """Pairwise intersection over union of two sets of boxes.

    Args:
        xyxy_a: (n, 4) boxes `x1, y1, x2, y2` in pixels.
        xyxy_b: (m, 4) boxes.
        buffer_ratio: Grows every box by this fraction of its width and height on each side before the
            overlap is measured (buffered IoU, Yang et al. 2023): fast objects at a low frame rate still
            overlap their previous box.

    Returns:
        (n, m) float64 IoU in 0..1.
    """
    a = _buffered(np.asarray(xyxy_a, np.float64).reshape(-1, 4), buffer_ratio)
    b = _buffered(np.asarray(xyxy_b, np.float64).reshape(-1, 4), buffer_ratio)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / union, 0.0)


def _buffered(xyxy: np.ndarray, ratio: float) -> np.ndarray:
    if ratio == 0.0:
        return xyxy
    pad = (xyxy[:, 2:] - xyxy[:, :2]) * ratio
    return np.concatenate([xyxy[:, :2] - pad, xyxy[:, 2:] + pad], axis=1)


def centre_distance_matrix(xyxy_tracks: np.ndarray, xyxy_detections: np.ndarray, *,
                           maximum_size_ratio: float = 2.0) -> np.ndarray:
    """Distance between box centres in units of the track box's diagonal, for boxes of similar size.

    Args:
        xyxy_tracks: (n, 4) predicted track boxes in pixels.
        xyxy_detections: (m, 4) detected boxes in pixels.
        maximum_size_ratio: Pairs whose widths or heights differ by more than this factor get infinity.

    Returns:
        (n, m) float64 normalised distances.
    """
    tracks = xyxy_to_xywh(xyxy_tracks)
    detections = xyxy_to_xywh(xyxy_detections)
    diagonal = np.hypot(tracks[:, 2], tracks[:, 3])
    distance = np.linalg.norm(tracks[:, None, :2] - detections[None, :, :2], axis=2) / diagonal[:, None]
    ratio = tracks[:, None, 2:] / detections[None, :, 2:]
    similar = np.all((ratio <= maximum_size_ratio) & (ratio >= 1 / maximum_size_ratio), axis=2)
    return np.where(similar, distance, np.inf)


def twin_rows(xyxy: np.ndarray, confidence: np.ndarray, *, iou_threshold: float) -> np.ndarray:
    """(n,) bool: the rows overlapping a higher-confidence row by more than `iou_threshold`, of any class.

    A detector's class heatmaps peak independently, so one road user can come out twice, as a car and a
    truck or a bicycle and a motorcycle (on a held-out seed about one box in ten had a twin of another class
    at IoU > 0.6), and each twin would become a second track: double counts and duplicate incidents. The
    detector itself keeps both, as detectors do (its per-class AP needs the right class's box). Matrix NMS:
    a twin left out still marks the rows below it, which matters only in chains of three.
    """
    if len(confidence) < 2:
        return np.zeros(len(confidence), bool)
    rank = np.empty(len(confidence), np.int64)
    rank[np.argsort(-np.asarray(confidence), kind="stable")] = np.arange(len(confidence))
    higher = rank[None, :] < rank[:, None]
    return ((iou_matrix(xyxy, xyxy) > iou_threshold) & higher).any(axis=1)


def linear_assignment(cost: np.ndarray, *, maximum_cost: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one matching of rows to columns, keeping only pairs with cost <= `maximum_cost`.

    Pairs above the limit are treated as forbidden, so the matching first maximises the number of allowed
    pairs, then minimises their total cost. Uses scipy when installed, a vectorised Hungarian method otherwise.

    Args:
        cost: (n, m) costs.
        maximum_cost: The largest cost a kept pair may have.

    Returns:
        (rows, cols): two (k,) int64 arrays of matched indices, sorted by row.
    """
    cost = np.asarray(cost, np.float64)
    if cost.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    allowed = cost <= maximum_cost
    if not allowed.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    forbidden = (np.abs(cost[allowed]).max() + 1.0) * (min(cost.shape) + 1)
    padded = np.where(allowed, cost, forbidden)
    rows, cols = _scipy_assignment(padded) if _scipy_assignment is not None else hungarian(padded)
    keep = allowed[rows, cols]
    return np.asarray(rows[keep], np.int64), np.asarray(cols[keep], np.int64)


def hungarian(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solves the rectangular assignment problem exactly (shortest augmenting paths, O(n^2 m)).

    Args:
        cost: (n, m) finite costs.

    Returns:
        (rows, cols): min(n, m) matched pairs minimising the total cost, sorted by row.
    """
    cost = np.asarray(cost, np.float64)
    if cost.shape[0] > cost.shape[1]:
        cols, rows = hungarian(cost.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    n, m = cost.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    row_of_col = np.zeros(m + 1, np.int64)
    way = np.zeros(m + 1, np.int64)
    for row in range(1, n + 1):
        row_of_col[0] = row
        col = 0
        min_slack = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[col] = True
            current_row = row_of_col[col]
            slack = cost[current_row - 1] - u[current_row] - v[1:]
            free = ~used[1:]
            better = free & (slack < min_slack[1:])
            min_slack[1:][better] = slack[better]
            way[1:][better] = col
            candidates = np.where(free, min_slack[1:], np.inf)
            next_col = int(np.argmin(candidates)) + 1
            delta = candidates[next_col - 1]
            used_cols = np.flatnonzero(used)
            u[row_of_col[used_cols]] += delta
            v[used_cols] -= delta
            min_slack[1:][free] -= delta
            col = next_col
            if row_of_col[col] == 0:
                break
        while col:
            previous = way[col]
            row_of_col[col] = row_of_col[previous]
            col = previous
    cols = np.flatnonzero(row_of_col[1:]) + 1
    rows = row_of_col[cols] - 1
    order = np.argsort(rows)
    return rows[order], cols[order] - 1


def xyxy_to_xywh(xyxy: np.ndarray) -> np.ndarray:
    """(n, 4) corner boxes to (n, 4) `centre x, centre y, width, height`."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.column_stack([(xyxy[:, :2] + xyxy[:, 2:]) / 2, np.maximum(xyxy[:, 2:] - xyxy[:, :2], 1e-3)])


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """(n, 4) `centre x, centre y, width, height` to (n, 4) corner boxes."""
    xywh = np.asarray(xywh, np.float64).reshape(-1, 4)
    half = np.maximum(xywh[:, 2:], 1e-3) / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


class KalmanFilter:
    """Constant-velocity Kalman filter over `xywh` boxes, vectorised over tracks.

    State (8,): `cx, cy, w, h` in pixels, then their velocities in pixels per second. Noise on x and w
    scales with the box width, on y and h with its height (as BoT-SORT's xywh filter), so wide boxes of
    vehicles seen side-on are modelled as well as tall ones. Process noise is a continuous-time random walk:
    a step of `dt_s` seconds adds variance in proportion to `dt_s`, so frames dropped upstream only widen
    the prediction.

    Args:
        position_noise: Measurement noise std, as a fraction of the box size.
        position_drift: Process noise of positions, fraction of size per sqrt(second).
        velocity_drift: Process noise of velocities, fraction of size per second per sqrt(second).
        initial_velocity: Initial velocity std, fraction of size per second; large, so that the second
            detection of an object teaches the filter its speed.
    """

    def __init__(self, *, position_noise: float = 0.05, position_drift: float = 0.27,
                 velocity_drift: float = 1.0, initial_velocity: float = 10.0) -> None:
        self.position_noise = position_noise
        self.position_drift = position_drift
        self.velocity_drift = velocity_drift
        self.initial_velocity = initial_velocity

    def initiate(self, xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Starts tracks at (n, 4) measurements; returns mean (n, 8) and covariance (n, 8, 8)."""
        xywh = np.asarray(xywh, np.float64).reshape(-1, 4)
        mean = np.concatenate([xywh, np.zeros_like(xywh)], axis=1)
        scale = np.tile(xywh[:, 2:], 2)
        std = np.concatenate([2 * self.position_noise * scale, self.initial_velocity * scale], axis=1)
        covariance = np.zeros((xywh.shape[0], 8, 8))
        covariance[:, np.arange(8), np.arange(8)] = std**2
        return mean, covariance

    def predict(self, mean: np.ndarray, covariance: np.ndarray, dt_s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Moves (n, 8) means and (n, 8, 8) covariances forward by `dt_s` seconds (scalar or (n,))."""
        n = mean.shape[0]
        dt = np.broadcast_to(np.asarray(dt_s, np.float64), (n,))
        transition = np.broadcast_to(np.eye(8), (n, 8, 8)).copy()
        transition[:, np.arange(4), np.arange(4, 8)] = dt[:, None]
        scale = np.tile(np.maximum(mean[:, 2:4], 1.0), 2)
        variance_rate = np.concatenate([(self.position_drift * scale) ** 2, (self.velocity_drift * scale) ** 2], axis=1)
        noise = np.zeros((n, 8, 8))
        noise[:, np.arange(8), np.arange(8)] = variance_rate * dt[:, None]
        mean = np.einsum("nij,nj->ni", transition, mean)
        covariance = transition @ covariance @ transition.transpose(0, 2, 1) + noise
        return mean, covariance

    def update(self, mean: np.ndarray, covariance: np.ndarray, xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Corrects (n, 8) means and (n, 8, 8) covariances with (n, 4) measurements."""
        n = mean.shape[0]
        std = self.position_noise * np.tile(np.maximum(mean[:, 2:4], 1.0), 2)
        projected_cov = covariance[:, :4, :4].copy()
        projected_cov[:, np.arange(4), np.arange(4)] += std**2
        cross = covariance[:, :, :4]
        gain = np.linalg.solve(projected_cov, cross.transpose(0, 2, 1)).transpose(0, 2, 1)
        innovation = np.asarray(xywh, np.float64).reshape(n, 4) - mean[:, :4]
        mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        covariance = covariance - gain @ projected_cov @ gain.transpose(0, 2, 1)
        return mean, covariance


class Track:
    """One object followed by a `ByteTracker`.

    Attributes:
        camera_id: The camera it belongs to.
        track_id: Unique within the camera; `key` is `(camera_id, track_id)`.
        state: tentative (not yet confirmed), tracked, or lost (missed, kept for re-identification).
        hits: Detections matched to it.
        age: Frames since it was born.
        first_ts: UTC time of its first detection.
        last_ts: UTC time of its last matched detection.
        confidence: Confidence of the last matched detection.
        peak_confidence: Highest confidence of its matched detections (how sure anyone can be it exists).
        class_votes: (2, classes) matched detections per class: row 0 of every box, row 1 of boxes at least
            `CLASS_VOTE_MIN_HEIGHT_PX` tall.
        recent_classes: `(time_s, class_id)` of the last `RECENT_CLASSES` matched detections.
        ground_trajectory: Bounded deque of `(ts, x_m, y_m)`: the box's ground anchor (`GroundAnchors`,
            the camera's homography), one point per matched frame whose box the picture's edge does not
            cut, covering at most `trajectory_s` seconds.
    """

    def __init__(self, camera_id: str, track_id: int, *, mean: np.ndarray, covariance: np.ndarray,
                 ts: datetime, class_id: int, height_px: float, confidence: float, time_s: float, max_points: int) -> None:
        self.camera_id = camera_id
        self.track_id = track_id
        self.state: TrackState = "tentative"
        self.mean = mean
        self.covariance = covariance
        self.hits = 1
        self.age = 1
        self.first_ts = ts
        self.last_ts = ts
        self.last_time_s = time_s
        self.predicted_s = time_s
        self.confidence = confidence
        self.peak_confidence = confidence
        self.class_votes = np.zeros((2, len(CLASS_NAMES)), np.int64)
        self.recent_classes: deque[tuple[float, int]] = deque(maxlen=RECENT_CLASSES)
        self.vote(class_id, height_px=height_px, time_s=time_s)
        self.ground_trajectory: deque[tuple[datetime, float, float]] = deque(maxlen=max_points)

    @property
    def key(self) -> tuple[str, int]:
        """`(camera_id, track_id)`, unique across the city."""
        return self.camera_id, self.track_id

    @property
    def class_id(self) -> int:
        """The class most often detected for this track in boxes at least `CLASS_VOTE_MIN_HEIGHT_PX` tall, or
        in all its boxes while none is (ties to the lower class id)."""
        return int(np.argmax(self._counted_votes))

    @property
    def _counted_votes(self) -> np.ndarray:
        """The votes that decide the class: of boxes tall enough, or of all while none is."""
        return self.class_votes[1] if self.class_votes[1].any() else self.class_votes[0]

    def vote(self, class_id: int, *, height_px: float, time_s: float) -> None:
        """Counts the class of a box matched to this track, `height_px` tall, at `time_s`."""
        self.class_votes[:, class_id] += [1, int(height_px >= CLASS_VOTE_MIN_HEIGHT_PX)]
        self.recent_classes.append((time_s, class_id))

    def vote_share(self, class_ids: Collection[int]) -> float:
        """Fraction of the votes that decide `class_id` that went to `class_ids`."""
        votes = self._counted_votes
        return float(votes[list(class_ids)].sum() / max(votes.sum(), 1))

    def class_share(self, class_ids: Collection[int], *, window_s: float) -> float:
        """Fraction of the detections matched over the last `window_s` seconds (up to its last match) that
        were of one of `class_ids`: what the track follows now, where its votes remember what it followed."""
        recent = self.recent_class_counts(window_s=window_s)
        return float(recent[list(class_ids)].sum() / recent.sum())

    def recent_class_counts(self, *, window_s: float) -> np.ndarray:
        """(classes,) detections matched per class over the last `window_s` seconds (up to its last match)."""
        classes = [c for t, c in self.recent_classes if t >= self.last_time_s - window_s]
        return np.bincount(classes, minlength=len(CLASS_NAMES))

    @property
    def xyxy(self) -> np.ndarray:
        """(4,) the filtered box `x1, y1, x2, y2` in pixels."""
        return xywh_to_xyxy(self.mean[:4])[0]

    @property
    def velocity_px_s(self) -> np.ndarray:
        """(2,) the filtered centre velocity in pixels per second."""
        return self.mean[4:6].copy()

    def ground_speed_mps(self, *, window_s: float = 2.0) -> float | None:
        """Mean ground speed over the last `window_s` seconds of the trajectory, m/s; None if too short."""
        if len(self.ground_trajectory) < 2:
            return None
        end_ts, end_x, end_y = self.ground_trajectory[-1]
        points = [p for p in self.ground_trajectory if (end_ts - p[0]).total_seconds() <= window_s]
        start_ts, start_x, start_y = points[0]
        elapsed_s = (end_ts - start_ts).total_seconds()
        if elapsed_s <= 0:
            return None
        return math.hypot(end_x - start_x, end_y - start_y) / elapsed_s

    def __repr__(self) -> str:
        return f"Track({self.camera_id!r}, {self.track_id}, {self.state}, {CLASS_NAMES[self.class_id]}, hits={self.hits})"


class ByteTracker:
    """ByteTrack for one camera: two-stage IoU association on high and low confidence, Kalman motion.

    Args:
        camera_id: The camera's id, part of every track's key.
        frame_rate: Expected frames per second (the camera's analysis fps); bounds the trajectories' length
            and is the time step when `update` gets no `ts`.
        high_confidence: Detections at or above it are matched first and may start tracks.
        low_confidence: Detections in [low_confidence, high_confidence) only extend tracked objects.
        new_track_confidence: A detection left unmatched starts (or confirms) a track only at or above it;
            below `high_confidence` too, so a vehicle half hidden all the way past a count line still gets
            a track. Such a track's `peak_confidence` tells how sure it is.
        minimum_iou: Smallest IoU for a first-stage (and tentative) match.
        minimum_iou_low: Smallest IoU for a second-stage match with a low-confidence detection.
        duplicate_iou: A detection overlapping a higher-confidence one of any class by more than this IoU
            is the same road user seen twice (`twin_rows`) and is left out.
        tentative_buffer_ratio: Buffer (fraction of box size per side) of the IoU used to confirm a
            tentative track, which has no velocity yet; at 0.75 an object may move 1.6 times its size
            between its first two frames and still be confirmed (fast vehicles at 5 fps).
        minimum_consecutive_frames: Matches needed to confirm a track (its id is reported from then on). A
            tentative track survives one missed frame, then is dropped.
        lost_track_buffer_s: Seconds a lost track waits to be found again before it is deleted.
        recovery_distance: Last-chance stage: a confirmed track missed for at most `recovery_window_s` may
            take a leftover high-confidence detection of similar size whose centre lies within this many
            track-box diagonals of its prediction (a vehicle changing lane or braking hard between two frames
            at a low frame rate); 0 disables it.
        recovery_window_s: How long after its last match a track may be recovered by distance.
        ground_anchors: Where each box stands on the ground (`GroundAnchors`); None leaves ground
            trajectories empty.
        trajectory_s: Seconds of ground trajectory kept per track.
        kalman: The motion model.
    """

    def __init__(
        self,
        camera_id: str,
        *,
        frame_rate: float,
        high_confidence: float = 0.5,
        low_confidence: float = 0.1,
        new_track_confidence: float = 0.4,
        minimum_iou: float = 0.2,
        minimum_iou_low: float = 0.5,
        duplicate_iou: float = 0.7,
        tentative_buffer_ratio: float = 0.75,
        minimum_consecutive_frames: int = 2,
        lost_track_buffer_s: float = 5.0,
        recovery_distance: float = 1.5,
        recovery_window_s: float = 1.0,
        ground_anchors: GroundAnchors | None = None,
        trajectory_s: float = 60.0,
        kalman: KalmanFilter | None = None,
    ) -> None:
        if frame_rate <= 0:
            raise ValueError(f"frame_rate must be positive, got {frame_rate}")
        if not 0 <= low_confidence <= high_confidence:
            raise ValueError("need 0 <= low_confidence <= high_confidence")
        self.camera_id = camera_id
        self.frame_rate = frame_rate
        self.high_confidence = high_confidence
        self.low_confidence = low_confidence
        self.new_track_confidence = new_track_confidence
        self.minimum_iou = minimum_iou
        self.minimum_iou_low = minimum_iou_low
        self.duplicate_iou = duplicate_iou
        self.tentative_buffer_ratio = tentative_buffer_ratio
        self.minimum_consecutive_frames = minimum_consecutive_frames
        self.lost_track_buffer_s = lost_track_buffer_s
        self.recovery_distance = recovery_distance
        self.recovery_window_s = recovery_window_s
        self.tentative_patience_s = 1.5 / frame_rate
        self.ground_anchors = ground_anchors
        self.trajectory_s = trajectory_s
        self.kalman = kalman or KalmanFilter()
        self._max_points = math.ceil(trajectory_s * frame_rate * 2) + 2
        self._tracks: list[Track] = []
        self._next_id = 1
        self._origin_ts: datetime | None = None
        self._time_s = 0.0

    @property
    def tracks(self) -> list[Track]:
        """Every track held: tentative, tracked and lost."""
        return list(self._tracks)

    @property
    def confirmed_tracks(self) -> list[Track]:
        """Tracks matched in the last update and confirmed."""
        return [t for t in self._tracks if t.state == "tracked" and t.last_time_s == self._time_s]

    def reset(self) -> None:
        """Forgets every track (ids keep increasing, so keys stay unique)."""
        self._tracks = []
        self._origin_ts = None
        self._time_s = 0.0

    def update(self, detections: Detections, ts: datetime | None = None) -> Detections:
        """Tracks one frame's detections.

        Args:
            detections: The frame's detections (any `tracker_id` is ignored).
            ts: UTC time of the frame; None steps by 1 / frame_rate.

        Returns:
            The rows matched to confirmed tracks, in input order, with `tracker_id` set and `class_id`
            replaced by the track's class (`Track.class_id`).
        """
        ids = self.assign(detections, ts)
        keep = ids >= 0
        rows = detections[keep]
        by_id = {t.track_id: t.class_id for t in self._tracks}
        class_id = np.array([by_id[i] for i in ids[keep]], np.int64)
        return Detections(xyxy=rows.xyxy, confidence=rows.confidence, class_id=class_id, tracker_id=ids[keep])

    def assign(self, detections: Detections, ts: datetime | None = None) -> np.ndarray:
        """Tracks one frame and returns (n,) int64 track ids per input row, -1 where none is confirmed."""
        time_s = self._advance(ts)
        frame_ts = ts if ts is not None else self._synthetic_ts()
        ids = np.full(len(detections), -1, np.int64)
        for track in self._tracks:
            track.age += 1
        self._predict(time_s)

        confidence = detections.confidence
        boxes = detections.xyxy
        single = ~twin_rows(boxes, confidence, iou_threshold=self.duplicate_iou)
        high = np.flatnonzero(single & (confidence >= self.high_confidence))
        low = np.flatnonzero(single & (confidence >= self.low_confidence) & (confidence < self.high_confidence))

        pool = [t for t in self._tracks if t.state != "tentative"]
        tentative = [t for t in self._tracks if t.state == "tentative"]
        matches: list[tuple[Track, int]] = []

        pairs, unmatched_pool, unmatched_high = self._match(pool, high, boxes, self.minimum_iou, 0.0)
        matches += pairs
        still_tracked = [t for t in unmatched_pool if t.state == "tracked"]
        pairs, unmatched_tracked, unmatched_low = self._match(still_tracked, low, boxes, self.minimum_iou_low, 0.0)
        matches += pairs
        newcomers = np.concatenate([unmatched_high, unmatched_low[confidence[unmatched_low] >= self.new_track_confidence]])
        pairs, unmatched_tentative, unborn = self._match(tentative, newcomers, boxes, self.minimum_iou,
                                                        self.tentative_buffer_ratio)
        matches += pairs
        missing = [t for t in unmatched_pool if t.state == "lost" or t in unmatched_tracked]
        recent = [t for t in missing if time_s - t.last_time_s <= self.recovery_window_s]
        pairs, _, unborn = self._recover(recent, unborn, boxes)
        matches += pairs
        recovered = {id(t) for t, _ in pairs}

        self._apply(matches, detections, time_s, frame_ts)
        for track in unmatched_tracked:
            if id(track) not in recovered:
                track.state = "lost"
        dead = {id(t) for t in unmatched_tentative if time_s - t.last_time_s > self.tentative_patience_s}
        dead |= {id(t) for t in self._tracks
                 if t.state == "lost" and time_s - t.last_time_s > self.lost_track_buffer_s}
        self._tracks = [t for t in self._tracks if id(t) not in dead]

        births = unborn[confidence[unborn] >= self.new_track_confidence]
        self._birth(births, detections, time_s, frame_ts)
        for track, row in matches:
            if track.state == "tracked":
                ids[row] = track.track_id
        return ids

    def _advance(self, ts: datetime | None) -> float:
        if ts is None:
            self._time_s += 1.0 / self.frame_rate
        else:
            if self._origin_ts is None:
                self._origin_ts = ts
            self._time_s = max(self._time_s, (ts - self._origin_ts).total_seconds())
        return self._time_s

    def _synthetic_ts(self) -> datetime:
        origin = self._origin_ts or datetime(1970, 1, 1, tzinfo=UTC)
        return origin + timedelta(seconds=self._time_s)

    def _predict(self, time_s: float) -> None:
        if not self._tracks:
            return
        mean = np.stack([t.mean for t in self._tracks])
        covariance = np.stack([t.covariance for t in self._tracks])
        dt_s = np.array([time_s - t.predicted_s for t in self._tracks])
        lost = np.array([t.state == "lost" for t in self._tracks])
        mean[lost, 6:] = 0.0
        mean, covariance = self.kalman.predict(mean, covariance, dt_s)
        for track, m, c in zip(self._tracks, mean, covariance, strict=True):
            track.mean, track.covariance, track.predicted_s = m, c, time_s

    def _match(self, tracks: Sequence[Track], rows: np.ndarray, boxes: np.ndarray, minimum_iou: float,
               buffer_ratio: float) -> tuple[list[tuple[Track, int]], list[Track], np.ndarray]:
        if not tracks or rows.size == 0:
            return [], list(tracks), rows
        predicted = xywh_to_xyxy(np.stack([t.mean[:4] for t in tracks]))
        iou = iou_matrix(predicted, boxes[rows], buffer_ratio=buffer_ratio)
        track_index, row_index = linear_assignment(1.0 - iou, maximum_cost=1.0 - minimum_iou)
        pairs = [(tracks[i], int(rows[j])) for i, j in zip(track_index, row_index, strict=True)]
        matched_tracks = set(track_index.tolist())
        unmatched_rows = np.delete(rows, row_index)
        return pairs, [t for i, t in enumerate(tracks) if i not in matched_tracks], unmatched_rows

    def _recover(self, tracks: Sequence[Track], rows: np.ndarray,
                 boxes: np.ndarray) -> tuple[list[tuple[Track, int]], list[Track], np.ndarray]:
        if not tracks or rows.size == 0 or self.recovery_distance <= 0:
            return [], list(tracks), rows
        predicted = xywh_to_xyxy(np.stack([t.mean[:4] for t in tracks]))
        distance = centre_distance_matrix(predicted, boxes[rows])
        track_index, row_index = linear_assignment(distance, maximum_cost=self.recovery_distance)
        pairs = [(tracks[i], int(rows[j])) for i, j in zip(track_index, row_index, strict=True)]
        matched_tracks = set(track_index.tolist())
        return pairs, [t for i, t in enumerate(tracks) if i not in matched_tracks], np.delete(rows, row_index)

    def _apply(self, matches: list[tuple[Track, int]], detections: Detections, time_s: float,
               ts: datetime) -> None:
        if not matches:
            return
        tracks = [t for t, _ in matches]
        rows = np.array([r for _, r in matches])
        mean = np.stack([t.mean for t in tracks])
        covariance = np.stack([t.covariance for t in tracks])
        mean, covariance = self.kalman.update(mean, covariance, xyxy_to_xywh(detections.xyxy[rows]))
        for track, row, m, c in zip(tracks, rows, mean, covariance, strict=True):
            track.mean, track.covariance = m, c
            track.hits += 1
            track.last_ts, track.last_time_s = ts, time_s
            track.confidence = float(detections.confidence[row])
            track.peak_confidence = max(track.peak_confidence, track.confidence)
            track.vote(int(detections.class_id[row]), height_px=float(detections.xyxy[row, 3] - detections.xyxy[row, 1]),
                       time_s=time_s)
            if track.state == "lost" or track.hits >= self.minimum_consecutive_frames:
                track.state = "tracked"
        self._extend_trajectories(tracks, mean, ts)

    def _birth(self, rows: np.ndarray, detections: Detections, time_s: float, ts: datetime) -> None:
        if rows.size == 0:
            return
        mean, covariance = self.kalman.initiate(xyxy_to_xywh(detections.xyxy[rows]))
        born = []
        for row, m, c in zip(rows, mean, covariance, strict=True):
            track = Track(self.camera_id, self._next_id, mean=m, covariance=c, ts=ts,
                          class_id=int(detections.class_id[row]),
                          height_px=float(detections.xyxy[row, 3] - detections.xyxy[row, 1]),
                          confidence=float(detections.confidence[row]),
                          time_s=time_s, max_points=self._max_points)
            if self.minimum_consecutive_frames <= 1:
                track.state = "tracked"
            self._next_id += 1
            born.append(track)
        self._tracks += born
        self._extend_trajectories(born, mean, ts)

    def _extend_trajectories(self, tracks: Sequence[Track], mean: np.ndarray, ts: datetime) -> None:
        if self.ground_anchors is None:
            return
        class_id = np.array([track.class_id for track in tracks], np.int64)
        xyxy = xywh_to_xyxy(mean[:, :4])
        ground = self.ground_anchors.ground_points(xyxy, class_id)
        ground[self.ground_anchors.cut_by_edge(xyxy)] = np.nan
        for track, (x_m, y_m) in zip(tracks, ground, strict=True):
            if not (math.isfinite(x_m) and math.isfinite(y_m)):
                continue
            trajectory = track.ground_trajectory
            trajectory.append((ts, float(x_m), float(y_m)))
            while (ts - trajectory[0][0]).total_seconds() > self.trajectory_s:
                trajectory.popleft()


def id_switches(truth_ids: Sequence | np.ndarray, predicted_ids: Sequence | np.ndarray, *,
                time_s: Sequence[float] | np.ndarray | None = None, maximum_gap_s: float | None = None) -> int:
    """Counts identity switches (CLEAR-MOT IDSW) along time-ordered matches.

    Args:
        truth_ids: (k,) ground-truth object ids of matched boxes, in time order.
        predicted_ids: (k,) the tracker's ids for the same boxes; -1 (or None) where the box got no id,
            which is skipped rather than counted.
        time_s: (k,) times of the boxes in seconds; needed only with `maximum_gap_s`.
        maximum_gap_s: If given, a change of id after the object went unseen (no id) for longer than this
            is not counted: only the switches a tracker remembering objects that long could have avoided.

    Returns:
        How many times an object's predicted id differs from the one it last had.
    """
    if maximum_gap_s is not None and time_s is None:
        raise ValueError("maximum_gap_s needs time_s")
    times = np.zeros(len(truth_ids)) if time_s is None else np.asarray(time_s, np.float64)
    last: dict = {}
    switches = 0
    for truth, predicted, t in zip(truth_ids, predicted_ids, times, strict=True):
        if predicted is None or predicted == -1:
            continue
        previous = last.get(truth)
        if previous is not None and previous[0] != predicted:
            if maximum_gap_s is None or t - previous[1] <= maximum_gap_s:
                switches += 1
        last[truth] = (predicted, t)
    return switches
