"""Adapter for torchvision COCO detectors (for cities with real footage): local weights, COCO -> our classes."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from casaflow.detections import CLASS_IDS
from casaflow.detector.decode import BatchBoxes

COCO_TO_CLASS_NAME: dict[str, str] = {
    "car": "car",
    "bus": "bus",
    "truck": "truck",
    "motorcycle": "motorcycle",
    "bicycle": "bicycle",
    "person": "pedestrian",
}
"""COCO category name -> our class name; other COCO categories are dropped."""

COCO_MODELS = (
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
)


def coco_category_names() -> list[str]:
    """The 91 torchvision COCO label names, index = label id ('__background__' and 'N/A' included)."""
    weights = torchvision.models.detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1
    return list(weights.meta["categories"])


def coco_label_lookup() -> torch.Tensor:
    """(91,) int64 table: torchvision COCO label id -> our class id, or -1 for categories we drop."""
    table = torch.full((len(coco_category_names()),), -1, dtype=torch.int64)
    for label, name in enumerate(coco_category_names()):
        if name in COCO_TO_CLASS_NAME:
            table[label] = CLASS_IDS[COCO_TO_CLASS_NAME[name]]
    return table


def build_coco_model(model_name: str, *, weights_path: str | Path | None = None, **model_kwargs) -> nn.Module:
    """Builds a torchvision COCO detector with random weights, then loads a local state dict if given.

    Args:
        model_name: one of `COCO_MODELS`.
        weights_path: a `torch.save(model.state_dict())` file, e.g. torchvision's released .pth.
        **model_kwargs: passed to the torchvision builder (e.g. `min_size`, `box_score_thresh`).

    Raises:
        ValueError: unknown model name.
        FileNotFoundError: missing weights file.
    """
    if model_name not in COCO_MODELS:
        raise ValueError(f"unknown COCO model {model_name!r}; choose one of {', '.join(COCO_MODELS)}")
    builder = getattr(torchvision.models.detection, model_name)
    model = builder(weights=None, weights_backbone=None, num_classes=91, **model_kwargs)
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"COCO detector weights not found: {path}")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


class CocoDetectorAdapter(nn.Module):
    """Runs a torchvision COCO detector on a batch and returns our classes as padded `BatchBoxes`.

    torchvision's detectors post-process per image (anchors, NMS); that loop lives inside torchvision and
    bounds their throughput, which is why the CenterNet detector is the default.
    """

    def __init__(self, model: nn.Module, *, input_size_wh: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.model = model.eval()
        self.input_size_wh = input_size_wh
        self.register_buffer("label_lookup", coco_label_lookup(), persistent=False)

    def detect_rgb(self, rgb: torch.Tensor, *, min_confidence: float, top_k: int) -> BatchBoxes:
        """Detects in (B, 3, h, w) RGB 0..255; returns boxes (B, top_k, 4) in input pixels."""
        outputs = self.model(list(rgb.float() / 255.0))
        batch, device = rgb.shape[0], rgb.device
        xyxy = torch.zeros((batch, top_k, 4), device=device)
        confidence = torch.zeros((batch, top_k), device=device)
        class_id = torch.zeros((batch, top_k), dtype=torch.int64, device=device)
        counts = torch.zeros((batch, 1), dtype=torch.int64, device=device)
        for index, output in enumerate(outputs):
            mapped = self.label_lookup[output["labels"]]
            keep = (mapped >= 0) & (output["scores"] >= min_confidence)
            scores, order = output["scores"][keep].sort(descending=True)
            count = min(top_k, scores.shape[0])
            xyxy[index, :count] = output["boxes"][keep][order[:count]]
            confidence[index, :count] = scores[:count]
            class_id[index, :count] = mapped[keep][order[:count]]
            counts[index] = count
        valid = torch.arange(top_k, device=device).unsqueeze(0) < counts
        return BatchBoxes(xyxy, confidence, class_id, valid)
