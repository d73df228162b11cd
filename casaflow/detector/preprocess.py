"""Batched YUV420 -> normalised RGB on whatever device the frames live on (BT.601, limited range)."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

_Y_SCALE = 255.0 / 219.0
_V_TO_R = 1.402 * 255.0 / 224.0
_U_TO_G = 0.344136 * 255.0 / 224.0
_V_TO_G = 0.714136 * 255.0 / 224.0
_U_TO_B = 1.772 * 255.0 / 224.0


def yuv420_frame_hw(stack_shape: tuple[int, ...]) -> tuple[int, int]:
    """Returns the picture `(H, W)` in pixels of a YUV420 stack shaped `(B, H*3//2, W)`.

    Raises:
        ValueError: if the shape is not a 3-d stack of even-sized yuv420p frames.
    """
    if len(stack_shape) != 3:
        raise ValueError(f"expected a stack (B, H*3//2, W) of yuv420p frames, got shape {tuple(stack_shape)}")
    rows, width = int(stack_shape[1]), int(stack_shape[2])
    if rows % 3 or width % 2 or (rows * 2 // 3) % 2 or rows == 0:
        raise ValueError(f"yuv420p frames need H and W even with H*3//2 rows, got ({rows}, {width})")
    return rows * 2 // 3, width


def yuv420_to_rgb(
    frames: torch.Tensor, *, size_hw: tuple[int, int] | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Converts and resizes a stack of YUV420 frames.

    Planes are resized first (bilinear, half-pixel centres, antialiased when shrinking; chroma straight
    from its half-resolution grid), then converted per pixel: the arithmetic is output-sized, and since
    the conversion is affine this equals converting first wherever chroma is smooth.

    Args:
        frames: (B, H*3//2, W) uint8 yuv420p frames (Y rows, then U and V planes of (H/2, W/2) each
            stored as H/4 rows of width W), on any device.
        size_hw: output `(h, w)` in pixels; None keeps `(H, W)`.
        dtype: of the arithmetic and the result; float16 halves the memory traffic on a GPU (whose
            network runs in fp16 anyway).

    Returns:
        (B, 3, h, w) RGB in 0..255 on the frames' device.
    """
    height, width = yuv420_frame_hw(tuple(frames.shape))
    batch = frames.shape[0]
    out_h, out_w = size_hw if size_hw is not None else (height, width)
    luma = frames[:, :height].unsqueeze(1).to(dtype)
    chroma = frames[:, height:].reshape(batch, 2, height // 2, width // 2).to(dtype)
    luma = _resize(luma, (out_h, out_w))
    chroma = _resize(chroma, (out_h, out_w))
    y = (luma - 16.0) * _Y_SCALE
    u = chroma[:, :1] - 128.0
    v = chroma[:, 1:] - 128.0
    rgb = torch.cat((y + _V_TO_R * v, y - _U_TO_G * u - _V_TO_G * v, y + _U_TO_B * u), dim=1)
    return rgb.clamp_(0.0, 255.0)


def normalize_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """Maps (B, 3, h, w) RGB in 0..255 to the model's input scale (ImageNet mean and std), in one kernel."""
    scale, shift = _normalisation(rgb.device, rgb.dtype)
    return torch.addcmul(shift, rgb, scale)


@functools.lru_cache(maxsize=16)
def _normalisation(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel `scale`, `shift` with rgb * scale + shift = (rgb - 255 mean) / (255 std), made once per
    device and dtype. The runtime runs a batch eagerly before a CUDA graph captures it, so they exist by
    then: a capture may not copy from the host."""
    scale = [1.0 / (255.0 * std) for std in IMAGENET_STD_RGB]
    shift = [-mean / std for mean, std in zip(IMAGENET_MEAN_RGB, IMAGENET_STD_RGB)]
    return tuple(torch.tensor(values, dtype=dtype).view(1, 3, 1, 1).to(device) for values in (scale, shift))


def rgb_to_yuv420_numpy(rgb: np.ndarray) -> np.ndarray:
    """Reference encoder for tests and synthetic data: (H, W, 3) uint8 RGB -> (H*3//2, W) uint8 yuv420p."""
    height, width = rgb.shape[:2]
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (0.299 * r + 0.587 * g + 0.114 * b) * 219 / 255
    u = 128 + (-0.168736 * r - 0.331264 * g + 0.5 * b) * 224 / 255
    v = 128 + (0.5 * r - 0.418688 * g - 0.081312 * b) * 224 / 255

    def half(plane: np.ndarray) -> np.ndarray:
        return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))

    planes = [y, half(u).reshape(height // 4, width), half(v).reshape(height // 4, width)]
    return np.clip(np.rint(np.concatenate(planes)), 0, 255).astype(np.uint8)


def _resize(planes: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    if tuple(planes.shape[-2:]) == tuple(size_hw):
        return planes
    shrinking = size_hw[0] < planes.shape[-2] or size_hw[1] < planes.shape[-1]
    return F.interpolate(planes, size=size_hw, mode="bilinear", align_corners=False, antialias=shrinking)
