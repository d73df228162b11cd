"""Render one camera's clip from a recording and encode it to H.264; returns its truth boxes.

Frames go straight from the renderer's YUV420 planes into libx264: no colour conversion per frame.
Runs in a worker process per camera so the cameras of a scenario render side by side.
"""

import math
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from casaflow.geometry import PinholeCamera
from casaflow.sim.render import CameraRenderer, RoadUser
from casaflow.sim.scene import StaticScene
from casaflow.sim.traffic import Recording

RENDER_RADIUS_M = 160.0


@dataclass(frozen=True)
class RenderJob:
    camera_id: str
    pinhole: PinholeCamera
    net_path: Path
    recording_path: Path
    video_path: Path
    seed: int
    lighting: float
    crf: int
    gop: int


@dataclass
class RenderResult:
    camera_id: str
    signal_regions: dict[str, tuple[int, int, int, int]]
    frames: int
    seconds: float
    truth: dict[str, np.ndarray]
    """Columns frame_index, object_id, x1, y1, x2, y2, visible, speed_kmh."""


def render_camera(job: RenderJob) -> RenderResult:
    """Render and encode every frame of the recording as seen by one camera."""
    started = time.perf_counter()
    recording = Recording.load(job.recording_path)
    scene = StaticScene.from_sumo_net(job.net_path, seed=job.seed)
    renderer = CameraRenderer(scene, job.pinhole, seed=job.seed, lighting=job.lighting)
    cam = job.pinhole
    forward = np.array([math.sin(math.radians(cam.yaw_deg)), math.cos(math.radians(cam.yaw_deg))])
    heads = [(k, head) for k, head in enumerate(recording.signal_ids) if head in renderer.signal_regions]
    truth: dict[str, list[np.ndarray]] = {k: [] for k in ("frame_index", "object_id", "xyxy", "visible", "speed_kmh")}
    job.video_path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(job.video_path), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(recording.fps))
        stream.width, stream.height, stream.pix_fmt = cam.width_px, cam.height_px, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(job.crf), "preset": "veryfast", "g": str(job.gop), "bf": "0"}
        for frame_index in range(recording.n_frames):
            lo, hi = recording.frame_offsets[frame_index], recording.frame_offsets[frame_index + 1]
            dx = recording.x_m[lo:hi] - cam.x_m
            dy = recording.y_m[lo:hi] - cam.y_m
            ahead = dx * forward[0] + dy * forward[1]
            rows = lo + np.flatnonzero((ahead > 0.5) & (np.hypot(dx, dy) < RENDER_RADIUS_M))
            users = [_road_user(recording, row) for row in rows]
            states = {head: chr(recording.signal_states[frame_index, k]) for k, head in heads}
            rendered = renderer.render(users, states, frame_index=frame_index)
            frame = av.VideoFrame.from_ndarray(rendered.yuv, format="yuv420p")
            frame.pts = frame_index
            container.mux(stream.encode(frame))
            if len(rendered.object_id):
                speed_of = {recording.object_ids[recording.obj[row]]: recording.speed_mps[row] for row in rows}
                truth["frame_index"].append(np.full(len(rendered.object_id), frame_index, np.int64))
                truth["object_id"].append(np.asarray(rendered.object_id))
                truth["xyxy"].append(rendered.xyxy)
                truth["visible"].append(rendered.visible)
                truth["speed_kmh"].append(
                    np.array([speed_of[o] * 3.6 for o in rendered.object_id], np.float32)
                )
        container.mux(stream.encode(None))
    columns = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in truth.items()}
    xyxy = columns.pop("xyxy").reshape(-1, 4)
    for k, name in enumerate(("x1", "y1", "x2", "y2")):
        columns[name] = xyxy[:, k].astype(np.float32)
    return RenderResult(
        camera_id=job.camera_id,
        signal_regions=dict(renderer.signal_regions),
        frames=recording.n_frames,
        seconds=time.perf_counter() - started,
        truth=columns,
    )


def _road_user(recording: Recording, row: int) -> RoadUser:
    obj = recording.obj[row]
    length_m, width_m, height_m = recording.object_dims_m[obj]
    return RoadUser(
        object_id=recording.object_ids[obj],
        cls=recording.object_cls[obj],
        x_m=float(recording.x_m[row]),
        y_m=float(recording.y_m[row]),
        heading_deg=float(recording.heading_deg[row]),
        length_m=float(length_m),
        width_m=float(width_m),
        height_m=float(height_m),
        colour_rgb=tuple(int(c) for c in recording.object_colour[obj]),
    )
