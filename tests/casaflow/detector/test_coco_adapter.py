"""The COCO adapter pins the mapping from torchvision's 91 COCO labels to our six classes (person ->
pedestrian; others dropped), loading weights only from a local file, and the padded batch output that
lets the runtime serve a torchvision detector through the same YUV path (random weights: shapes only)."""

import numpy as np
import pytest
import torch
from torch import nn

from casaflow.detections import CLASS_IDS
from casaflow.detector.coco import CocoDetectorAdapter, build_coco_model, coco_category_names, coco_label_lookup
from casaflow.detector.runtime import DetectorOptions, DetectorRuntime, build_runtime


def test_label_mapping():
    names = coco_category_names()
    lookup = coco_label_lookup()
    assert len(names) == len(lookup) == 91
    expected = {"person": "pedestrian", "bicycle": "bicycle", "car": "car", "motorcycle": "motorcycle", "bus": "bus", "truck": "truck"}
    for coco_name, ours in expected.items():
        assert lookup[names.index(coco_name)] == CLASS_IDS[ours]
    assert (lookup >= 0).sum() == 6
    assert lookup[names.index("train")] == -1 and lookup[0] == -1


class FakeCocoModel(nn.Module):
    """Returns fixed torchvision-style outputs: a car, a dog, a person below threshold, a bus."""

    def forward(self, images):
        names = coco_category_names()
        outputs = []
        for image in images:
            assert image.max() <= 1.0
            outputs.append(
                {
                    "boxes": torch.tensor([[1.0, 2.0, 10.0, 12.0], [0.0, 0.0, 5.0, 5.0], [3.0, 3.0, 4.0, 8.0], [20.0, 5.0, 60.0, 30.0]]),
                    "labels": torch.tensor([names.index(n) for n in ("car", "dog", "person", "bus")]),
                    "scores": torch.tensor([0.8, 0.99, 0.1, 0.9]),
                }
            )
        return outputs


def test_adapter_maps_filters_and_pads():
    adapter = CocoDetectorAdapter(FakeCocoModel(), input_size_wh=(64, 32))
    boxes = adapter.detect_rgb(torch.full((2, 3, 32, 64), 128.0), min_confidence=0.3, top_k=4)
    assert boxes.xyxy.shape == (2, 4, 4) and boxes.valid.tolist() == [[True, True, False, False]] * 2
    assert boxes.class_id[0, :2].tolist() == [CLASS_IDS["bus"], CLASS_IDS["car"]]
    assert torch.allclose(boxes.confidence[0, :2], torch.tensor([0.9, 0.8]))
    runtime = DetectorRuntime(adapter, device="cpu", min_confidence=0.3)
    frames = np.full((2, 96, 128), 128, np.uint8)  # 128x64 source, 64x32 input: boxes double
    detections = runtime.detect(frames)
    assert [len(d) for d in detections] == [2, 2]
    assert np.allclose(detections[0].xyxy[1], [2.0, 4.0, 20.0, 24.0])


def test_torchvision_detector_with_random_local_weights(tmp_path):
    torch.manual_seed(0)
    random_model = build_coco_model("fasterrcnn_mobilenet_v3_large_fpn", min_size=64, max_size=128)
    path = tmp_path / "coco.pth"
    torch.save(random_model.state_dict(), path)
    options = DetectorOptions(model="coco", coco_model="fasterrcnn_mobilenet_v3_large_fpn", weights_path=str(path), device="cpu", min_confidence=0.0, top_k=5)
    runtime = build_runtime(options)
    results = runtime.detect(np.random.default_rng(0).integers(0, 256, (2, 72, 96), dtype=np.uint8))
    assert len(results) == 2
    for result in results:
        assert len(result) <= 5 and result.xyxy.shape[1] == 4
        assert set(result.class_id.tolist()) <= set(range(6))
        assert (result.xyxy[:, [0, 2]] <= 96).all() and (result.xyxy[:, [1, 3]] <= 48).all()


def test_adapter_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown COCO model"):
        build_coco_model("yolo")
    with pytest.raises(FileNotFoundError):
        build_coco_model("ssdlite320_mobilenet_v3_large", weights_path=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="weights_path"):
        build_runtime(DetectorOptions(model="coco", device="cpu"))
