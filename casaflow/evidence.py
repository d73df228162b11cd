"""Evidence for incidents: a snapshot with the involved tracks drawn, and an MP4 clip from the packet ring.

The camera actor keeps one `EvidenceRecorder`: it renders the snapshot the moment an incident is raised
(the frame is at hand then) and cuts the clip once the stream has run `after_s` past the detection, from
the ring's encoded packets (remuxed, no re-encoding). The resulting `Evidence` carries bytes, so it can
travel to the aggregator on another node, which keeps it in an `EvidenceStore` under a retention period.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import av
import numpy as np
import torch
from torchvision.io import encode_jpeg
from torchvision.utils import draw_bounding_boxes

from casaflow.detections import CLASS_NAMES, Detections
from casaflow.detector.preprocess import yuv420_to_rgb
from casaflow.incidents import Incident
from casaflow.source import Frame, PacketRing, write_clip

TRACK_COLOR = "lime"
HIGHLIGHT_COLOR = "red"
TRACK_WIDTH_PX = 1
HIGHLIGHT_WIDTH_PX = 3
JPEG_QUALITY = 85

_TORCHCODEC_NOTICE = "The image decoding and encoding capabilities of TorchVision are deprecated"
"""torchvision 0.29 announces the move of its JPEG codec to torchcodec; the pinned version's codec is what we use."""
_LIMITED_Y_SCALE = 219.0 / 255.0
_LIMITED_C_SCALE = 224.0 / 255.0


@dataclass(frozen=True)
class Evidence:
    """What an incident leaves behind, as bytes so it can cross nodes.

    Attributes:
        incident_id: The incident's id.
        camera_id: The camera that saw it.
        snapshot_jpeg: The detection frame with its tracks drawn; None if it could not be rendered.
        clip_mp4: The remuxed clip; None if the ring could not provide one (see `reason`).
        clip_start_ts: UTC time of the clip's first (key) frame; None without a clip.
        clip_end_ts: UTC time of the clip's last packet; None without a clip.
        reason: Why the snapshot or the clip is missing; None when both are there.
    """

    incident_id: str
    camera_id: str
    snapshot_jpeg: bytes | None
    clip_mp4: bytes | None
    clip_start_ts: datetime | None
    clip_end_ts: datetime | None
    reason: str | None


def render_snapshot(frame: Frame, tracked: Detections, *, highlight: set[int] | frozenset = frozenset()) -> bytes:
    """Returns the frame as JPEG bytes with every tracked box drawn thin and the `highlight` track ids thick
    in red, labelled with class name and track id."""
    rgb = _frame_rgb(frame)
    boxes = _clipped_boxes(tracked.xyxy, width=frame.width, height=frame.height)
    drawable = np.isfinite(tracked.xyxy).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    ids = tracked.tracker_id
    marked = (drawable & np.isin(ids, list(highlight))) if ids is not None else np.zeros(len(tracked), bool)
    plain = drawable & ~marked
    if plain.any():
        rgb = draw_bounding_boxes(rgb, torch.from_numpy(boxes[plain]), colors=TRACK_COLOR, width=TRACK_WIDTH_PX)
    if marked.any():
        labels = [f"{CLASS_NAMES[c]} #{t}" for c, t in zip(tracked.class_id[marked], ids[marked])]
        rgb = draw_bounding_boxes(rgb, torch.from_numpy(boxes[marked]), labels=labels, colors=HIGHLIGHT_COLOR,
                                  width=HIGHLIGHT_WIDTH_PX, label_colors="white", fill_labels=True,
                                  label_background_colors=HIGHLIGHT_COLOR)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _TORCHCODEC_NOTICE, DeprecationWarning)
        return encode_jpeg(rgb, quality=JPEG_QUALITY).numpy().tobytes()


