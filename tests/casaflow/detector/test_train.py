"""Training pins reproducibility and resumability: targets decode back to the truth boxes; two steps in
one go equal one step, a checkpoint and a resumed step (bit for bit); a resume with different
arguments, or a new run over an existing checkpoint, is refused; the schedule warms up then decays."""

import math

import pytest
import torch

from casaflow.detector.augment import make_batch
from casaflow.detector.dataset import FrameDataset
from casaflow.detector.decode import decode_centernet
from casaflow.detector.model import CenterNetOutput, ModelConfig
from casaflow.detector.runtime import load_model
from casaflow.detector.targets import build_targets, centernet_loss
from casaflow.detector.train import TrainConfig, TrainingError, epoch_order, learning_rate_at, repeat_factors, train

TINY_INPUT_WH = (128, 64)


def config(synthetic_dirs, out_dir, **overrides) -> TrainConfig:
    values = dict(
        data_dirs=(str(synthetic_dirs[0]),),
        out_dir=str(out_dir),
        epochs=1,
        batch_size=2,
        frame_step=6,
        seed=3,
        device="cpu",
        warmup_steps=1,
        log_every_steps=1,
        model=ModelConfig(input_size_wh=TINY_INPUT_WH),
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_targets_decode_back_to_the_boxes(synthetic_dirs, tmp_path):
    dataset = FrameDataset([synthetic_dirs[0]], cache_dir=tmp_path, frame_step=6)
    _, boxes = make_batch(dataset, [0, 1], input_size_wh=(192, 128), device=torch.device("cpu"), augment=None, generator=torch.Generator())
    targets = build_targets(boxes, batch_size=2, num_classes=6, output_hw=(32, 48), stride=4)
    assert targets.num_objects == int((~boxes.ignore).sum()) > 0
    logits = torch.logit(targets.heatmap.clamp(1e-4, 1 - 1e-4))
    regression = torch.zeros(2 * 32 * 48, 4)
    centre = (targets.regression[:, 2:] >= 0).all(1) & (targets.regression[:, 2:] < 1).all(1)
    regression[targets.sample_index[centre]] = targets.regression[centre]
    regression = regression.view(2, 32, 48, 4).permute(0, 3, 1, 2)
    decoded = decode_centernet(logits, regression[:, :2], regression[:, 2:], stride=4, min_confidence=0.5)
    for frame in range(2):
        expected = boxes.xyxy[(boxes.batch_index == frame) & ~boxes.ignore]
        got = decoded.xyxy[frame][decoded.valid[frame]]
        assert len(got) == len(expected)
        cells = ((expected[:, :2] + expected[:, 2:]) / 8).floor()
        alone = (torch.cdist(cells, cells) == 0).sum(1) == 1  # objects sharing a centre cell share its regression
        distance = torch.cdist(expected[alone], got).min(dim=1).values
        assert alone.sum() >= 4 and (distance < 1e-3).all()
    perfect = CenterNetOutput(logits * 10, regression[:, :2], regression[:, 2:])
    blind = CenterNetOutput(torch.zeros_like(logits), torch.zeros_like(regression[:, :2]), torch.zeros_like(regression[:, 2:]))
    assert centernet_loss(perfect, targets).heatmap < 0.05 < centernet_loss(blind, targets).heatmap


def test_resume_continues_bit_for_bit(synthetic_dirs, tmp_path):
    straight = train(config(synthetic_dirs, tmp_path / "straight"), progress=lambda _: None)
    assert straight.steps == 2
    train(config(synthetic_dirs, tmp_path / "split", max_steps=1), progress=lambda _: None)
    lines = []
    resumed = train(config(synthetic_dirs, tmp_path / "split"), resume=True, progress=lines.append)
    assert resumed.steps == 2 and any("resumed" in line for line in lines)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 2
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for key, state in a["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg"], b["optimizer"]["state"][key]["exp_avg"])
    assert load_model(straight.weights_path).config.input_size_wh == TINY_INPUT_WH


def test_resume_refuses_changed_arguments_and_overwrites(synthetic_dirs, tmp_path):
    train(config(synthetic_dirs, tmp_path / "run", max_steps=1), progress=lambda _: None)
    with pytest.raises(TrainingError, match="exists"):
        train(config(synthetic_dirs, tmp_path / "run"), progress=lambda _: None)
    with pytest.raises(TrainingError, match="learning_rate"):
        train(config(synthetic_dirs, tmp_path / "run", learning_rate=1e-2), resume=True, progress=lambda _: None)


def test_training_with_evaluation_writes_metrics(synthetic_dirs, tmp_path):
    result = train(config(synthetic_dirs, tmp_path / "eval", eval_dirs=(str(synthetic_dirs[1]),)), progress=lambda _: None)
    assert result.report is not None and result.report.frames == 2
    assert (tmp_path / "eval" / "metrics.jsonl").read_text().count("map50") == 1
    assert result.best_weights_path is not None and result.best_weights_path.is_file()


def test_fine_tuning_starts_from_the_given_weights(synthetic_dirs, tmp_path):
    first = train(config(synthetic_dirs, tmp_path / "first"), progress=lambda _: None)
    lines = []
    tuned = train(config(synthetic_dirs, tmp_path / "tuned", max_steps=1, learning_rate=1e-9, init_weights=str(first.weights_path)), progress=lines.append)
    start, end = load_model(first.weights_path).state_dict(), load_model(tuned.weights_path).state_dict()
    assert any("initialised from" in line for line in lines)
    assert all(torch.allclose(start[name], end[name], atol=1e-2) for name in start if start[name].is_floating_point() and "running" not in name)
    with pytest.raises(TrainingError, match="architecture"):
        train(config(synthetic_dirs, tmp_path / "other", init_weights=str(first.weights_path), model=ModelConfig(input_size_wh=TINY_INPUT_WH, neck_channels=32)), progress=lambda _: None)


def test_repeat_factor_sampling_favours_frames_with_rare_classes(synthetic_dirs, tmp_path):
    dataset = FrameDataset([synthetic_dirs[0]], cache_dir=tmp_path, frame_step=6)
    assert torch.equal(repeat_factors(dataset, 0.0), torch.ones(len(dataset), dtype=torch.float64))
    repeats = repeat_factors(dataset, 1.0)
    assert (repeats >= 1).all() and repeats.max() > 1
    order = epoch_order(repeats, int(round(float(repeats.sum()))), generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(order, minlength=len(dataset))
    assert len(order) == round(float(repeats.sum())) and (counts >= repeats.floor().long()).all()
    assert counts[repeats.argmax()] >= counts[repeats.argmin()]


def test_learning_rate_schedule():
    rates = [learning_rate_at(step, total_steps=100, peak=1.0, warmup_steps=10) for step in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


@pytest.mark.parametrize("overrides", [{"epochs": 0}, {"batch_size": 0}, {"data_dirs": ()}, {"learning_rate": 0.0}, {"repeat_threshold": 2.0}])
def test_bad_config_raises(synthetic_dirs, tmp_path, overrides):
    with pytest.raises(TrainingError):
        config(synthetic_dirs, tmp_path, **overrides)
