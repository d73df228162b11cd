"""Replay simulated cities through the core (tracking, measurement, incidents) on cached detections, and score.

The detector runs once per clip (cached as `casaflow detect` Parquet under `--cache`); every later run only
decodes the analysis frames (signal heads are read from the image) and runs the plain-Python pipeline, so a
change to the tracker, the measurement or the incident rules is scored on several seeds in a minute or two
instead of a full `casaflow run`. Same code as the cluster: `CameraPipeline` per camera, the aggregator's
`IncidentBook` for cross-camera dedupe, the history written as `casaflow run` writes it, `casaflow score`'s
scorers.

    python bench/replay_cached.py --data data/sim/seed201 data/sim/seed202 --out runs/cached
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from casaflow.city import HistoryWriter
from casaflow.detections import CLASS_IDS, Detections
from casaflow.detector.runtime import DetectorOptions
from casaflow.incident_book import IncidentBook
from casaflow.inventory import load_inventory
from casaflow.pipeline import CameraPipeline
from casaflow.score import as_json, format_table, read_windows, score_segments
from casaflow.score_incidents import (
    format_incident_table, incidents_as_json, read_camera_hours, read_detected_incidents, read_truth_incidents,
    score_incidents,
)
from casaflow.source import PyAVSource, RetryPolicy


def cached_detections(video: Path, cache: Path, *, start_time, analysis_fps: float, weights: Path | None,
                      min_confidence: float) -> dict[int, Detections]:
    """Per analysed frame index, the detector's output at or above `min_confidence` (computed once at 0.05,
    at the weights' trained input as a GPU deployment runs them, then read from `cache`)."""
    if not cache.is_file():
        from casaflow.detector.clip import detect_clip, write_detections
        from casaflow.detector.runtime import load_detector

        runtime = load_detector(weights, min_confidence=0.05, cpu_max_input_px=None)
        table, frames = detect_clip(runtime, video, start_time=start_time, analysis_fps=analysis_fps)
        write_detections(table, cache)
        print(f"  detected {frames} frames of {video.name}", flush=True)
    rows = pq.read_table(cache).to_pandas()
    rows = rows[rows.confidence >= min_confidence]
    found = {}
    for frame_index, group in rows.groupby("frame_index", sort=False):
        found[int(frame_index)] = Detections(
            group[["x1", "y1", "x2", "y2"]].to_numpy(np.float32), group["confidence"].to_numpy(np.float32),
            group["cls"].map(CLASS_IDS).to_numpy(np.int64),
        )
    return found


def replay(data_dir: Path, out_dir: Path, cache_dir: Path, *, weights: Path | None, window_s: float, min_confidence: float) -> None:
    inventory = load_inventory(data_dir / "cameras.yaml")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("segments/*.parquet"), out_dir / "incidents.parquet", out_dir / "incidents.sqlite"]:
        stale.unlink(missing_ok=True)
    writer = HistoryWriter(out_dir)
    with IncidentBook(out_dir / "incidents.sqlite", segment_bearings_deg=inventory.segment_bearings_deg()) as book:
        for camera in inventory.cameras:
            video = (data_dir / camera.url).resolve()
            detections = cached_detections(video, cache_dir / data_dir.name / f"{camera.id}.parquet", start_time=inventory.start_time,
                                           analysis_fps=camera.analysis_fps, weights=weights, min_confidence=min_confidence)
            pipeline = CameraPipeline(camera, window_s=window_s, incident_rules=inventory.incident_rules)
            source = PyAVSource(camera.id, str(video), analysis_fps=camera.analysis_fps, start_time=inventory.start_time,
                                live=False, retry=RetryPolicy(initial_s=0.0, max_s=0.0, max_attempts=1))
            empty = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
            for frame in source:
                result = pipeline.process(frame, detections.get(frame.frame_index, empty))
                writer.add(result.windows)
                book.upsert(result.incidents)
            closing = pipeline.finish()
            if closing is not None:
                writer.add(closing.windows)
                book.upsert(closing.incidents)
        writer.flush()
        book.write_parquet(out_dir / "incidents.parquet")


def score(data_dir: Path, out_dir: Path) -> dict:
    truth_dir = data_dir / "truth"
    segments = score_segments(read_windows(truth_dir / "segments.parquet"), read_windows(out_dir / "segments"))
    camera_hours = read_camera_hours(truth_dir / "frames.parquet")
    incidents = score_incidents(read_truth_incidents(truth_dir / "incidents.parquet"),
                                read_detected_incidents(out_dir / "incidents.parquet"), camera_hours=camera_hours)
    print(format_table([s for s in segments if not s.scope.startswith("camera")]))
    print(format_incident_table(incidents))
    return {"segments": as_json(segments), **incidents_as_json(incidents, camera_hours)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="simulator folders")
    parser.add_argument("--out", type=Path, default=Path("runs/cached"), help="histories and scores go here")
    parser.add_argument("--cache", type=Path, default=Path("runs/detections"), help="detections cache")
    parser.add_argument("--weights", type=Path, default=None, help="detector weights (default: packaged)")
    parser.add_argument("--window-s", type=float, default=60.0)
    parser.add_argument("--min-confidence", type=float, default=DetectorOptions.model_fields["min_confidence"].default,
                        help="the deployment's threshold (default: its default)")
    args = parser.parse_args(argv)
    results = {}
    for data_dir in args.data:
        started = time.perf_counter()
        out_dir = args.out / data_dir.name
        replay(data_dir, out_dir, args.cache, weights=args.weights, window_s=args.window_s,
               min_confidence=args.min_confidence)
        print(f"== {data_dir} ({time.perf_counter() - started:.0f} s)")
        results[str(data_dir)] = score(data_dir, out_dir)
    (args.out / "scores.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
