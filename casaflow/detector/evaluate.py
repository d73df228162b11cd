"""COCO-style average precision per class, with the issue's filter for which truth objects count.

Truth objects at least `min_height_px` tall and at least `min_visible` visible count; the others are
ignore regions: a detection matching one (IoU above the threshold) is neither a true nor a false positive.
As in COCO's area ranges, an unmatched detection shorter than `min_height_px` is ignored too. AP is the
101-point interpolated area under the precision/recall curve; `ap` averages IoU 0.50:0.05:0.95.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from casaflow.detections import CLASS_NAMES, Detections
from casaflow.detector.dataset import FrameDataset, FrameTruth

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)
FOUND_CONFIDENCE = 0.3
"""The deployment's default `min_confidence`: what an operator's screen shows."""
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class ClassMetrics:
    """AP of one class; `ap50` and `ap` are NaN when the class has no counted instance."""

    class_name: str
    instances: int
    detections: int
    ap50: float
    ap: float


@dataclass(frozen=True)
class EvaluationReport:
    """AP per class, and where the counted objects went.

    Attributes:
        frames: frames scored.
        per_class: AP per class.
        found_as: (C, C + 1) counts: row = a counted truth object's class, column = the class of the most
            confident detection on it (IoU >= 0.5, confidence >= `FOUND_CONFIDENCE`), the last column
            for none. A user sees what a bicycle is taken for, and how many are not seen at all.
    """

    frames: int
    per_class: tuple[ClassMetrics, ...]
    found_as: tuple[tuple[int, ...], ...] = ()

    @property
    def map50(self) -> float:
        """Mean AP50 over classes with instances (NaN if none)."""
        values = [m.ap50 for m in self.per_class if m.instances]
        return float(np.mean(values)) if values else float("nan")

    @property
    def map(self) -> float:
        values = [m.ap for m in self.per_class if m.instances]
        return float(np.mean(values)) if values else float("nan")

    def to_dict(self) -> dict:
        return {
            "frames": self.frames, "map50": self.map50, "map": self.map, "per_class": [asdict(m) for m in self.per_class],
            "found_as": [list(row) for row in self.found_as],
        }

    def table(self) -> str:
        """A Markdown table: class, instances, AP50, AP@[.5:.95]."""
        lines = ["| class | instances | AP50 | AP@[.5:.95] |", "|---|---:|---:|---:|"]
        for m in self.per_class:
            lines.append(f"| {m.class_name} | {m.instances} | {m.ap50:.3f} | {m.ap:.3f} |")
        lines.append(f"| **mean** | {sum(m.instances for m in self.per_class)} | {self.map50:.3f} | {self.map:.3f} |")
        return "\n".join(lines)

    def found_as_table(self) -> str:
        """A Markdown table of `found_as` in percent of each row's counted objects."""
        names = [m.class_name for m in self.per_class]
        lines = [f"| counted \\ found as (confidence >= {FOUND_CONFIDENCE}) | " + " | ".join(names) + " | none |",
                 "|---|" + "---:|" * (len(names) + 1)]
        for name, row in zip(names, self.found_as):
            total = max(sum(row), 1)
            lines.append(f"| {name} ({sum(row)}) | " + " | ".join(f"{100 * n / total:.0f} %" for n in row) + " |")
        return "\n".join(lines)


def counted_mask(truth: FrameTruth, *, min_height_px: float = 12.0, min_visible: float = 0.5) -> np.ndarray:
    """(n,) bool: truth objects that count (the rest are ignore regions)."""
    height = truth.xyxy[:, 3] - truth.xyxy[:, 1]
    return (height >= min_height_px) & (truth.visible >= min_visible)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) IoU of xyxy boxes a (n, 4) and b (m, 4)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    return intersection / np.maximum(area_a[:, None] + area_b[None, :] - intersection, 1e-9)


