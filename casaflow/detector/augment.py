"""Training batches: YUV frames -> augmented RGB at the network input size, with boxes moved to match.

Everything after decoding runs as batched tensor operations on the training device: the same YUV->RGB
resize as inference (`preprocess.yuv420_to_rgb`) at a random scale, then per-frame crop or pad, flip,
colour jitter, blur and noise. All randomness comes from one `torch.Generator`, so a step is reproducible
from `(seed, step)` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from casaflow.detector.dataset import FrameDataset
from casaflow.detector.preprocess import yuv420_to_rgb

PAD_VALUE = 114.0


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation ranges; ranges of 0 (or probability 0) turn a step off.

    Attributes:
        scale_range: resize factor relative to the plain input resize, drawn once per batch.
        flip_probability: horizontal flip, per frame.
        brightness, contrast, saturation: jitter amplitude, per frame (factor in 1 +- amplitude).
        blur_probability, blur_sigma_max_px: Gaussian blur, per frame, sigma in input pixels.
        noise_probability, noise_std_max: additive Gaussian noise, per frame, std in 0..255 levels.
    """

    scale_range: tuple[float, float] = (0.7, 1.4)
    flip_probability: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.4
    blur_probability: float = 0.3
    blur_sigma_max_px: float = 1.2
    noise_probability: float = 0.5
    noise_std_max: float = 8.0


class BoxTargets(NamedTuple):
    """Boxes of a batch, flattened.

    Attributes:
        xyxy: (N, 4) float32 boxes in network-input pixels.
        class_id: (N,) int64.
        batch_index: (N,) int64 frame of each box within the batch.
        ignore: (N,) bool, True for boxes that are neither positives nor negatives in the loss.
    """

    xyxy: torch.Tensor
    class_id: torch.Tensor
    batch_index: torch.Tensor
    ignore: torch.Tensor


def make_batch(
    dataset: FrameDataset,
    indices: Sequence[int],
    *,
    input_size_wh: tuple[int, int],
    device: torch.device,
    augment: AugmentConfig | None,
    generator: torch.Generator,
    min_visible: float = 0.5,
    min_height_px: float = 4.0,
) -> tuple[torch.Tensor, BoxTargets]:
    """Builds one training batch.

    Args:
        dataset: frames and truth.
        indices: sample indices of the batch.
        input_size_wh: network input (w, h) in pixels.
        device: where images and targets are built.
        augment: ranges, or None for the plain inference resize.
        generator: CPU generator for every random draw of this batch.
        min_visible: truth boxes less visible than this (or cut by the crop below it) become ignore boxes.
        min_height_px: boxes shorter than this in input pixels become ignore boxes.

    Returns:
        (B, 3, h, w) float32 RGB in 0..255 and the batch's boxes.
    """
    width, height = input_size_wh
    batch = len(indices)
    scale = 1.0
    if augment is not None:
        low, high = augment.scale_range
        scale = low + (high - low) * float(torch.rand((), generator=generator))
    scaled_hw = (max(round(height * scale), 8), max(round(width * scale), 8))
    rgb = _convert_grouped(dataset, indices, size_hw=scaled_hw, device=device)

    truths = [dataset.truth(i) for i in indices]
    sizes = np.asarray([dataset.frame_size_wh(i) for i in indices], np.float32)
    counts = [len(t.class_id) for t in truths]
    xyxy = np.concatenate([t.xyxy for t in truths]) if sum(counts) else np.zeros((0, 4), np.float32)
    batch_index = np.repeat(np.arange(batch), counts)
    factors = np.stack([scaled_hw[1] / sizes[:, 0], scaled_hw[0] / sizes[:, 1]], 1)[batch_index]
    xyxy = xyxy * np.tile(factors, 2)
    class_id = np.concatenate([t.class_id for t in truths]) if sum(counts) else np.zeros(0, np.int64)
    visible = np.concatenate([t.visible for t in truths]) if sum(counts) else np.zeros(0, np.float32)

    offset_xy = torch.zeros((batch, 2), dtype=torch.int64)
    if augment is not None:
        offset_xy = _random_offsets(batch, scaled_hw, (height, width), generator)
    rgb = _crop_or_pad(rgb, offset_xy.to(device), out_hw=(height, width))
    boxes = torch.from_numpy(xyxy.astype(np.float32)) - offset_xy[batch_index].repeat(1, 2).float()
    area_before = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    boxes = torch.stack(
        (boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height), boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)), 1
    )
    area_after = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept_fraction = area_after / area_before.clamp(min=1e-6)
    present = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    ignore = (torch.from_numpy(visible) * kept_fraction < min_visible) | (boxes[:, 3] - boxes[:, 1] < min_height_px)

    if augment is not None:
        flip = torch.rand(batch, generator=generator) < augment.flip_probability
        rgb = torch.where(flip.to(device).view(batch, 1, 1, 1), rgb.flip(-1), rgb)
        flipped = flip[torch.from_numpy(batch_index)]
        mirrored = torch.stack((width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]), 1)
        boxes = torch.where(flipped.unsqueeze(1), mirrored, boxes)
        rgb = _photometric(rgb, augment, generator)

    targets = BoxTargets(
        xyxy=boxes[present].to(device),
        class_id=torch.from_numpy(class_id)[present].to(device),
        batch_index=torch.from_numpy(batch_index)[present].to(device),
        ignore=ignore[present].to(device),
    )
    return rgb, targets


