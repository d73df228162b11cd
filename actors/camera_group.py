"""The CameraGroup actor: owns N cameras, sends ONE stacked detector request per tick, runs the core.

Each camera has a reader thread (PyAV decodes without holding the GIL) feeding a bounded queue. Live
cameras keep only the newest frames (the older are dropped and counted, so latency stays bounded);
a replay blocks its reader instead, so that no frame of a clip is lost. Every tick the actor takes
the waiting frames of every camera, stacks them per frame size and sends one request per size to the
detector deployment, with at most `max_in_flight` requests outstanding. Results feed each camera's
`CameraPipeline` in order; windows, camera status and incidents go to the aggregator about once a
second, and at once when an incident is raised or ended (alert latency). Each incident's evidence
(snapshot at the raise, clip from the camera's packet ring once the stream is `after_s` past the
detection) follows as soon as it is complete.
"""

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import ray
from ray.util import metrics

from casaflow.evidence import Evidence, EvidenceRecorder
from casaflow.incidents import Incident
from casaflow.inventory import Camera
from casaflow.measurement import SegmentWindow
from casaflow.pipeline import CameraPipeline, FrameResult
from casaflow.rules import IncidentRules
from casaflow.source import Frame, PyAVSource


@dataclass
class _Camera:
    camera: Camera
    source: PyAVSource
    pipeline: CameraPipeline
    evidence: EvidenceRecorder
    queue: deque = field(default_factory=deque)
    done: bool = False
    dropped: int = 0
    analysed: int = 0
    lag_s: float | None = None
    fps_since: float = field(default_factory=time.monotonic)
    fps_frames: int = 0
    fps: float = 0.0


