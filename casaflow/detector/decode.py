"""Batched CenterNet decoding: max-pool peaks, top-k, boxes in source pixels; one split per batch at the end."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from casaflow.detections import Detections


class BatchBoxes(NamedTuple):
    """Padded per-frame results of one batch; rows where `valid` is False are padding.

    Attributes:
        xyxy: (B, K, 4) float boxes in pixels.
        confidence: (B, K) float scores in 0..1, descending along K.
        class_id: (B, K) int64 class indices.
        valid: (B, K) bool.
    """

    xyxy: torch.Tensor
    confidence: torch.Tensor
    class_id: torch.Tensor
    valid: torch.Tensor


def decode_centernet(
    heatmap_logits: torch.Tensor,
    size_log: torch.Tensor,
    offset: torch.Tensor,
    *,
    stride: int,
    top_k: int = 100,
    min_confidence: float = 0.3,
    pool_kernel: int = 3,
) -> BatchBoxes:
    """Finds heatmap peaks and turns them into boxes in network-input pixels, for a whole batch at once.

    Args:
        heatmap_logits: (B, C, h, w) class-centre logits.
        size_log: (B, 2, h, w) log of box (width, height) in cells.
        offset: (B, 2, h, w) centre minus cell corner in cells (x, y).
        stride: input pixels per output cell.
        top_k: peaks kept per frame before the confidence threshold.
        min_confidence: peaks scoring below are marked invalid.
        pool_kernel: odd max-pool window in cells; a peak is a cell equal to its window's maximum.

    Returns:
        Padded boxes (B, K, 4) in input pixels with K = min(top_k, C*h*w).
    """
    batch, num_classes, height, width = heatmap_logits.shape
    logits = heatmap_logits.float()
    pooled = F.max_pool2d(logits, pool_kernel, stride=1, padding=pool_kernel // 2)
    peaks = torch.where(logits == pooled, logits, torch.full_like(logits, float("-inf")))
    k = min(top_k, num_classes * height * width)
    top_logits, top_index = peaks.reshape(batch, num_classes * height * width).topk(k, dim=1)
    class_id = torch.div(top_index, height * width, rounding_mode="floor")
    cell_index = top_index - class_id * (height * width)
    cell_y = torch.div(cell_index, width, rounding_mode="floor")
    cell_x = cell_index - cell_y * width
    regression = torch.cat((size_log, offset), dim=1).float().reshape(batch, 4, height * width)
    gathered = regression.gather(2, cell_index.unsqueeze(1).expand(batch, 4, k))
    size_wh = gathered[:, 0:2].exp()
    center_x = cell_x + gathered[:, 2]
    center_y = cell_y + gathered[:, 3]
    xyxy = torch.stack(
        (center_x - size_wh[:, 0] / 2, center_y - size_wh[:, 1] / 2, center_x + size_wh[:, 0] / 2, center_y + size_wh[:, 1] / 2),
        dim=2,
    ) * float(stride)
    confidence = torch.sigmoid(top_logits)
    return BatchBoxes(xyxy, confidence, class_id, confidence >= min_confidence)


def scale_to_source(boxes: BatchBoxes, *, input_size_wh: tuple[int, int], source_size_wh: tuple[int, int]) -> BatchBoxes:
    """Maps boxes from network-input pixels to source pixels, clipped to the source picture (no host-to-device
    copies: capturable in a CUDA graph)."""
    scale_x, scale_y = source_size_wh[0] / input_size_wh[0], source_size_wh[1] / input_size_wh[1]
    x = (boxes.xyxy[..., 0::2] * scale_x).clamp_(0.0, float(source_size_wh[0]))
    y = (boxes.xyxy[..., 1::2] * scale_y).clamp_(0.0, float(source_size_wh[1]))
    return boxes._replace(xyxy=torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1))


def split_detections(boxes: BatchBoxes) -> list[Detections]:
    """Keeps the valid rows on the device, copies them to host memory once and splits them per frame."""
    if boxes.valid.shape[0] == 0:
        return []
    valid = boxes.valid
    kept = torch.cat(
        (boxes.xyxy[valid].float(), boxes.confidence[valid].float().unsqueeze(1), boxes.class_id[valid].float().unsqueeze(1)), dim=1
    )
    packed = torch.cat((kept.reshape(-1), valid.sum(1).float())).cpu().numpy()
    num_kept = kept.shape[0]
    rows = packed[: num_kept * 6].reshape(num_kept, 6)
    bounds = np.cumsum(packed[num_kept * 6 :].astype(np.int64))[:-1]
    xyxy = np.split(rows[:, :4], bounds)
    confidence = np.split(rows[:, 4], bounds)
    class_id = np.split(rows[:, 5].astype(np.int64), bounds)
    return [Detections(xyxy=b, confidence=c, class_id=i) for b, c, i in zip(xyxy, confidence, class_id)]