def _convert_grouped(dataset: FrameDataset, indices: Sequence[int], *, size_hw, device) -> torch.Tensor:
    """YUV->RGB per group of same-sized clips, reassembled in batch order."""
    groups: dict[tuple[int, int], list[int]] = {}
    for position, index in enumerate(indices):
        groups.setdefault(dataset.frame_size_wh(index), []).append(position)
    out = torch.empty((len(indices), 3, *size_hw), device=device)
    for positions in groups.values():
        frames = np.stack([dataset.frame(indices[p]) for p in positions])
        out[positions] = yuv420_to_rgb(torch.from_numpy(frames).to(device), size_hw=size_hw)
    return out


def _random_offsets(batch: int, scaled_hw, out_hw, generator: torch.Generator) -> torch.Tensor:
    """(B, 2) int64 crop offsets (x, y): positive crops into the scaled image, negative pads it."""
    limits = [(min(0, s - o), max(0, s - o)) for s, o in zip(scaled_hw[::-1], out_hw[::-1])]
    draws = torch.rand((batch, 2), generator=generator)
    low = torch.tensor([lim[0] for lim in limits], dtype=torch.float32)
    high = torch.tensor([lim[1] for lim in limits], dtype=torch.float32)
    return torch.floor(low + draws * (high - low + 1)).clamp(max=high).to(torch.int64)


def _crop_or_pad(rgb: torch.Tensor, offset_xy: torch.Tensor, *, out_hw: tuple[int, int]) -> torch.Tensor:
    """Per-frame window of size `out_hw` at `offset_xy` (may leave the image: padded with PAD_VALUE)."""
    batch, _, height, width = rgb.shape
    rows = torch.arange(out_hw[0], device=rgb.device).unsqueeze(0) + offset_xy[:, 1:2]
    cols = torch.arange(out_hw[1], device=rgb.device).unsqueeze(0) + offset_xy[:, 0:1]
    inside = ((rows >= 0) & (rows < height)).unsqueeze(2) & ((cols >= 0) & (cols < width)).unsqueeze(1)
    frame = torch.arange(batch, device=rgb.device).view(batch, 1, 1)
    window = rgb.permute(0, 2, 3, 1)[frame, rows.clamp(0, height - 1).unsqueeze(2), cols.clamp(0, width - 1).unsqueeze(1)]
    window = torch.where(inside.unsqueeze(3), window, torch.full_like(window, PAD_VALUE))
    return window.permute(0, 3, 1, 2).contiguous()


def _photometric(rgb: torch.Tensor, augment: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    batch, device = rgb.shape[0], rgb.device

    def factors(amplitude: float) -> torch.Tensor:
        draws = torch.rand(batch, generator=generator) * 2 - 1
        return (1 + amplitude * draws).to(device).view(batch, 1, 1, 1)

    brightness, contrast, saturation = factors(augment.brightness), factors(augment.contrast), factors(augment.saturation)
    rgb = rgb * brightness
    mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
    rgb = (rgb - mean) * contrast + mean
    grey = (rgb * torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    rgb = ((rgb - grey) * saturation + grey).clamp(0, 255)

    blur = torch.rand(batch, generator=generator) < augment.blur_probability
    sigma = torch.where(blur, torch.rand(batch, generator=generator) * augment.blur_sigma_max_px, torch.zeros(batch))
    rgb = _gaussian_blur(rgb, sigma.to(device))

    noisy = torch.rand(batch, generator=generator) < augment.noise_probability
    std = torch.where(noisy, torch.rand(batch, generator=generator) * augment.noise_std_max, torch.zeros(batch))
    noise_generator = torch.Generator(device).manual_seed(int(torch.randint(2**62, (), generator=generator)))
    noise = torch.randn(rgb.shape, generator=noise_generator, device=device) * std.to(device).view(batch, 1, 1, 1)
    return (rgb + noise).clamp(0, 255)


def _gaussian_blur(rgb: torch.Tensor, sigma_px: torch.Tensor, *, radius: int = 2) -> torch.Tensor:
    """Separable blur with a per-frame sigma (B,); sigma 0 leaves a frame unchanged."""
    batch, channels, height, width = rgb.shape
    taps = torch.arange(-radius, radius + 1, device=rgb.device, dtype=rgb.dtype)
    safe = sigma_px.clamp(min=1e-3).unsqueeze(1)
    kernel = torch.exp(-(taps.unsqueeze(0) ** 2) / (2 * safe**2))
    kernel = kernel / kernel.sum(1, keepdim=True)
    kernel = kernel.repeat_interleave(channels, dim=0)
    planes = F.pad(rgb.reshape(1, batch * channels, height, width), (radius, radius, radius, radius), mode="replicate")
    planes = F.conv2d(planes, kernel.view(-1, 1, 1, 2 * radius + 1), groups=batch * channels)
    planes = F.conv2d(planes, kernel.view(-1, 1, 2 * radius + 1, 1), groups=batch * channels)
    return planes.view(batch, channels, height, width)
