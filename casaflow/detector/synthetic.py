"""A tiny stand-in for a `casaflow simulate` folder: coloured boxes moving over a noisy background.

Same files and columns as the simulator (`cameras.yaml`, `video/<id>.mp4`, `truth/frames.parquet`), so
tests and smoke runs of training, evaluation and `casaflow detect` need neither SUMO nor the renderer.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from casaflow.detections import CLASS_NAMES
from casaflow.detector.preprocess import rgb_to_yuv420_numpy

_CLASS_STYLE = {
    "car": ((200, 40, 40), (26, 14)),
    "bus": ((230, 190, 30), (52, 22)),
    "truck": ((60, 90, 200), (40, 22)),
    "motorcycle": ((40, 160, 60), (12, 12)),
    "bicycle": ((160, 60, 180), (10, 12)),
    "pedestrian": ((240, 240, 240), (6, 16)),
}
"""class name -> (RGB colour, (width, height) in pixels at scale 1)."""

START_TIME = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)


def write_synthetic_dataset(
    out_dir: str | Path,
    *,
    seed: int = 0,
    num_frames: int = 20,
    size_wh: tuple[int, int] = (192, 112),
    num_cameras: int = 1,
    objects_per_frame: int = 6,
    fps: int = 25,
) -> Path:
    """Writes a dataset folder; returns `out_dir`.

    Objects move in straight lines (some leave the picture, so `visible` < 1 occurs); every class appears.
    """
    out = Path(out_dir)
    (out / "video").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in ("camera_id", "frame_index", "ts", "object_id", "cls", "x1", "y1", "x2", "y2", "visible", "speed_kmh")}
    cameras = []
    for camera in range(num_cameras):
        camera_id = f"cam{camera + 1:02d}"
        cameras.append({"id": camera_id, "url": f"video/{camera_id}.mp4", "lon": -7.6, "lat": 33.59, "analysis_fps": 5.0})
        _write_clip(out / "video" / f"{camera_id}.mp4", camera_id, rows, rng=rng, num_frames=num_frames, size_wh=size_wh, objects=objects_per_frame, fps=fps)
    (out / "cameras.yaml").write_text(yaml.safe_dump({"city": "synthetic", "start_time": START_TIME.isoformat(), "cameras": cameras}, sort_keys=False))
    table = pa.table(
        {
            "camera_id": pa.array(rows["camera_id"], pa.string()),
            "frame_index": pa.array(rows["frame_index"], pa.int64()),
            "ts": pa.array(rows["ts"], pa.timestamp("ms", tz="UTC")),
            "object_id": pa.array(rows["object_id"], pa.string()),
            "cls": pa.array(rows["cls"], pa.string()),
            **{k: pa.array(rows[k], pa.float32()) for k in ("x1", "y1", "x2", "y2", "visible", "speed_kmh")},
        }
    )
    pq.write_table(table, out / "truth" / "frames.parquet")
    return out


def _write_clip(path: Path, camera_id: str, rows: dict[str, list], *, rng, num_frames, size_wh, objects, fps) -> None:
    width, height = size_wh
    background = np.clip(rng.normal(110, 12, (height, width, 3)) + np.linspace(-20, 20, height)[:, None, None], 0, 255)
    classes = [CLASS_NAMES[i % len(CLASS_NAMES)] for i in range(objects)]
    scale = rng.uniform(0.7, 1.3, objects)
    start = np.stack([rng.uniform(-10, width - 10, objects), rng.uniform(5, height - 30, objects)], 1)
    velocity = rng.uniform(-3, 3, (objects, 2)) * [1.0, 0.3]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast", "bf": "0"}
        for frame_index in range(num_frames):
            image = background.copy()
            for k, name in enumerate(classes):
                colour, (w, h) = _CLASS_STYLE[name]
                x1, y1 = start[k] + velocity[k] * frame_index
                x2, y2 = x1 + w * scale[k], y1 + h * scale[k]
                cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
                if cx2 - cx1 < 2 or cy2 - cy1 < 2:
                    continue
                r1, r2, c1, c2 = int(round(cy1)), int(round(cy2)), int(round(cx1)), int(round(cx2))
                image[r1:r2, c1:c2] = colour
                image[r1 : r1 + max((r2 - r1) // 3, 1), c1:c2] = np.minimum(np.asarray(colour) * 1.3, 255)
                rows["camera_id"].append(camera_id)
                rows["frame_index"].append(frame_index)
                rows["ts"].append(int(START_TIME.timestamp() * 1000 + round(frame_index * 1000 / fps)))
                rows["object_id"].append(f"{camera_id}-{k}")
                rows["cls"].append(name)
                for key, value in zip(("x1", "y1", "x2", "y2"), (c1, r1, c2, r2)):
                    rows[key].append(float(value))
                rows["visible"].append(float((cx2 - cx1) * (cy2 - cy1) / ((x2 - x1) * (y2 - y1))))
                rows["speed_kmh"].append(float(np.hypot(*velocity[k]) * fps * 0.1 * 3.6))
            noisy = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420_numpy(noisy), format="yuv420p")
            frame.pts = frame_index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