def _frame_rgb(frame: Frame) -> torch.Tensor:
    """(3, H, W) uint8 RGB of the frame; full-range YUV is first mapped to video range, which the shared
    conversion expects."""
    yuv = frame.yuv
    if frame.full_range:
        yuv = yuv.astype(np.float32)
        yuv[: frame.height] *= _LIMITED_Y_SCALE
        yuv[: frame.height] += 16.0
        yuv[frame.height:] = (yuv[frame.height:] - 128.0) * _LIMITED_C_SCALE + 128.0
        yuv = np.rint(yuv).astype(np.uint8)
    rgb = yuv420_to_rgb(torch.from_numpy(np.require(yuv, requirements=["C", "W"]))[None])[0]
    return rgb.round_().to(torch.uint8)


def _clipped_boxes(xyxy: np.ndarray, *, width: int, height: int) -> np.ndarray:
    """Boxes ordered (x1 <= x2, y1 <= y2) and clipped to the image, as draw_bounding_boxes requires."""
    boxes = np.concatenate([np.minimum(xyxy[:, :2], xyxy[:, 2:]), np.maximum(xyxy[:, :2], xyxy[:, 2:])], axis=1)
    return np.clip(boxes, 0.0, [width - 1, height - 1, width - 1, height - 1]).astype(np.float32)


def track_ids_of(incident: Incident) -> frozenset[int]:
    """Track ids of the incident's `"{camera_id}/{track_id}"` object ids on its own camera."""
    ids = set()
    for object_id in incident.object_ids:
        camera_id, _, track = object_id.rpartition("/")
        if camera_id == incident.camera_id and track.isdecimal():
            ids.add(int(track))
    return frozenset(ids)


@dataclass
class _Pending:
    incident_id: str
    clip_from_ts: datetime
    clip_to_ts: datetime
    snapshot_jpeg: bytes | None
    snapshot_reason: str | None


class EvidenceRecorder:
    """One camera's evidence in the making: snapshots taken at detection, clips cut when due.

    Args:
        camera_id: The camera.
        before_s: Seconds of video before the incident's start to include.
        after_s: Seconds of video after its detection to include; the clip is due then.
        max_pending: Incidents waiting for their clip; beyond it the oldest are dropped (counted in
            `dropped`), so a storm of incidents cannot exhaust memory.
    """

    def __init__(self, camera_id: str, *, before_s: float = 10.0, after_s: float = 10.0,
                 max_pending: int = 256) -> None:
        if before_s < 0 or after_s < 0 or max_pending < 1:
            raise ValueError("need before_s >= 0, after_s >= 0 and max_pending >= 1")
        self.camera_id = camera_id
        self.before_s = before_s
        self.after_s = after_s
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: deque[_Pending] = deque()

    @property
    def pending(self) -> int:
        """Incidents waiting for their clip."""
        return len(self._pending)

    def add(self, incident: Incident, frame: Frame, tracked: Detections) -> None:
        """Renders the incident's snapshot from `frame` and schedules its clip; an id already pending is
        ignored (the first detection frame is the evidence)."""
        if any(p.incident_id == incident.incident_id for p in self._pending):
            return
        try:
            snapshot, reason = render_snapshot(frame, tracked, highlight=track_ids_of(incident)), None
        except (ValueError, RuntimeError) as error:
            snapshot, reason = None, f"snapshot: {type(error).__name__}: {error}"
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(_Pending(
            incident_id=incident.incident_id,
            clip_from_ts=incident.start_ts - timedelta(seconds=self.before_s),
            clip_to_ts=incident.detected_ts + timedelta(seconds=self.after_s),
            snapshot_jpeg=snapshot,
            snapshot_reason=reason,
        ))

    def poll(self, now_ts: datetime, ring: PacketRing) -> list[Evidence]:
        """Returns the evidence whose clip is due (`now_ts`, stream time, past detection + `after_s`)."""
        due = [p for p in self._pending if now_ts >= p.clip_to_ts]
        if due:
            self._pending = deque(p for p in self._pending if now_ts < p.clip_to_ts)
        return [self._finish(p, ring) for p in due]

    def flush(self, ring: PacketRing) -> list[Evidence]:
        """Returns every pending evidence, clips cut at what the ring holds (end of stream, shutdown)."""
        pending, self._pending = self._pending, deque()
        return [self._finish(p, ring) for p in pending]

    def _finish(self, pending: _Pending, ring: PacketRing) -> Evidence:
        clip_mp4 = clip_start_ts = clip_end_ts = clip_reason = None
        try:
            with tempfile.TemporaryDirectory(prefix="casaflow-clip-") as workdir:
                clip = write_clip(ring, Path(workdir) / "clip.mp4", start_ts=pending.clip_from_ts,
                                  end_ts=pending.clip_to_ts)
                clip_mp4 = clip.path.read_bytes()
                clip_start_ts, clip_end_ts = clip.start_ts, clip.end_ts
        except (ValueError, OSError, av.FFmpegError) as error:
            clip_reason = f"clip: {error}"
        reasons = [r for r in (pending.snapshot_reason, clip_reason) if r]
        return Evidence(
            incident_id=pending.incident_id,
            camera_id=self.camera_id,
            snapshot_jpeg=pending.snapshot_jpeg,
            clip_mp4=clip_mp4,
            clip_start_ts=clip_start_ts,
            clip_end_ts=clip_end_ts,
            reason="; ".join(reasons) or None,
        )


