"""Run the detector over a recorded clip: the `casaflow detect` contract as a table."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from casaflow.detections import CLASS_NAMES, Detections
from casaflow.detector.dataset import DatasetError
from casaflow.detector.runtime import DetectorRuntime
from casaflow.source import Frame, PyAVSource, RetryPolicy

DETECTIONS_SCHEMA = pa.schema(
    [
        ("frame_index", pa.int64()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("cls", pa.string()),
        ("confidence", pa.float32()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
    ]
)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def inventory_start_time(video_path: str | Path) -> datetime | None:
    """`start_time` of a `cameras.yaml` whose camera url is this clip (searched in the clip's parent folders)."""
    video = Path(video_path).resolve()
    for folder in list(video.parents)[:3]:
        inventory = folder / "cameras.yaml"
        if not inventory.is_file():
            continue
        try:
            data = yaml.safe_load(inventory.read_text()) or {}
            urls = {(folder / str(camera.get("url", ""))).resolve() for camera in data.get("cameras", [])}
        except (OSError, yaml.YAMLError, AttributeError, TypeError):
            continue
        start = data.get("start_time")
        if video in urls and start is not None:
            start = start if isinstance(start, datetime) else datetime.fromisoformat(str(start).replace("Z", "+00:00"))
            return start if start.tzinfo else start.replace(tzinfo=timezone.utc)
    return None


def detect_clip(
    runtime: DetectorRuntime,
    video_path: str | Path,
    *,
    start_time: datetime = EPOCH,
    analysis_fps: float | None = None,
    batch_size: int = 16,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 5.0,
) -> tuple[pa.Table, int]:
    """Detects objects in every frame (or `analysis_fps` frames per second) of a clip.

    Args:
        runtime: the detector.
        video_path: anything PyAV opens.
        start_time: UTC time of pts 0; `ts = start_time + pts`.
        analysis_fps: keep frames at this rate by timestamp; None keeps every frame.
        batch_size: frames per detector call.
        progress: called with a status line every `progress_every_s` seconds.

    Returns:
        (table with `DETECTIONS_SCHEMA`, frames processed).
    """
    columns: dict[str, list[np.ndarray]] = {name: [] for name in DETECTIONS_SCHEMA.names}
    pending: list[Frame] = []
    processed = 0
    started = last_report = time.perf_counter()

    def flush() -> None:
        detections = runtime.detect(np.stack([frame.yuv for frame in pending]))
        for frame, found in zip(pending, detections):
            _append(columns, found, frame_index=frame.frame_index, ts_ms=int(round(frame.ts.timestamp() * 1000)))
        pending.clear()

    source = PyAVSource(
        "clip", str(video_path), analysis_fps=analysis_fps, start_time=start_time, live=False,
        retry=RetryPolicy(initial_s=0.0, max_s=0.0, max_attempts=1),
    )
    for frame in source:
        if pending and pending[0].yuv.shape != frame.yuv.shape:
            flush()
        pending.append(frame)
        processed += 1
        if len(pending) >= batch_size:
            flush()
        if progress and time.perf_counter() - last_report >= progress_every_s:
            last_report = time.perf_counter()
            progress(f"{processed} frames ({processed / (last_report - started):.0f} frames/s)")
    if source.state.status == "failed":
        raise DatasetError(f"cannot decode {video_path}: {source.state.reason}")
    if pending:
        flush()
    arrays = {
        name: np.concatenate(values) if values else np.zeros(0, DETECTIONS_SCHEMA.field(name).type.to_pandas_dtype())
        for name, values in columns.items()
    }
    table = pa.table(
        {
            "frame_index": pa.array(arrays["frame_index"], pa.int64()),
            "ts": pa.array(arrays["ts"].astype("int64"), pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "cls": pa.array(arrays["cls"].astype(str), pa.string()),
            **{name: pa.array(arrays[name], pa.float32()) for name in ("confidence", "x1", "y1", "x2", "y2")},
        },
        schema=DETECTIONS_SCHEMA,
    )
    return table, processed


def write_detections(table: pa.Table, path: str | Path) -> Path:
    """Writes the table atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    pq.write_table(table, temporary)
    temporary.replace(path)
    return path


def _append(columns: dict[str, list[np.ndarray]], found: Detections, *, frame_index: int, ts_ms: int) -> None:
    n = len(found)
    columns["frame_index"].append(np.full(n, frame_index, np.int64))
    columns["ts"].append(np.full(n, ts_ms, np.int64))
    columns["cls"].append(np.asarray(CLASS_NAMES, dtype=object)[found.class_id])
    columns["confidence"].append(found.confidence)
    for k, name in enumerate(("x1", "y1", "x2", "y2")):
        columns[name].append(found.xyxy[:, k])
