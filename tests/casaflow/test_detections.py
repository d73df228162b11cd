"""`Detections` pins the one per-frame type every stage shares: parallel numpy arrays with fixed dtypes,
shape checks on construction, `empty()`, `merge()` and boolean-mask / index selection."""

import numpy as np
import pytest

from casaflow.detections import CLASS_IDS, CLASS_NAMES, Detections


def make(n: int, *, tracker: bool = False) -> Detections:
    xyxy = np.arange(n * 4, dtype=np.float64).reshape(n, 4)
    return Detections(
        xyxy=xyxy,
        confidence=np.linspace(0.9, 0.1, n),
        class_id=np.arange(n) % len(CLASS_NAMES),
        tracker_id=np.arange(n) + 100 if tracker else None,
    )


def test_class_names_and_ids_agree():
    assert CLASS_NAMES == ("car", "bus", "truck", "motorcycle", "bicycle", "pedestrian")
    assert [CLASS_IDS[name] for name in CLASS_NAMES] == list(range(6))


def test_construction_coerces_dtypes():
    detections = make(3, tracker=True)
    assert detections.xyxy.dtype == np.float32 and detections.xyxy.shape == (3, 4)
    assert detections.confidence.dtype == np.float32
    assert detections.class_id.dtype == np.int64
    assert detections.tracker_id.dtype == np.int64
    assert len(detections) == 3
    assert list(detections.class_name) == ["car", "bus", "truck"]


@pytest.mark.parametrize(
    "xyxy, confidence, class_id, tracker_id",
    [
        (np.zeros((2, 3)), np.zeros(2), np.zeros(2), None),
        (np.zeros((2, 4)), np.zeros(3), np.zeros(2), None),
        (np.zeros((2, 4)), np.zeros(2), np.zeros(1), None),
        (np.zeros((2, 4)), np.zeros(2), np.zeros(2), np.zeros(5)),
        (np.zeros(4), np.zeros(1), np.zeros(1), None),
    ],
)
def test_bad_shapes_raise(xyxy, confidence, class_id, tracker_id):
    with pytest.raises(ValueError):
        Detections(xyxy=xyxy, confidence=confidence, class_id=class_id, tracker_id=tracker_id)


def test_empty():
    empty = Detections.empty()
    assert len(empty) == 0 and empty.xyxy.shape == (0, 4) and empty.tracker_id is None
    assert len(Detections(xyxy=[], confidence=[], class_id=[])) == 0


def test_merge_concatenates_and_keeps_tracker_ids_only_when_all_have_them():
    merged = Detections.merge([make(2), Detections.empty(), make(3)])
    assert len(merged) == 5 and merged.tracker_id is None
    assert np.array_equal(merged.class_id, [0, 1, 0, 1, 2])
    with_ids = Detections.merge([make(2, tracker=True), Detections.empty(), make(1, tracker=True)])
    assert np.array_equal(with_ids.tracker_id, [100, 101, 100])
    assert len(Detections.merge([])) == 0
    with pytest.raises(ValueError):
        Detections.merge([make(2, tracker=True), make(1)])


@pytest.mark.parametrize(
    "index, expected_rows",
    [
        (np.array([True, False, True, False]), [0, 2]),
        (np.array([3, 1]), [3, 1]),
        (slice(1, 3), [1, 2]),
        (2, [2]),
        ([], []),
    ],
)
def test_selection(index, expected_rows):
    detections = make(4, tracker=True)
    selected = detections[index]
    assert isinstance(selected, Detections)
    assert np.array_equal(selected.xyxy, detections.xyxy[expected_rows])
    assert np.array_equal(selected.tracker_id, detections.tracker_id[expected_rows])
    assert np.array_equal(selected.confidence, detections.confidence[expected_rows])


def test_mask_of_wrong_length_raises():
    with pytest.raises(IndexError):
        make(3)[np.array([True, False])]


def test_frozen_and_with_tracker_id():
    detections = make(2)
    with pytest.raises(AttributeError):
        detections.xyxy = np.zeros((0, 4))
    tracked = detections.with_tracker_id(np.array([7, 8]))
    assert detections.tracker_id is None and np.array_equal(tracked.tracker_id, [7, 8])
    assert np.allclose(tracked.center_xy, (detections.xyxy[:, :2] + detections.xyxy[:, 2:]) / 2)
    assert np.allclose(tracked.height_px, detections.xyxy[:, 3] - detections.xyxy[:, 1])
