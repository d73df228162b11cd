"""Fixtures for the detector tests: tiny synthetic simulator folders and random-weight detectors."""

from pathlib import Path

import pytest
import torch

from casaflow.detector.model import ModelConfig, build_model
from casaflow.detector.runtime import save_model
from casaflow.detector.synthetic import write_synthetic_dataset

TINY_INPUT_WH = (128, 64)


@pytest.fixture(scope="session")
def synthetic_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """(training folder: 24 frames, held-out folder: 12 frames), 192x112 pixels, one camera each."""
    root = tmp_path_factory.mktemp("synthetic")
    train_dir = write_synthetic_dataset(root / "train", seed=1, num_frames=24)
    eval_dir = write_synthetic_dataset(root / "eval", seed=2, num_frames=12)
    return train_dir, eval_dir


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """Random CenterNet weights with a 128x64 input."""
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    return save_model(build_model(ModelConfig(input_size_wh=TINY_INPUT_WH)), path)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small tensors on two threads spend more time in OpenMP barriers than in maths; restore afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
