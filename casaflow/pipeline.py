"""One camera's analysis after detection: tracking, then measurement. Plain Python, no Ray.

The CameraGroup actor runs one `CameraPipeline` per camera; `replay_camera` runs the same code over a
recorded clip without Ray, so a replay and the live pipeline give the same measurements.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from casaflow.anchors import GroundAnchors
from casaflow.detections import Detections
from casaflow.incidents import Incident, IncidentDetector, SignalFeed
from casaflow.inventory import Camera
from casaflow.measurement import SegmentMeter, SegmentWindow
from casaflow.rules import IncidentRules
from casaflow.source import Frame
from casaflow.tracking import ByteTracker

DetectBatch = Callable[[np.ndarray], list[Detections]]
"""A detector: a (B, H*3//2, W) uint8 stack of YUV420 frames -> B per-frame Detections."""


@dataclass(frozen=True)
class FrameResult:
    """What one analysed frame produced: its tracked objects, the windows that closed before it, and the
    incidents raised or ended at it (ended ones carry `end_ts`)."""

    camera_id: str
    frame: Frame
    tracked: Detections
    windows: list[SegmentWindow]
    incidents: list[Incident] = field(default_factory=list)


class CameraPipeline:
    """Tracker, segment meter and incident detector of one camera.

    Args:
        camera: The camera's inventory entry.
        window_s: Measurement window, seconds.
        incident_rules: The city's incident thresholds (None: the defaults); the camera's own
            `incident_rules` overrides are applied on top.
        signal_feed: Optional external signal states (wins over the image).
        detect_incidents: False skips the incident rules (measurement only).
    """

    def __init__(self, camera: Camera, *, window_s: float = 60.0, incident_rules: IncidentRules | None = None,
                 signal_feed: SignalFeed | None = None, detect_incidents: bool = True):
        self.camera = camera
        self.anchors = GroundAnchors.for_camera(camera)
        self.tracker = ByteTracker(camera.id, frame_rate=camera.analysis_fps, ground_anchors=self.anchors)
        self.meter = SegmentMeter(camera, window_s=window_s, anchors=self.anchors)
        rules = (incident_rules or IncidentRules()).with_overrides(camera.incident_rules).model_copy(update={"window_s": window_s})
        self.incidents = (
            IncidentDetector(camera, rules=rules, signal_feed=signal_feed) if detect_incidents else None
        )
        self._last: FrameResult | None = None

    def process(self, frame: Frame, detections: Detections) -> FrameResult:
        self.anchors.image_size_px = (frame.yuv.shape[1], frame.yuv.shape[0] * 2 // 3)
        tracked = self.tracker.update(detections, frame.ts)
        windows = self.meter.update(frame.ts, tracked)
        incidents = (
            self.incidents.update(
                frame.ts, tracked, self.tracker.confirmed_tracks, frame_yuv=frame.yuv, windows=windows,
                open_windows=self.meter.open_windows(),
            )
            if self.incidents is not None
            else []
        )
        self._last = FrameResult(self.camera.id, frame, tracked, windows, incidents)
        return self._last

    def finish(self) -> FrameResult | None:
        """Closes the open window (end of a clip or a clean shutdown) and judges it as the last frame would
        have had the clip gone on (a jam that began in it is raised, one that eased off ends): the last
        frame's result with the closing's windows and incidents; None before any frame."""
        if self._last is None:
            return None
        windows = self.meter.flush()
        incidents = self.incidents.close(self._last.frame.ts, windows) if self.incidents is not None else []
        return replace(self._last, windows=windows, incidents=incidents)


def replay_camera(
    camera: Camera, frames: Iterable[Frame], detect: DetectBatch, *, window_s: float = 60.0, batch_size: int = 16
) -> list[SegmentWindow]:
    """Run a camera's frames through detection, tracking and measurement; returns every window."""
    pipeline = CameraPipeline(camera, window_s=window_s)
    windows: list[SegmentWindow] = []
    pending: list[Frame] = []
    for frame in frames:
        pending.append(frame)
        if len(pending) == batch_size:
            windows += _drain(pipeline, pending, detect)
    windows += _drain(pipeline, pending, detect)
    closing = pipeline.finish()
    return windows + (closing.windows if closing is not None else [])


def _drain(pipeline: CameraPipeline, pending: list[Frame], detect: DetectBatch) -> list[SegmentWindow]:
    if not pending:
        return []
    windows = []
    for frame, found in zip(pending, detect(np.stack([f.yuv for f in pending]))):
        windows += pipeline.process(frame, found).windows
    pending.clear()
    return windows
