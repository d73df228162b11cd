"""CenterNet-style detector: torchvision MobileNetV3 features, a light FPN neck to stride 4, three heads.

Heads per output cell: class heatmap logits (C), log box size in cells (2: w, h) and the box centre's
offset from the cell corner in cells (2: x, y). No anchors, no NMS: peaks are found by max-pool and top-k
in `decode.py`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from casaflow.detections import CLASS_NAMES

BACKBONES = ("mobilenet_v3_small", "mobilenet_v3_large")
_HEATMAP_PRIOR = 0.01
_MAX_SIZE_LOG = 6.0
_BATCHNORM_MOMENTUM = 0.1
"""torchvision's MobileNetV3 uses 0.01, too slow for running statistics of a short from-scratch training."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and input geometry; stored in every checkpoint.

    Attributes:
        backbone: torchvision model name whose `features` form the backbone (random init).
        width_mult: backbone channel multiplier.
        neck_channels: channels of the neck and of the two head trunks (heatmap; size and offset).
        input_size_wh: network input `(w, h)` in pixels, both multiples of 32.
        class_names: detected classes, in class-id order.
    """

    backbone: str = "mobilenet_v3_small"
    width_mult: float = 1.0
    neck_channels: int = 64
    input_size_wh: tuple[int, int] = (384, 224)
    class_names: tuple[str, ...] = field(default=CLASS_NAMES)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        w, h = self.input_size_wh
        if w % 32 or h % 32 or w <= 0 or h <= 0:
            raise ValueError(f"input size must be positive multiples of 32, got {w}x{h}")
        object.__setattr__(self, "input_size_wh", (int(w), int(h)))
        object.__setattr__(self, "class_names", tuple(self.class_names))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        values = dict(values)
        values["input_size_wh"] = tuple(values["input_size_wh"])
        values["class_names"] = tuple(values["class_names"])
        return cls(**values)


class CenterNetOutput(NamedTuple):
    """Raw head outputs at stride `CenterNet.stride`.

    Attributes:
        heatmap_logits: (B, C, h, w) class-centre logits.
        size_log: (B, 2, h, w) log of box width and height in output cells.
        offset: (B, 2, h, w) box centre minus cell corner, in cells (x, y).
    """

    heatmap_logits: torch.Tensor
    size_log: torch.Tensor
    offset: torch.Tensor


def _conv_bn_relu(in_channels: int, out_channels: int, *, kernel_size: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _separable(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        _conv_bn_relu(in_channels, in_channels, kernel_size=3, groups=in_channels),
        _conv_bn_relu(in_channels, out_channels),
    )


class CenterNet(nn.Module):
    """MobileNetV3 + FPN-lite neck + CenterNet heads; output stride 4."""

    stride = 4

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        builder = getattr(torchvision.models, self.config.backbone)
        features = list(builder(weights=None, width_mult=self.config.width_mult).features)[:-1]
        self.stage_ends, stage_channels = _stage_ends(features)
        self.backbone = nn.ModuleList(features[: self.stage_ends[-1] + 1])
        channels = self.config.neck_channels
        self.lateral = nn.ModuleList(_conv_bn_relu(c, channels) for c in stage_channels)
        self.smooth = nn.ModuleList(_separable(channels, channels) for _ in stage_channels[:-1])
        self.heatmap_trunk = _separable(channels, channels)
        self.box_trunk = _separable(channels, channels)
        self.heatmap_head = nn.Conv2d(channels, self.config.num_classes, 1)
        self.size_head = nn.Conv2d(channels, 2, 1)
        self.offset_head = nn.Conv2d(channels, 2, 1)
        nn.init.constant_(self.heatmap_head.bias, -math.log((1 - _HEATMAP_PRIOR) / _HEATMAP_PRIOR))
        nn.init.normal_(self.size_head.weight, std=0.01)
        nn.init.constant_(self.size_head.bias, 1.0)
        nn.init.normal_(self.offset_head.weight, std=0.01)
        nn.init.constant_(self.offset_head.bias, 0.5)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = _BATCHNORM_MOMENTUM

    @property
    def input_size_wh(self) -> tuple[int, int]:
        return self.config.input_size_wh

    def forward(self, images: torch.Tensor) -> CenterNetOutput:
        """Runs the network.

        Args:
            images: (B, 3, h, w) normalised RGB (see `preprocess.normalize_rgb`), h and w multiples of 32.

        Returns:
            Head outputs at (h/4, w/4).
        """
        stages = []
        x = images
        for index, layer in enumerate(self.backbone):
            x = layer(x)
            if index in self.stage_ends:
                stages.append(x)
        y = self.lateral[-1](stages[-1])
        for level in range(len(stages) - 2, -1, -1):
            y = F.interpolate(y, scale_factor=2.0, mode="nearest") + self.lateral[level](stages[level])
            y = self.smooth[level](y)
        box_features = self.box_trunk(y)
        size_log = self.size_head(box_features).clamp(-2.0, _MAX_SIZE_LOG)
        return CenterNetOutput(self.heatmap_head(self.heatmap_trunk(y)), size_log, self.offset_head(box_features))


def _stage_ends(features: list[nn.Module]) -> tuple[list[int], list[int]]:
    """Indices of the last layer at strides 4, 8, 16 and 32, and their channel counts."""
    x = torch.zeros(1, 3, 64, 64)
    ends, channels = [], []
    with torch.no_grad():
        for index, layer in enumerate(features):
            y = layer.eval()(x)
            if y.shape[-1] < x.shape[-1] and index > 0:
                ends.append(index - 1)
                channels.append(x.shape[1])
            x = y
    for layer in features:
        layer.train()
    ends.append(len(features) - 1)
    channels.append(x.shape[1])
    return ends[-4:], channels[-4:]


def build_model(config: ModelConfig | None = None) -> CenterNet:
    """Builds a randomly initialised detector (nothing is downloaded)."""
    return CenterNet(config)