_PRUNED_SUFFIXES = (".mp4", ".jpg", ".part")
_MAX_ID_BYTES = 200


class EvidenceStore:
    """The aggregator's evidence files: `root/<incident_id>.mp4` and `root/<incident_id>.jpg`.

    Args:
        root: Directory of the files (created if missing).
        retention_s: Files older than this (by modification time) go at `prune`; None keeps everything.
    """

    def __init__(self, root: Path, *, retention_s: float | None) -> None:
        if retention_s is not None and retention_s <= 0:
            raise ValueError(f"retention_s must be positive or None, got {retention_s}")
        self.root = Path(root)
        self.retention_s = retention_s
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, evidence: Evidence) -> tuple[Path | None, Path | None]:
        """Writes the clip and the snapshot that `evidence` carries, each atomically; returns
        (clip_path, snapshot_path), None for what it lacks.

        Raises:
            ValueError: if the incident id is unfit for a file name.
        """
        clip_path, snapshot_path = self._names(evidence.incident_id)
        if evidence.clip_mp4 is not None:
            self._write(clip_path, evidence.clip_mp4)
        if evidence.snapshot_jpeg is not None:
            self._write(snapshot_path, evidence.snapshot_jpeg)
        return (clip_path if evidence.clip_mp4 is not None else None,
                snapshot_path if evidence.snapshot_jpeg is not None else None)

    def paths(self, incident_id: str) -> tuple[Path | None, Path | None]:
        """(clip_path, snapshot_path) of the incident's existing files, None for those missing.

        Raises:
            ValueError: if the incident id is unfit for a file name.
        """
        clip_path, snapshot_path = self._names(incident_id)
        return (clip_path if clip_path.is_file() else None, snapshot_path if snapshot_path.is_file() else None)

    def prune(self, now: datetime) -> int:
        """Deletes the evidence files (and stale partial writes) older than `retention_s`; returns how many."""
        if self.retention_s is None:
            return 0
        cutoff_s = now.timestamp() - self.retention_s
        removed = 0
        for entry in os.scandir(self.root):
            if not entry.name.endswith(_PRUNED_SUFFIXES) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff_s:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def _names(self, incident_id: str) -> tuple[Path, Path]:
        if (not incident_id or incident_id.startswith(".") or ".." in incident_id
                or any(c in incident_id for c in ("/", "\\", "\0"))
                or len(incident_id.encode()) > _MAX_ID_BYTES):
            raise ValueError(f"incident id {incident_id!r} is unfit for a file name")
        return self.root / f"{incident_id}.mp4", self.root / f"{incident_id}.jpg"

    def _write(self, path: Path, data: bytes) -> None:
        fd, partial = tempfile.mkstemp(dir=self.root, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
