"""The evaluator pins the issue's accuracy measure: COCO-style 101-point AP per class at IoU 0.5 and
averaged over 0.5:0.95; truth objects under 12 px tall or under half visible are ignore regions (matches
on them are neither TP nor FP), as are unmatched detections under 12 px tall."""

import math

import numpy as np
import pytest

from casaflow.detections import Detections
from casaflow.detector.dataset import FrameTruth
from casaflow.detector.evaluate import box_iou, counted_mask, evaluate_detections


def truth(boxes, classes, visible=None) -> FrameTruth:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return FrameTruth(boxes, np.asarray(classes, np.int64), np.asarray(visible if visible is not None else [1.0] * len(boxes), np.float32))


def detections(boxes, classes, confidence) -> Detections:
    return Detections(xyxy=np.asarray(boxes, np.float32).reshape(-1, 4), confidence=confidence, class_id=classes)


FRAMES = [
    truth([[10, 10, 50, 40], [100, 20, 140, 60]], [0, 0]),
    truth([[30, 30, 60, 90]], [5]),
    truth([[0, 0, 40, 30], [200, 100, 260, 140]], [1, 0]),
]


def perfect() -> list[Detections]:
    return [detections(f.xyxy, f.class_id, np.full(len(f.class_id), 0.9)) for f in FRAMES]


def test_perfect_detections_score_one():
    report = evaluate_detections(perfect(), FRAMES)
    by_name = {m.class_name: m for m in report.per_class}
    assert by_name["car"].instances == 3 and by_name["car"].ap50 == pytest.approx(1.0) and by_name["car"].ap == pytest.approx(1.0)
    assert by_name["pedestrian"].ap50 == pytest.approx(1.0)
    assert math.isnan(by_name["truck"].ap50)
    assert report.map50 == pytest.approx(1.0)
    assert "| car | 3 | 1.000 | 1.000 |" in report.table()


def test_shifted_boxes_lower_ap_but_not_ap50_when_small():
    shifted = [detections(f.xyxy + np.array([3, 0, 3, 0]), f.class_id, np.full(len(f.class_id), 0.9)) for f in FRAMES]
    report = evaluate_detections(shifted, FRAMES)
    car = report.per_class[0]
    assert car.ap50 == pytest.approx(1.0)
    assert car.ap < 0.9
    far = [detections(f.xyxy + np.array([25, 0, 25, 0]), f.class_id, np.full(len(f.class_id), 0.9)) for f in FRAMES]
    assert evaluate_detections(far, FRAMES).per_class[0].ap50 < 0.5


def test_false_positives_and_misses_lower_ap():
    predictions = perfect()
    predictions[0] = Detections.merge([detections([[300, 200, 340, 240]], [0], [0.95]), predictions[0]])
    assert evaluate_detections(predictions, FRAMES).per_class[0].ap50 < 1.0
    missing = perfect()
    missing[2] = missing[2][missing[2].class_id != 0]
    assert evaluate_detections(missing, FRAMES).per_class[0].ap50 == pytest.approx(2 / 3, abs=0.01)
    low_score_fp = perfect()
    low_score_fp[0] = Detections.merge([low_score_fp[0], detections([[300, 200, 340, 240]], [0], [0.1])])
    assert evaluate_detections(low_score_fp, FRAMES).per_class[0].ap50 == pytest.approx(1.0)


def test_ignore_regions_are_neither_hits_nor_misses():
    frames = [truth([[10, 10, 50, 40], [100, 20, 108, 28], [200, 20, 240, 60]], [0, 0, 0], visible=[1.0, 1.0, 0.3])]
    assert counted_mask(frames[0]).tolist() == [True, False, False]
    on_ignored = [detections(frames[0].xyxy, [0, 0, 0], [0.9, 0.95, 0.97])]
    report = evaluate_detections(on_ignored, frames)
    assert report.per_class[0].instances == 1
    assert report.per_class[0].ap50 == pytest.approx(1.0)
    only_counted = [detections(frames[0].xyxy[:1], [0], [0.9])]
    assert evaluate_detections(only_counted, frames).per_class[0].ap50 == pytest.approx(1.0)
    tiny_false_positive = [Detections.merge([only_counted[0], detections([[300, 50, 306, 58]], [0], [0.99])])]
    assert evaluate_detections(tiny_false_positive, frames).per_class[0].ap50 == pytest.approx(1.0)


def test_duplicates_are_false_positives_and_classes_are_separate():
    predictions = perfect()
    predictions[1] = Detections.merge([predictions[1], detections(FRAMES[1].xyxy, [5], [0.95])])
    assert evaluate_detections(predictions, FRAMES).per_class[5].ap50 == pytest.approx(1.0)
    predictions[1] = Detections.merge([predictions[1], detections(FRAMES[1].xyxy, [5], [0.99])])
    assert evaluate_detections(predictions, FRAMES).per_class[5].ap50 == pytest.approx(1.0)
    wrong_class = perfect()
    wrong_class[1] = detections(FRAMES[1].xyxy, [2], [0.9])
    report = evaluate_detections(wrong_class, FRAMES)
    assert report.per_class[5].ap50 == 0.0 and math.isnan(report.per_class[2].ap50)


def test_box_iou_and_length_check():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    assert np.allclose(box_iou(a, b), [[1.0, 1 / 3, 0.0]])
    assert box_iou(a, np.zeros((0, 4), np.float32)).shape == (1, 0)
    with pytest.raises(ValueError):
        evaluate_detections(perfect()[:2], FRAMES)


def test_found_as_counts_what_each_counted_object_was_taken_for():
    frames = [truth([[10, 10, 50, 40], [100, 20, 140, 60], [0, 0, 30, 60], [200, 0, 210, 8]], [0, 4, 5, 4])]
    found = [detections([[10, 10, 50, 41], [100, 20, 140, 60], [100, 21, 140, 60], [0, 0, 30, 60]], [0, 3, 4, 5],
                        np.array([0.9, 0.8, 0.6, 0.1], np.float32))]
    report = evaluate_detections(found, frames)
    rows = {m.class_name: row for m, row in zip(report.per_class, report.found_as)}
    assert rows["car"][0] == 1
    assert rows["bicycle"][3] == 1 and sum(rows["bicycle"]) == 1, "the more confident motorcycle box; the 8 px one is not counted"
    assert rows["pedestrian"][-1] == 1, "under the found confidence: not seen"
    assert "bicycle (1)" in report.found_as_table() and report.to_dict()["found_as"][4][3] == 1
