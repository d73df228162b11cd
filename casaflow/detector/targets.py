"""CenterNet training targets and losses, built for a whole batch with tensor operations.

Heatmaps: an elliptical Gaussian per object (TTFNet-style, sigma = 0.54 * size / 6) peaking at 1 on the
cell holding the box centre. Box size and offset are regressed on the centre cell and its 8 neighbours,
weighted by the object's Gaussian there (weights sum to 1 per object, so small and large objects count
alike), which gives small nets more regression samples per object.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from casaflow.detector.augment import BoxTargets
from casaflow.detector.model import CenterNetOutput

GAUSSIAN_ALPHA = 0.54
MIN_SIGMA_CELLS = 0.3


class DenseTargets(NamedTuple):
    """Targets at output resolution.

    Attributes:
        heatmap: (B, C, h, w) float in 0..1, exactly 1 at object centres.
        ignore: (B, 1, h, w) bool, cells excluded from the heatmap negatives.
        sample_index: (M,) int64 flat index `b*h*w + y*w + x` of each regression sample.
        regression: (M, 4) float `log w, log h` in cells and centre offset `x, y` in cells from the cell corner.
        weight: (M,) float sample weights, summing to 1 per object.
        num_objects: positives in the batch.
    """

    heatmap: torch.Tensor
    ignore: torch.Tensor
    sample_index: torch.Tensor
    regression: torch.Tensor
    weight: torch.Tensor
    num_objects: int


class LossParts(NamedTuple):
    total: torch.Tensor
    heatmap: torch.Tensor
    size: torch.Tensor
    offset: torch.Tensor


def build_targets(
    boxes: BoxTargets, *, batch_size: int, num_classes: int, output_hw: tuple[int, int], stride: int
) -> DenseTargets:
    """Rasterises the boxes of a batch (input pixels) onto the output grid."""
    height, width = output_hw
    device = boxes.xyxy.device
    cells = boxes.xyxy / stride
    positive = ~boxes.ignore
    pos_cells, pos_class, pos_batch = cells[positive], boxes.class_id[positive], boxes.batch_index[positive]

    center = (pos_cells[:, :2] + pos_cells[:, 2:]) / 2
    size = (pos_cells[:, 2:] - pos_cells[:, :2]).clamp(min=1e-2)
    cell = torch.stack((center[:, 0].floor().clamp(0, width - 1), center[:, 1].floor().clamp(0, height - 1)), 1)
    sigma = (GAUSSIAN_ALPHA * size / 6).clamp(min=MIN_SIGMA_CELLS)
    xs = torch.arange(width, device=device, dtype=torch.float32)
    ys = torch.arange(height, device=device, dtype=torch.float32)
    gauss_x = torch.exp(-((xs.unsqueeze(0) - cell[:, :1]) ** 2) / (2 * sigma[:, :1] ** 2))
    gauss_y = torch.exp(-((ys.unsqueeze(0) - cell[:, 1:]) ** 2) / (2 * sigma[:, 1:] ** 2))
    gaussians = (gauss_y.unsqueeze(2) * gauss_x.unsqueeze(1)).reshape(-1, height * width)
    heatmap = torch.zeros((batch_size * num_classes, height * width), device=device)
    rows = (pos_batch * num_classes + pos_class).unsqueeze(1).expand_as(gaussians)
    heatmap.scatter_reduce_(0, rows, gaussians, "amax", include_self=True)
    heatmap = heatmap.view(batch_size, num_classes, height, width)

    ignore_cells = cells[boxes.ignore]
    inside_x = (xs.unsqueeze(0) + 1 > ignore_cells[:, :1]) & (xs.unsqueeze(0) < ignore_cells[:, 2:3])
    inside_y = (ys.unsqueeze(0) + 1 > ignore_cells[:, 1:2]) & (ys.unsqueeze(0) < ignore_cells[:, 3:4])
    masks = (inside_y.unsqueeze(2) & inside_x.unsqueeze(1)).reshape(-1, height * width).float()
    ignore = torch.zeros((batch_size, height * width), device=device)
    ignore.scatter_reduce_(0, boxes.batch_index[boxes.ignore].unsqueeze(1).expand_as(masks), masks, "amax", include_self=True)
    ignore = ignore.view(batch_size, 1, height, width) > 0

    shifts = torch.tensor([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], device=device, dtype=torch.float32)
    neighbour = cell.unsqueeze(1) + shifts.unsqueeze(0)
    on_grid = (neighbour[..., 0] >= 0) & (neighbour[..., 0] < width) & (neighbour[..., 1] >= 0) & (neighbour[..., 1] < height)
    delta = neighbour - cell.unsqueeze(1)
    weight = torch.exp(-(delta[..., 0] ** 2) / (2 * sigma[:, :1] ** 2) - delta[..., 1] ** 2 / (2 * sigma[:, 1:] ** 2))
    offset = center.unsqueeze(1) - neighbour
    log_size = size.log().unsqueeze(1).expand_as(offset)
    weight = weight * on_grid
    weight = weight / weight.sum(1, keepdim=True).clamp(min=1e-6)
    flat = pos_batch.unsqueeze(1) * (height * width) + neighbour[..., 1].long() * width + neighbour[..., 0].long()
    return DenseTargets(
        heatmap=heatmap,
        ignore=ignore,
        sample_index=flat[on_grid],
        regression=torch.cat((log_size, offset), dim=2)[on_grid],
        weight=weight[on_grid],
        num_objects=int(positive.sum()),
    )


def centernet_loss(output: CenterNetOutput, targets: DenseTargets, *, size_weight: float = 2.0, offset_weight: float = 1.0) -> LossParts:
    """Penalty-reduced focal loss on heatmaps plus weighted L1 on log size and offset, per object."""
    logits = output.heatmap_logits.float()
    positives = targets.heatmap >= 1.0 - 1e-4
    keep_negative = (~positives) & ~targets.ignore
    probability = torch.sigmoid(logits)
    positive_loss = F.logsigmoid(logits) * (1 - probability) ** 2
    negative_loss = F.logsigmoid(-logits) * probability**2 * (1 - targets.heatmap) ** 4
    normaliser = max(targets.num_objects, 1)
    heatmap_loss = -(positive_loss[positives].sum() + negative_loss[keep_negative].sum()) / normaliser

    batch, _, height, width = logits.shape
    regression = torch.cat((output.size_log, output.offset), dim=1).float()
    predicted = regression.permute(0, 2, 3, 1).reshape(batch * height * width, 4)[targets.sample_index]
    error = (predicted - targets.regression).abs() * targets.weight.unsqueeze(1)
    size_loss = error[:, :2].sum() / normaliser
    offset_loss = error[:, 2:].sum() / normaliser
    total = heatmap_loss + size_weight * size_loss + offset_weight * offset_loss
    return LossParts(total, heatmap_loss.detach(), size_loss.detach(), offset_loss.detach())
