"""Decoding pins the NMS-free contract: heatmap peaks (3x3 max-pool) become boxes from size and offset,
top-k and a confidence threshold per frame, scaled to source pixels and clipped, then split into one
`Detections` per frame (empty frames included) in descending confidence."""

import math

import numpy as np
import torch

from casaflow.detector.decode import BatchBoxes, decode_centernet, scale_to_source, split_detections

LOW = -10.0


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def hand_made_outputs():
    """Batch of 3 frames, 6 classes, 8x10 cells; frame 1 is empty."""
    heatmap = torch.full((3, 6, 8, 10), LOW)
    size_log = torch.zeros((3, 2, 8, 10))
    offset = torch.zeros((3, 2, 8, 10))
    heatmap[0, 0, 2, 3] = logit(0.9)
    heatmap[0, 0, 2, 4] = logit(0.8)  # a neighbour of a stronger peak: suppressed by the max-pool
    size_log[0, :, 2, 3] = torch.tensor([math.log(4.0), math.log(2.0)])
    offset[0, :, 2, 3] = torch.tensor([0.5, 0.25])
    heatmap[0, 5, 6, 8] = logit(0.6)
    size_log[0, :, 6, 8] = torch.tensor([math.log(1.0), math.log(3.0)])
    offset[0, :, 6, 8] = torch.tensor([0.0, 0.5])
    heatmap[2, 2, 0, 0] = logit(0.2)  # below the threshold
    heatmap[2, 1, 4, 4] = logit(0.7)
    size_log[2, :, 4, 4] = torch.tensor([math.log(2.0), math.log(2.0)])
    offset[2, :, 4, 4] = torch.tensor([0.5, 0.5])
    return heatmap, size_log, offset


def test_peaks_become_boxes_in_input_pixels():
    boxes = decode_centernet(*hand_made_outputs(), stride=4, top_k=5, min_confidence=0.3)
    assert boxes.xyxy.shape == (3, 5, 4) and boxes.valid.shape == (3, 5)
    assert boxes.valid.sum(1).tolist() == [2, 0, 1]
    first = boxes.xyxy[0, 0].tolist()
    # centre (3 + 0.5, 2 + 0.25) cells, size 4x2 cells, stride 4
    assert np.allclose(first, [(3.5 - 2) * 4, (2.25 - 1) * 4, (3.5 + 2) * 4, (2.25 + 1) * 4])
    assert boxes.class_id[0, :2].tolist() == [0, 5]
    assert np.allclose(boxes.confidence[0, :2].tolist(), [0.9, 0.6], atol=1e-6)
    assert np.allclose(boxes.xyxy[0, 1].tolist(), [(8 - 0.5) * 4, (6.5 - 1.5) * 4, (8 + 0.5) * 4, (6.5 + 1.5) * 4])
    assert boxes.class_id[2, 0].item() == 1


def test_top_k_and_threshold():
    boxes = decode_centernet(*hand_made_outputs(), stride=4, top_k=1, min_confidence=0.0)
    assert boxes.valid.shape == (3, 1)
    assert boxes.class_id[:, 0].tolist()[0] == 0
    everything = decode_centernet(*hand_made_outputs(), stride=4, top_k=1000, min_confidence=0.1)
    assert everything.xyxy.shape[1] == 6 * 8 * 10
    assert everything.valid.sum(1).tolist() == [2, 0, 2]


def test_scale_to_source_and_split():
    boxes = decode_centernet(*hand_made_outputs(), stride=4, top_k=5, min_confidence=0.3)
    scaled = scale_to_source(boxes, input_size_wh=(40, 32), source_size_wh=(80, 48))
    frames = split_detections(scaled)
    assert [len(f) for f in frames] == [2, 0, 1]
    expected = boxes.xyxy[0, 0] * torch.tensor([2.0, 1.5, 2.0, 1.5])
    assert np.allclose(frames[0].xyxy[0], expected.numpy())
    assert frames[0].xyxy.dtype == np.float32 and frames[0].class_id.dtype == np.int64
    assert np.all(np.diff(frames[0].confidence) <= 0)
    # the second box reaches past the right edge (x2 = 34 input px -> 68 of 80 source px) and is kept inside
    assert (frames[0].xyxy[:, [0, 2]] <= 80).all() and (frames[0].xyxy >= 0).all()


def test_boxes_are_clipped_to_the_source_picture():
    boxes = BatchBoxes(
        xyxy=torch.tensor([[[-5.0, -2.0, 50.0, 40.0]]]),
        confidence=torch.tensor([[0.9]]),
        class_id=torch.tensor([[0]]),
        valid=torch.tensor([[True]]),
    )
    frames = split_detections(scale_to_source(boxes, input_size_wh=(40, 32), source_size_wh=(40, 32)))
    assert frames[0].xyxy.tolist() == [[0.0, 0.0, 40.0, 32.0]]


def test_empty_batch():
    heatmap = torch.zeros((0, 6, 4, 4))
    boxes = decode_centernet(heatmap, torch.zeros((0, 2, 4, 4)), torch.zeros((0, 2, 4, 4)), stride=4)
    assert split_detections(boxes) == []
