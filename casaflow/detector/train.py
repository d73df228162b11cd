"""Training loop: AdamW, linear warm-up then cosine decay, checkpoints every N steps, exact resume.

A step is a pure function of `(seed, step)` and the checkpointed state: the epoch's sample order comes
from a generator seeded with `(seed, epoch)` and each batch's augmentation from one seeded with
`(seed, step)`, so a resumed run continues exactly where the interrupted one stopped.

Outputs in `out_dir`: `checkpoint.pt` (latest training state), `detector.pt` (final inference weights,
fp16), `detector_best.pt` (best held-out mAP50, when evaluation data is given), `metrics.jsonl`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from casaflow.detections import CLASS_NAMES
from casaflow.detector.augment import AugmentConfig, make_batch
from casaflow.detector.dataset import FrameDataset
from casaflow.detector.evaluate import EvaluationReport, evaluate_runtime
from casaflow.detector.model import CenterNet, ModelConfig
from casaflow.detector.preprocess import normalize_rgb
from casaflow.detector.runtime import WEIGHTS_FORMAT, CenterNetDetector, DetectorRuntime, load_model, resolve_device, save_model
from casaflow.detector.targets import build_targets, centernet_loss

Progress = Callable[[str], None]
CHECKPOINT_NAME = "checkpoint.pt"
RESUMABLE_OVERRIDES = ("epochs", "device", "num_threads", "eval_dirs", "log_every_steps", "checkpoint_every_steps", "max_steps", "eval_every_epochs")


class TrainingError(ValueError):
    """Bad training arguments or an incompatible checkpoint."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint).

    Attributes:
        data_dirs: simulator folders to train on.
        out_dir: checkpoints, weights and metrics go here.
        eval_dirs: held-out simulator folders, evaluated after each `eval_every_epochs` epochs and at the end.
        epochs: passes over the training frames.
        batch_size: frames per step.
        learning_rate: AdamW peak learning rate.
        weight_decay: AdamW decoupled weight decay.
        warmup_steps: linear warm-up steps before the cosine decay (at most a fifth of all steps).
        seed: model init, sample order and augmentation.
        frame_step: keep one frame in `frame_step` of every clip (consecutive frames are near-duplicates).
        device: 'auto', 'cpu' or 'cuda'.
        num_threads: torch CPU threads (None: torch's default).
        model: architecture and input size.
        augment: augmentation ranges.
        checkpoint_every_steps: also checkpoint at every epoch end and when stopping.
        log_every_steps: progress line period.
        eval_every_epochs: evaluation period in epochs (0: only at the end).
        max_steps: stop after this many steps in total (smoke tests); None trains all epochs.
        init_weights: start from these weights (fine-tuning) instead of a random initialisation; the model
            config must match.
        repeat_threshold: repeat-factor sampling (LVIS): a frame whose rarest class appears in a fraction f < t
            of the frames is seen about sqrt(t / f) times per epoch; 0 samples every frame once.
    """

    data_dirs: tuple[str, ...]
    out_dir: str
    eval_dirs: tuple[str, ...] = ()
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    seed: int = 0
    frame_step: int = 5
    device: str = "auto"
    num_threads: int | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    checkpoint_every_steps: int = 200
    log_every_steps: int = 20
    eval_every_epochs: int = 1
    max_steps: int | None = None
    init_weights: str | None = None
    repeat_threshold: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "frame_step", "checkpoint_every_steps", "log_every_steps"):
            if getattr(self, name) < 1:
                raise TrainingError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.data_dirs:
            raise TrainingError("no training data folders given")
        if not 0.0 <= self.repeat_threshold <= 1.0:
            raise TrainingError(f"repeat_threshold must be in [0, 1], got {self.repeat_threshold}")
        if not self.learning_rate > 0:
            raise TrainingError(f"learning_rate must be positive, got {self.learning_rate}")

    def to_dict(self) -> dict:
        values = asdict(self)
        values["model"] = self.model.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        values = dict(values)
        values["model"] = ModelConfig.from_dict(values["model"])
        augment = dict(values["augment"])
        augment["scale_range"] = tuple(augment["scale_range"])
        values["augment"] = AugmentConfig(**augment)
        values["data_dirs"] = tuple(values["data_dirs"])
        values["eval_dirs"] = tuple(values["eval_dirs"])
        return cls(**values)


@dataclass(frozen=True)
class TrainResult:
    steps: int
    seconds: float
    weights_path: Path
    best_weights_path: Path | None
    report: EvaluationReport | None


def learning_rate_at(step: int, *, total_steps: int, peak: float, warmup_steps: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to 0 at `total_steps`."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return peak * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def repeat_factors(dataset: FrameDataset, threshold: float, *, min_visible: float = 0.5) -> torch.Tensor:
    """Per-frame repeat factors `max(1, max_c sqrt(threshold / f_c))` over the classes c in the frame.

    `f_c` is the fraction of frames with at least one object of class c at least `min_visible` visible.
    """
    present = torch.zeros(len(dataset), len(CLASS_NAMES), dtype=torch.bool)
    for index in range(len(dataset)):
        truth = dataset.truth(index)
        present[index, torch.from_numpy(truth.class_id[truth.visible >= min_visible])] = True
    if threshold <= 0 or len(dataset) == 0:
        return torch.ones(len(dataset), dtype=torch.float64)
    frequency = present.double().mean(0).clamp(min=1.0 / len(dataset))
    per_class = (threshold / frequency).sqrt().clamp(min=1.0)
    return torch.where(present, per_class, torch.ones_like(per_class)).amax(1)


def epoch_order(repeats: torch.Tensor, epoch_size: int, *, generator: torch.Generator) -> torch.Tensor:
    """A shuffled epoch of `epoch_size` frame indices: each frame `floor(r)` times, the rest drawn by `r`'s fraction."""
    whole = repeats.floor().long()
    base = torch.repeat_interleave(torch.arange(len(repeats)), whole)
    missing = epoch_size - len(base)
    if missing > 0:
        fraction = (repeats - whole).float()
        weights = fraction if int((fraction > 0).sum()) >= missing else fraction + 1e-6
        base = torch.cat([base, torch.multinomial(weights, missing, replacement=False, generator=generator)])
    return base[torch.randperm(len(base), generator=generator)][:epoch_size]


def train(config: TrainConfig, *, resume: bool = False, progress: Progress = print) -> TrainResult:
    """Trains (or resumes) a detector as `config` says; see the module docstring for the outputs."""
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    checkpoint = None
    if resume and checkpoint_path.is_file():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        config = _resumed_config(TrainConfig.from_dict(checkpoint["train_config"]), config)
    elif checkpoint_path.is_file() and not resume:
        raise TrainingError(f"{checkpoint_path} exists: pass --resume to continue it, or choose another --out")
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    started = time.perf_counter()

    cache_dir = out_dir / "frame_cache"
    dataset = FrameDataset(config.data_dirs, cache_dir=cache_dir, frame_step=config.frame_step, progress=progress)
    eval_dataset = (
        FrameDataset(config.eval_dirs, cache_dir=cache_dir, frame_step=config.frame_step, progress=progress) if config.eval_dirs else None
    )
    repeats = repeat_factors(dataset, config.repeat_threshold)
    epoch_size = int(round(float(repeats.sum())))
    steps_per_epoch = epoch_size // config.batch_size
    if steps_per_epoch == 0:
        raise TrainingError(f"{len(dataset)} training frames are fewer than one batch of {config.batch_size}")
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = min(config.warmup_steps, max(total_steps // 5, 1))
    last_step = min(total_steps, config.max_steps) if config.max_steps is not None else total_steps

    torch.manual_seed(config.seed)
    model = CenterNet(config.model)
    if config.init_weights is not None and checkpoint is None:
        _load_initial_weights(model, config.init_weights)
        progress(f"initialised from {config.init_weights}")
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    step, best_map50 = 0, -1.0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step, best_map50 = int(checkpoint["step"]), float(checkpoint["best_map50"])
        progress(f"resumed from {checkpoint_path} at step {step}/{total_steps}")
    progress(
        f"training on {len(dataset)} frames ({len(dataset.clips)} clips, {epoch_size} samples/epoch), {steps_per_epoch} steps/epoch x {config.epochs} epochs, "
        f"batch {config.batch_size}, input {config.model.input_size_wh[0]}x{config.model.input_size_wh[1]}, device {device}"
    )

    def batch_at(step: int):
        """Step `step`'s frames, augmented: a pure function of (seed, step), so it can be built ahead."""
        epoch, position = divmod(step, steps_per_epoch)
        order = epoch_order(repeats, epoch_size, generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
        indices = order[position * config.batch_size : (position + 1) * config.batch_size].tolist()
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        return make_batch(dataset, indices, input_size_wh=config.model.input_size_wh, device=device, augment=config.augment, generator=generator)

    report = None
    window_start, window_images, window_loss = time.perf_counter(), 0, torch.zeros(4)
    prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batches")
    try:
        upcoming = prefetch.submit(batch_at, step) if step < last_step else None
        while step < last_step:
            epoch = step // steps_per_epoch
            images, boxes = upcoming.result()
            upcoming = prefetch.submit(batch_at, step + 1) if step + 1 < last_step else None
            batch_size = images.shape[0]
            model.train()
            output = model(normalize_rgb(images).contiguous(memory_format=torch.channels_last))
            targets = build_targets(
                boxes, batch_size=batch_size, num_classes=config.model.num_classes, output_hw=tuple(output.heatmap_logits.shape[-2:]), stride=model.stride
            )
            loss = centernet_loss(output, targets)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(step, total_steps=total_steps, peak=config.learning_rate, warmup_steps=warmup_steps)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            step += 1
            window_images += batch_size
            window_loss += torch.stack([part.detach().float().cpu() for part in loss])

            if step % config.log_every_steps == 0 or step == last_step:
                elapsed = time.perf_counter() - window_start
                rate = window_images / max(elapsed, 1e-9)
                mean = (window_loss / max(window_images / config.batch_size, 1)).tolist()
                eta_s = (last_step - step) * config.batch_size / max(rate, 1e-9)
                progress(
                    f"epoch {epoch + 1}/{config.epochs} step {step}/{total_steps} loss {mean[0]:.3f} "
                    f"(heatmap {mean[1]:.3f} size {mean[2]:.3f} offset {mean[3]:.3f}) lr {optimizer.param_groups[0]['lr']:.2e} "
                    f"{rate:.1f} img/s eta {_duration(eta_s)}"
                )
                window_start, window_images, window_loss = time.perf_counter(), 0, torch.zeros(4)

            epoch_end = step % steps_per_epoch == 0
            if epoch_end and eval_dataset is not None and config.eval_every_epochs and (step // steps_per_epoch) % config.eval_every_epochs == 0 and step < total_steps:
                report = _evaluate(model, eval_dataset, device=device, progress=progress)
                best_map50 = _keep_best(model, report, best_map50, out_dir=out_dir, config=config, step=step)
                _append_metrics(out_dir, step=step, report=report)
            if epoch_end or step % config.checkpoint_every_steps == 0 or step == last_step:
                _save_checkpoint(checkpoint_path, model, optimizer, config=config, step=step, best_map50=best_map50)
    finally:
        prefetch.shutdown(cancel_futures=True)

    if step >= total_steps and eval_dataset is not None:
        report = _evaluate(model, eval_dataset, device=device, progress=progress)
        best_map50 = _keep_best(model, report, best_map50, out_dir=out_dir, config=config, step=step)
        _append_metrics(out_dir, step=step, report=report)
    metadata = {"step": step, "train_config": config.to_dict()}
    if report is not None:
        metadata["evaluation"] = report.to_dict()
    weights_path = save_model(model, out_dir / "detector.pt", metadata=metadata)
    best_path = out_dir / "detector_best.pt"
    return TrainResult(step, time.perf_counter() - started, weights_path, best_path if best_path.is_file() else None, report)


def _load_initial_weights(model: CenterNet, path: str) -> None:
    """Fine-tuning start: same architecture required; the input size may differ (the network is fully convolutional)."""
    try:
        initial = load_model(path)
    except (FileNotFoundError, ValueError) as error:
        raise TrainingError(str(error)) from error
    if replace(initial.config, input_size_wh=model.config.input_size_wh) != model.config:
        raise TrainingError(f"{path} has another architecture ({initial.config.to_dict()}) than this run ({model.config.to_dict()})")
    model.load_state_dict(initial.state_dict())


def _resumed_config(saved: TrainConfig, requested: TrainConfig) -> TrainConfig:
    """The saved config with the overrides a resume may change; anything else must match."""
    changes = {name: getattr(requested, name) for name in RESUMABLE_OVERRIDES}
    merged = replace(saved, **changes)
    differing = [name for name, value in asdict(requested).items() if asdict(merged)[name] != value]
    if differing:
        raise TrainingError(f"checkpoint was trained with different {', '.join(differing)}; use another --out or the same arguments")
    return merged


def _save_checkpoint(path: Path, model: CenterNet, optimizer, *, config: TrainConfig, step: int, best_map50: float) -> None:
    state = model.state_dict()
    payload = {
        "format": WEIGHTS_FORMAT,
        "config": config.model.to_dict(),
        "state_dict": state,
        "model": state,
        "optimizer": optimizer.state_dict(),
        "train_config": config.to_dict(),
        "step": step,
        "best_map50": best_map50,
    }
    temporary = path.with_suffix(".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)


def _evaluate(model: CenterNet, dataset: FrameDataset, *, device: torch.device, progress: Progress) -> EvaluationReport:
    runtime = DetectorRuntime(CenterNetDetector(model), device=str(device), min_confidence=0.05, top_k=100)
    report = evaluate_runtime(runtime, dataset, progress=progress)
    per_class = ", ".join(f"{m.class_name} {m.ap50:.3f}" for m in report.per_class if m.instances)
    progress(f"held-out AP50: {per_class}; mAP50 {report.map50:.3f}, mAP@[.5:.95] {report.map:.3f} on {report.frames} frames")
    return report


def _keep_best(model: CenterNet, report: EvaluationReport, best_map50: float, *, out_dir: Path, config: TrainConfig, step: int) -> float:
    if not report.map50 > best_map50:
        return best_map50
    metadata = {"step": step, "train_config": config.to_dict(), "evaluation": report.to_dict()}
    save_model(model, out_dir / "detector_best.pt", metadata=metadata)
    return report.map50


def _append_metrics(out_dir: Path, *, step: int, report: EvaluationReport) -> None:
    with open(out_dir / "metrics.jsonl", "a") as out:
        out.write(json.dumps({"step": step, **report.to_dict()}) + "\n")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