def evaluate_detections(
    predictions: Sequence[Detections],
    truths: Sequence[FrameTruth],
    *,
    class_names: Sequence[str] = CLASS_NAMES,
    min_height_px: float = 12.0,
    min_visible: float = 0.5,
) -> EvaluationReport:
    """Scores per-frame detections against per-frame truth (same order, same pixels)."""
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} prediction frames for {len(truths)} truth frames")
    num_classes, num_thresholds = len(class_names), len(IOU_THRESHOLDS)
    scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    outcomes: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    instances = np.zeros(num_classes, np.int64)
    found_as = np.zeros((num_classes, num_classes + 1), np.int64)
    for detections, truth in zip(predictions, truths):
        counted = counted_mask(truth, min_height_px=min_height_px, min_visible=min_visible)
        np.add.at(found_as, (truth.class_id[counted], _found_class(truth.xyxy[counted], detections, none=num_classes)), 1)
        for class_id in np.union1d(np.unique(detections.class_id), np.unique(truth.class_id)):
            of_class = truth.class_id == class_id
            gt_boxes = truth.xyxy[of_class & counted]
            ignore_boxes = truth.xyxy[of_class & ~counted]
            instances[class_id] += len(gt_boxes)
            found = detections[detections.class_id == class_id]
            if not len(found):
                continue
            order = np.argsort(-found.confidence, kind="stable")
            outcome = _match_frame(found.xyxy[order], gt_boxes, ignore_boxes, min_height_px=min_height_px)
            scores[class_id].append(found.confidence[order])
            outcomes[class_id].append(outcome)
    per_class = []
    for class_id, name in enumerate(class_names):
        class_scores = np.concatenate(scores[class_id]) if scores[class_id] else np.zeros(0, np.float32)
        class_outcomes = np.concatenate(outcomes[class_id]) if outcomes[class_id] else np.zeros((0, num_thresholds), np.int8)
        ap = np.array([_average_precision(class_scores, class_outcomes[:, t], instances[class_id]) for t in range(num_thresholds)])
        per_class.append(
            ClassMetrics(name, int(instances[class_id]), int(len(class_scores)), float(ap[0]), float(ap.mean()))
        )
    return EvaluationReport(frames=len(truths), per_class=tuple(per_class), found_as=tuple(map(tuple, found_as.tolist())))


def _found_class(gt_boxes: np.ndarray, detections: Detections, *, none: int) -> np.ndarray:
    """(n,) class of the most confident detection at IoU >= 0.5 and `FOUND_CONFIDENCE` on each box, else `none`."""
    strong = detections[detections.confidence >= FOUND_CONFIDENCE]
    if not len(gt_boxes) or not len(strong):
        return np.full(len(gt_boxes), none, np.int64)
    score = np.where(box_iou(gt_boxes, strong.xyxy) >= 0.5, strong.confidence[None, :], -1.0)
    best = score.argmax(axis=1)
    return np.where(score[np.arange(len(gt_boxes)), best] >= 0, strong.class_id[best], none)


def evaluate_runtime(
    runtime,
    dataset: FrameDataset,
    *,
    batch_size: int = 16,
    min_height_px: float = 12.0,
    min_visible: float = 0.5,
    progress: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Runs a `DetectorRuntime` over every frame of `dataset` (batches of one clip) and scores it."""
    predictions: list[Detections] = []
    order: list[int] = []
    by_clip: dict[int, list[int]] = {}
    for index in range(len(dataset)):
        by_clip.setdefault(dataset.clip_of(index), []).append(index)
    for indices in by_clip.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            predictions.extend(runtime.detect(np.stack([dataset.frame(i) for i in chunk])))
            order.extend(chunk)
            if progress and len(order) % (batch_size * 20) < batch_size:
                progress(f"evaluated {len(order)}/{len(dataset)} frames")
    truths = [dataset.truth(i) for i in order]
    return evaluate_detections(predictions, truths, min_height_px=min_height_px, min_visible=min_visible)


def _match_frame(det_boxes: np.ndarray, gt_boxes: np.ndarray, ignore_boxes: np.ndarray, *, min_height_px: float) -> np.ndarray:
    """(n, T) int8 per detection (confidence order) and IoU threshold: 1 TP, 0 FP, -1 ignored."""
    num_thresholds = len(IOU_THRESHOLDS)
    result = np.zeros((len(det_boxes), num_thresholds), np.int8)
    gt_iou = box_iou(det_boxes, gt_boxes)
    ignore_iou = box_iou(det_boxes, ignore_boxes).max(axis=1, initial=0.0)
    short = det_boxes[:, 3] - det_boxes[:, 1] < min_height_px
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(gt_boxes), bool)
        for d in range(len(det_boxes)):
            candidates = np.where(taken, -1.0, gt_iou[d])
            best = int(np.argmax(candidates)) if len(gt_boxes) else -1
            if best >= 0 and candidates[best] >= threshold:
                taken[best] = True
                result[d, t] = 1
            elif ignore_iou[d] >= threshold or short[d]:
                result[d, t] = -1
    return result


def _average_precision(scores: np.ndarray, outcome: np.ndarray, positives: int) -> float:
    if positives == 0:
        return float("nan")
    counted = outcome >= 0
    if not counted.any():
        return 0.0
    order = np.argsort(-scores[counted], kind="stable")
    hits = outcome[counted][order] == 1
    true_positives = np.cumsum(hits)
    false_positives = np.cumsum(~hits)
    recall = true_positives / positives
    precision = true_positives / np.maximum(true_positives + false_positives, 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    positions = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(positions < len(precision), precision[np.minimum(positions, len(precision) - 1)], 0.0)
    return float(sampled.mean())
