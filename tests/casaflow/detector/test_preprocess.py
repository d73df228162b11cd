"""Preprocessing pins the YUV420 layout and BT.601 limited-range conversion: it matches a numpy reference
exactly at full size, resizing the planes before converting equals converting then resizing, it agrees
with FFmpeg's own conversion, and malformed stacks are refused."""

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from casaflow.detector.preprocess import (
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    normalize_rgb,
    rgb_to_yuv420_numpy,
    yuv420_frame_hw,
    yuv420_to_rgb,
)


def upsample2_bilinear(plane: np.ndarray) -> np.ndarray:
    """2x bilinear upsampling with half-pixel centres and edge clamping, in numpy."""
    height, width = plane.shape

    def axis_weights(n_out: int, n_in: int):
        source = np.clip((np.arange(n_out) + 0.5) / 2 - 0.5, 0, n_in - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        return low, high, source - low

    r0, r1, wr = axis_weights(2 * height, height)
    c0, c1, wc = axis_weights(2 * width, width)
    rows = plane[r0] * (1 - wr)[:, None] + plane[r1] * wr[:, None]
    return rows[:, c0] * (1 - wc)[None, :] + rows[:, c1] * wc[None, :]


def reference_rgb(frame: np.ndarray) -> np.ndarray:
    """(H*3//2, W) yuv420p -> (3, H, W) float RGB, BT.601 limited range, written out by hand."""
    height, width = frame.shape[0] * 2 // 3, frame.shape[1]
    y = frame[:height].astype(np.float64)
    chroma = frame[height:].reshape(2, height // 2, width // 2).astype(np.float64)
    u, v = (upsample2_bilinear(p) - 128.0 for p in chroma)
    y = (y - 16.0) * 255.0 / 219.0
    r = y + 1.402 * 255 / 224 * v
    g = y - 0.344136 * 255 / 224 * u - 0.714136 * 255 / 224 * v
    b = y + 1.772 * 255 / 224 * u
    return np.clip(np.stack([r, g, b]), 0, 255)


def random_frames(batch: int, height: int, width: int, *, seed: int, low: int = 0, high: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(low, high, (batch, height * 3 // 2, width), dtype=np.uint8)


def test_full_size_matches_numpy_reference():
    frames = random_frames(3, 36, 52, seed=0)
    rgb = yuv420_to_rgb(torch.from_numpy(frames)).numpy()
    assert rgb.shape == (3, 3, 36, 52) and rgb.dtype == np.float32
    for frame, converted in zip(frames, rgb):
        assert np.abs(converted - reference_rgb(frame)).max() < 1e-3


def test_resizing_planes_first_equals_converting_first_for_flat_chroma():
    frames = random_frames(2, 48, 80, seed=1, low=16, high=236)
    frames[:, 48:] = 128
    full = torch.from_numpy(np.stack([reference_rgb(f) for f in frames])).float()
    for size_hw in ((24, 40), (32, 64), (64, 96)):
        expected = F.interpolate(full, size=size_hw, mode="bilinear", align_corners=False, antialias=size_hw[0] < 48)
        got = yuv420_to_rgb(torch.from_numpy(frames), size_hw=size_hw)
        assert got.shape == (2, 3, *size_hw)
        assert (got - expected).abs().max() < 0.05


def test_resized_output_agrees_with_ffmpeg_resize():
    height, width = 72, 128
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 / width, yy * 255 / height, 128 + 60 * np.sin(xx / 9.0)], axis=2).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    ffmpeg_rgb = frame.to_ndarray(format="rgb24", width=64, height=32).astype(np.float32).transpose(2, 0, 1)
    ours = yuv420_to_rgb(torch.from_numpy(frame.to_ndarray()[None]), size_hw=(32, 64))[0].numpy()
    assert np.abs(ours - ffmpeg_rgb).mean() < 3.0


def test_agrees_with_ffmpeg_conversion():
    height, width = 64, 96
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 / width, yy * 255 / height, 128 + 60 * np.sin(xx / 9.0)], axis=2).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    yuv = frame.to_ndarray()
    ffmpeg_rgb = frame.to_ndarray(format="rgb24").astype(np.float32).transpose(2, 0, 1)
    ours = yuv420_to_rgb(torch.from_numpy(yuv[None]))[0].numpy()
    assert np.abs(ours - ffmpeg_rgb).mean() < 2.0


def test_numpy_encoder_round_trips():
    yy, xx = np.mgrid[0:40, 0:60]
    rgb = np.stack([xx * 4, yy * 6, np.full_like(xx, 90)], axis=2).astype(np.uint8)
    back = yuv420_to_rgb(torch.from_numpy(rgb_to_yuv420_numpy(rgb)[None]))[0].numpy().transpose(1, 2, 0)
    assert np.abs(back - rgb).mean() < 2.0


def test_normalisation_uses_imagenet_statistics():
    rgb = torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1) * 255 + torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1) * 255
    assert torch.allclose(normalize_rgb(rgb), torch.ones(1, 3, 1, 1), atol=1e-5)
    frames = torch.from_numpy(random_frames(2, 36, 52, seed=3))
    out = normalize_rgb(yuv420_to_rgb(frames, size_hw=(32, 64)))
    assert out.shape == (2, 3, 32, 64) and out.dtype == torch.float32


@pytest.mark.parametrize("shape", [(10, 15), (1, 16, 15), (1, 17, 16), (1, 0, 16), (2, 3, 15, 16), (1, 15, 17)])
def test_malformed_stacks_are_refused(shape):
    with pytest.raises(ValueError):
        yuv420_frame_hw(shape)


def test_frame_size_of_stack():
    assert yuv420_frame_hw((4, 540, 640)) == (360, 640)


def test_fp16_conversion_matches_fp32_within_half_precision():
    frames = torch.from_numpy(random_frames(2, 36, 52, seed=4))
    half = yuv420_to_rgb(frames, dtype=torch.float16)
    assert half.dtype == torch.float16
    assert (half.float() - yuv420_to_rgb(frames)).abs().max() <= 0.5