@ray.remote
class CameraGroup:
    """A group of cameras analysed together; `run()` returns when every clip ended or `stop()` is called."""

    def __init__(
        self,
        group_id: str,
        cameras: list[Camera],
        *,
        base_dir: str,
        start_time: datetime | None,
        detector_app: str,
        aggregator,
        realtime: bool,
        window_s: float = 60.0,
        max_in_flight: int = 2,
        max_queue: int = 8,
        frames_per_camera: int = 4,
        max_stack_frames: int = 16,
        report_every_s: float = 1.0,
        incident_rules: IncidentRules | None = None,
    ):
        from ray import serve

        self.group_id = group_id
        self.realtime = realtime
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.frames_per_camera = 1 if realtime else frames_per_camera
        self.max_stack_frames = max_stack_frames
        self.report_every_s = report_every_s
        self.detector = serve.get_app_handle(detector_app)
        self.aggregator = aggregator
        self.lock = threading.Condition()
        self.stopping = False
        self.cameras = []
        for camera in cameras:
            url = camera.url if "://" in camera.url or Path(camera.url).is_absolute() else str(Path(base_dir) / camera.url)
            source = PyAVSource(camera.id, url, analysis_fps=camera.analysis_fps, start_time=start_time,
                                realtime=realtime, threads=1)
            self.cameras.append(_Camera(camera, source, CameraPipeline(camera, window_s=window_s, incident_rules=incident_rules),
                                        EvidenceRecorder(camera.id)))
        self.outbox: list[SegmentWindow] = []
        self.incident_outbox: list[Incident] = []
        self.evidence_outbox: list[Evidence] = []
        self.detector_latency_s = 0.0
        tags = ("camera_id",)
        self.m_frames = metrics.Counter("casaflow_frames_analysed", "frames analysed", tag_keys=tags)
        self.m_dropped = metrics.Counter("casaflow_frames_dropped", "frames dropped under overload", tag_keys=tags)
        self.m_lag = metrics.Gauge("casaflow_camera_lag_seconds", "wall clock minus frame time", tag_keys=tags)
        self.m_latency = metrics.Histogram(
            "casaflow_detector_latency_seconds", "detector request latency",
            boundaries=[0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5], tag_keys=("group_id",),
        )
        for state in self.cameras:
            threading.Thread(target=self._read, args=(state,), daemon=True, name=f"read-{state.camera.id}").start()

    def _read(self, state: _Camera) -> None:
        for frame in state.source:
            with self.lock:
                if self.realtime:
                    if len(state.queue) >= self.max_queue:
                        state.queue.popleft()
                        state.dropped += 1
                        self.m_dropped.inc(tags={"camera_id": state.camera.id})
                else:
                    self.lock.wait_for(lambda: len(state.queue) < self.max_queue or self.stopping)
                if self.stopping:
                    break
                state.queue.append(frame)
        with self.lock:
            state.done = True

    def _take(self) -> list[tuple[_Camera, list[Frame]]]:
        taken = []
        with self.lock:
            for state in self.cameras:
                if not state.queue:
                    continue
                if self.realtime:
                    while len(state.queue) > 1:
                        state.queue.popleft()
                        state.dropped += 1
                        self.m_dropped.inc(tags={"camera_id": state.camera.id})
                frames = [state.queue.popleft() for _ in range(min(self.frames_per_camera, len(state.queue)))]
                taken.append((state, frames))
            self.lock.notify_all()
        return taken

    def _finished(self) -> bool:
        with self.lock:
            return all(state.done and not state.queue for state in self.cameras)

    async def run(self) -> dict:
        pending: deque = deque()
        last_report = time.monotonic()
        while not self.stopping:
            taken = self._take()
            if taken:
                pending.append((self._send(taken), taken, time.monotonic()))
            if pending and (len(pending) >= self.max_in_flight or not taken):
                await self._complete(*pending.popleft())
            elif not taken:
                if self._finished():
                    break
                await asyncio.sleep(0.01)
            if self.incident_outbox or time.monotonic() - last_report >= self.report_every_s:
                await self._report()
                last_report = time.monotonic()
        while pending:
            await self._complete(*pending.popleft())
        for state in self.cameras:
            closing = state.pipeline.finish()
            if closing is not None:
                self._collect(state, closing)
            self.evidence_outbox += state.evidence.flush(state.source.ring)
        await self._report()
        return self.summary()

    def _send(self, taken: list[tuple[_Camera, list[Frame]]]) -> list:
        """One request per frame size: a stack of every waiting frame of that size, in stacks of at most
        `max_stack_frames` (the deployment's largest batch; a replay takes several frames per camera)."""
        by_shape: dict[tuple[int, int], list[np.ndarray]] = {}
        for _, frames in taken:
            for frame in frames:
                by_shape.setdefault(frame.yuv.shape, []).append(frame.yuv)
        step = self.max_stack_frames
        return [(shape, [self.detector.remote(np.stack(stack[k : k + step])) for k in range(0, len(stack), step)])
                for shape, stack in by_shape.items()]

    def _collect(self, state: _Camera, result: FrameResult) -> None:
        """Queues a frame's windows and incidents for the aggregator, and the evidence of those raised."""
        self.outbox += result.windows
        self.incident_outbox += result.incidents
        for incident in result.incidents:
            if incident.end_ts is None:
                state.evidence.add(incident, result.frame, result.tracked)

    async def _complete(self, requests: list, taken: list[tuple[_Camera, list[Frame]]], sent: float) -> None:
        results = {shape: iter([result for response in responses for result in await response]) for shape, responses in requests}
        latency_s = time.monotonic() - sent
        self.m_latency.observe(latency_s, tags={"group_id": self.group_id})
        self.detector_latency_s = 0.8 * self.detector_latency_s + 0.2 * latency_s if self.detector_latency_s else latency_s
        now = datetime.now(timezone.utc)
        for state, frames in taken:
            for frame in frames:
                self._collect(state, state.pipeline.process(frame, next(results[frame.yuv.shape])))
                state.analysed += 1
                state.fps_frames += 1
                self.m_frames.inc(tags={"camera_id": state.camera.id})
            self.evidence_outbox += state.evidence.poll(frames[-1].ts, state.source.ring)
            if self.realtime:
                state.lag_s = (now - frames[-1].ts).total_seconds()
                self.m_lag.set(state.lag_s, tags={"camera_id": state.camera.id})

    async def _report(self) -> None:
        windows, self.outbox = self.outbox, []
        incidents, self.incident_outbox = self.incident_outbox, []
        evidence, self.evidence_outbox = self.evidence_outbox, []
        await self.aggregator.submit.remote(windows, self.status(), incidents)
        for item in evidence:
            await self.aggregator.attach_evidence.remote(item)

    def status(self) -> list[dict]:
        rows = []
        now = time.monotonic()
        for state in self.cameras:
            elapsed = now - state.fps_since
            if elapsed >= 1.0:
                state.fps, state.fps_frames, state.fps_since = state.fps_frames / elapsed, 0, now
            source = state.source.state
            rows.append(
                {
                    "camera_id": state.camera.id,
                    "group_id": self.group_id,
                    "status": source.status,
                    "reason": source.reason,
                    "fps": round(state.fps, 2),
                    "lag_s": None if state.lag_s is None else round(state.lag_s, 3),
                    "frames_in": source.frames_decoded,
                    "frames_analysed": state.analysed,
                    "frames_dropped": state.dropped,
                    "detector_latency_ms": round(self.detector_latency_s * 1000, 1),
                }
            )
        return rows

    def summary(self) -> dict:
        return {
            "group_id": self.group_id,
            "frames_analysed": sum(s.analysed for s in self.cameras),
            "frames_dropped": sum(s.dropped for s in self.cameras),
            "cameras": self.status(),
        }

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.lock.notify_all()
        for state in self.cameras:
            state.source.close()
