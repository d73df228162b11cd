"""The dataset pins the simulator contract as training input: `cameras.yaml` urls resolved beside it,
every `frame_step`-th decoded frame as yuv420p with the truth rows of that `frame_index`, a frame cache
reused on the next run, and clear `DatasetError`s for missing or malformed folders."""

import numpy as np
import pandas as pd
import pytest
import torch

from casaflow.detections import CLASS_IDS
from casaflow.detector.augment import AugmentConfig, _crop_or_pad, make_batch
from casaflow.detector.dataset import DatasetError, FrameDataset, iter_yuv420_frames, pack_dataset, read_clips


def test_frames_and_truth_follow_the_contract(synthetic_dirs, tmp_path):
    train_dir, _ = synthetic_dirs
    messages = []
    dataset = FrameDataset([train_dir], cache_dir=tmp_path, frame_step=5, progress=messages.append)
    assert len(dataset) == 5 and len(messages) == 1
    assert dataset.frame(0).shape == (168, 192) and dataset.frame(0).dtype == np.uint8
    assert dataset.frame_size_wh(0) == (192, 112)
    rows = pd.read_parquet(train_dir / "truth" / "frames.parquet")
    for index in range(len(dataset)):
        frame_index = dataset.samples[index][2]
        assert frame_index == 5 * index
        expected = rows[rows.frame_index == frame_index]
        got = dataset.truth(index)
        assert np.allclose(got.xyxy, expected[["x1", "y1", "x2", "y2"]].to_numpy())
        assert got.class_id.tolist() == [CLASS_IDS[c] for c in expected.cls]
    decoded = [frame for _, _, frame in iter_yuv420_frames(train_dir / "video" / "cam01.mp4")]
    assert np.array_equal(decoded[10], dataset.frame(2))
    again = FrameDataset([train_dir], cache_dir=tmp_path, frame_step=5, progress=messages.append)
    assert len(messages) == 1 and np.array_equal(again.frame(3), dataset.frame(3))


def test_clip_timestamps_and_inventory(synthetic_dirs):
    train_dir, _ = synthetic_dirs
    start_time, clips = read_clips(train_dir)
    assert start_time.isoformat() == "2026-01-05T08:00:00+00:00"
    assert clips[0].camera_id == "cam01" and clips[0].video_path == (train_dir / "video" / "cam01.mp4").resolve()
    pts = [pts_s for _, pts_s, _ in iter_yuv420_frames(clips[0].video_path)]
    assert np.allclose(pts[:3], [0.0, 0.04, 0.08])


def test_bad_folders_raise_dataset_errors(tmp_path, synthetic_dirs):
    with pytest.raises(DatasetError, match="cameras.yaml"):
        FrameDataset([tmp_path / "nowhere"], cache_dir=tmp_path / "cache")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "cameras.yaml").write_text("cameras: [{url: x}]")
    with pytest.raises(DatasetError):
        read_clips(tmp_path / "bad")
    (tmp_path / "notvideo.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(DatasetError):
        list(iter_yuv420_frames(tmp_path / "notvideo.mp4"))
    with pytest.raises(DatasetError, match="truth"):
        (tmp_path / "bad" / "cameras.yaml").write_text("cameras: [{id: a, url: x.mp4}]")
        FrameDataset([tmp_path / "bad"], cache_dir=tmp_path / "cache")


def test_a_packed_folder_holds_the_kept_frames_and_their_truth(synthetic_dirs, tmp_path):
    train_dir, _ = synthetic_dirs
    assert pack_dataset(train_dir, tmp_path / "packed", frame_step=5, crf=18) == 5
    original = FrameDataset([train_dir], cache_dir=tmp_path / "cache", frame_step=5)
    packed = FrameDataset([tmp_path / "packed"], cache_dir=tmp_path / "cache", frame_step=1)
    assert len(packed) == len(original) == 5
    for index in range(len(packed)):
        assert packed.samples[index][2] == index
        assert np.array_equal(packed.truth(index).xyxy, original.truth(index).xyxy)
        assert np.array_equal(packed.truth(index).class_id, original.truth(index).class_id)
        difference = np.abs(packed.frame(index).astype(np.int16) - original.frame(index).astype(np.int16))
        assert difference.mean() < 3.0
    rows = pd.read_parquet(tmp_path / "packed" / "truth" / "frames.parquet")
    assert sorted(set(rows.source_frame_index)) <= [0, 5, 10, 15, 20] and set(rows.frame_index) <= set(range(5))
    assert read_clips(tmp_path / "packed")[1][0].video_path == (tmp_path / "packed" / "video" / "cam01.mp4").resolve()
    with pytest.raises(DatasetError):
        pack_dataset(tmp_path / "nowhere", tmp_path / "out", frame_step=5)


def test_plain_batch_scales_boxes_exactly(synthetic_dirs, tmp_path):
    dataset = FrameDataset([synthetic_dirs[0]], cache_dir=tmp_path, frame_step=6)
    images, boxes = make_batch(
        dataset, [0, 2], input_size_wh=(96, 64), device=torch.device("cpu"), augment=None, generator=torch.Generator().manual_seed(0)
    )
    assert images.shape == (2, 3, 64, 96)
    first = dataset.truth(0)
    got = boxes.xyxy[boxes.batch_index == 0].numpy()
    assert np.allclose(got, np.clip(first.xyxy * [0.5, 64 / 112, 0.5, 64 / 112], 0, [96, 64, 96, 64]), atol=1e-4)


def test_augmented_batches_are_reproducible_and_boxes_stay_inside(synthetic_dirs, tmp_path):
    dataset = FrameDataset([synthetic_dirs[0]], cache_dir=tmp_path, frame_step=3)
    def batch(seed):
        return make_batch(
            dataset, [0, 1, 2, 3], input_size_wh=(96, 64), device=torch.device("cpu"), augment=AugmentConfig(), generator=torch.Generator().manual_seed(seed)
        )
    (images_a, boxes_a), (images_b, boxes_b), (images_c, _) = batch(5), batch(5), batch(6)
    assert torch.equal(images_a, images_b) and torch.equal(boxes_a.xyxy, boxes_b.xyxy)
    assert not torch.equal(images_a, images_c)
    assert images_a.min() >= 0 and images_a.max() <= 255
    assert (boxes_a.xyxy[:, 2] > boxes_a.xyxy[:, 0]).all() and (boxes_a.xyxy[:, [0, 2]] <= 96).all() and (boxes_a.xyxy >= 0).all()


def test_crop_or_pad_moves_pixels_by_the_offset():
    image = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    out = _crop_or_pad(image, torch.tensor([[1, 0], [-2, -1]]), out_hw=(4, 5))
    assert torch.equal(out[0, :, :, :4], image[0, :, :, 1:])
    assert (out[0, :, :, 4] == 114).all()
    assert torch.equal(out[1, :, 1:, 2:], image[1, :, :3, :3])
    assert (out[1, :, 0] == 114).all()
