"""Tracking + measurement of a simulated clip, with the truth boxes as a perfect detector, agree with
SUMO's own detectors: what remains is the pipeline's error, not the detector's."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from casaflow.detections import CLASS_IDS, Detections
from casaflow.inventory import load_inventory
from casaflow.pipeline import replay_camera
from casaflow.source import PyAVSource


def truth_detector(boxes: pd.DataFrame, frame_indices: list[int]):
    by_frame = {index: group for index, group in boxes.groupby("frame_index")}
    position = iter(frame_indices)

    def detect(stack: np.ndarray) -> list[Detections]:
        found = []
        for _ in range(len(stack)):
            rows = by_frame.get(next(position))
            if rows is None:
                found.append(Detections.empty())
                continue
            found.append(
                Detections(
                    xyxy=rows[["x1", "y1", "x2", "y2"]].to_numpy(np.float32),
                    confidence=np.full(len(rows), 0.9),
                    class_id=rows.cls.map(CLASS_IDS).to_numpy(),
                )
            )
        return found

    return detect


def test_replay_with_perfect_detections_matches_sumo(tiny_city):
    inventory = load_inventory(tiny_city / "cameras.yaml")
    truth_boxes = pq.read_table(tiny_city / "truth" / "frames.parquet").to_pandas()
    truth_windows = pq.read_table(tiny_city / "truth" / "segments.parquet").to_pandas()
    measured = []
    for camera in inventory.cameras:
        source = PyAVSource(camera.id, str(tiny_city / camera.url), analysis_fps=camera.analysis_fps,
                            start_time=inventory.start_time, hwaccel="none")
        frames = list(source)
        assert source.state.status == "ended"
        boxes = truth_boxes[(truth_boxes.camera_id == camera.id) & (truth_boxes.visible >= 0.3)]
        detect = truth_detector(boxes, [f.frame_index for f in frames])
        measured += [w.as_row() for w in replay_camera(camera, frames, detect, window_s=30)]
    both = truth_windows.merge(pd.DataFrame(measured), on=["segment_id", "window_end"], suffixes=("_truth", ""))
    assert len(both) == len(truth_windows)
    total = both.vehicle_count_truth.sum()
    assert total > 0
    assert abs(both.vehicle_count.sum() - total) <= max(2, 0.1 * total)
    moving = both.dropna(subset=["mean_speed_kmh_truth", "mean_speed_kmh"])
    assert (moving.mean_speed_kmh - moving.mean_speed_kmh_truth).abs().mean() < 4.0
