"""`casaflow train-detector`, `evaluate-detector`, `pack-dataset` and `detect`: thin argument handling around `casaflow.detector`."""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from cluster.commands.options import float_in, positive_int, size_wh

POSITIVE = float_in(0.0, math.inf, above_low=True)
FRACTION = float_in(0.0, 1.0)


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train-detector",
        help="train the CenterNet detector on simulated folders",
        description="Train the detector on `casaflow simulate` folders; checkpoints and weights go to --out.",
    )
    train.add_argument("--data", type=Path, nargs="+", required=True, help="training folders (simulator output)")
    train.add_argument("--eval-data", type=Path, nargs="*", default=[], help="held-out folders, evaluated every epoch")
    train.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    train.add_argument("--epochs", type=positive_int, default=20)
    train.add_argument("--batch-size", type=positive_int, default=32)
    train.add_argument("--lr", type=POSITIVE, default=2e-3, help="AdamW peak learning rate")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    train.add_argument("--input-size", type=size_wh, default=(384, 224), metavar="WxH", help="network input, multiples of 32")
    train.add_argument("--frame-step", type=positive_int, default=5, help="use one frame in N of every clip")
    train.add_argument("--backbone", choices=("mobilenet_v3_small", "mobilenet_v3_large"), default="mobilenet_v3_small")
    train.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    train.add_argument("--max-steps", type=positive_int, default=None, help="stop early after N steps (smoke tests)")
    train.add_argument("--init-weights", type=Path, default=None, help="fine-tune from these weights instead of a random init")
    train.add_argument("--repeat-threshold", type=FRACTION, default=0.0, help="repeat-factor sampling of frames with rare classes (0: off)")
    train.add_argument("--eval-every", type=int, default=1, metavar="EPOCHS", help="evaluation period; 0: only at the end")
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "evaluate-detector",
        help="AP50 and AP per class of detector weights on held-out simulated folders",
        description="Score detector weights on `casaflow simulate` folders (objects >= 12 px tall and half visible).",
    )
    evaluate.add_argument("--data", type=Path, nargs="+", required=True, help="held-out simulator folders")
    evaluate.add_argument("--weights", type=Path, default=None, help="CenterNet weights (default: the packaged ones)")
    evaluate.add_argument("--frame-step", type=positive_int, default=25, help="use one frame in N of every clip")
    evaluate.add_argument("--cache", type=Path, default=Path("runs/eval-cache"), help="decoded-frame cache folder")
    evaluate.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    evaluate.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    evaluate.set_defaults(func=run_evaluate)

    pack = subparsers.add_parser(
        "pack-dataset",
        help="a compact copy of a simulated folder (one frame in N), to train on another machine",
        description="Re-encode one frame in N of a `casaflow simulate` folder with its truth; train on it with --frame-step 1.",
    )
    pack.add_argument("data", type=Path, help="simulator folder")
    pack.add_argument("--out", type=Path, required=True, help="packed folder")
    pack.add_argument("--frame-step", type=positive_int, default=25, help="keep one frame in N of every clip")
    pack.add_argument("--crf", type=int, choices=range(0, 52), default=23, metavar="0..51", help="libx264 constant rate factor")
    pack.set_defaults(func=run_pack)

    detect = subparsers.add_parser(
        "detect",
        help="run the detector over a clip and write detections to Parquet",
        description="Detect road users in a video; writes frame_index, ts, cls, confidence, x1, y1, x2, y2.",
    )
    detect.add_argument("video", type=Path, help="clip (anything PyAV opens)")
    detect.add_argument("--out", type=Path, required=True, help="output .parquet")
    detect.add_argument("--weights", type=Path, default=None, help="CenterNet weights (default: the packaged ones)")
    detect.add_argument("--coco-model", default=None, help="use this torchvision COCO detector with --weights instead")
    detect.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    detect.add_argument("--batch-size", type=positive_int, default=16, help="frames per model call")
    detect.add_argument("--min-confidence", type=FRACTION, default=0.3)
    detect.add_argument("--fps", type=POSITIVE, default=None, help="analyse this many frames per second (default: all)")
    detect.add_argument("--start-time", type=_utc_time, default=None, help="UTC time of pts 0 (default: the inventory's, else 1970-01-01)")
    detect.add_argument("--input-size", type=size_wh, default=None, metavar="WxH", help="network input (default: the trained size)")
    detect.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    detect.set_defaults(func=run_detect)


def run_train(args: argparse.Namespace) -> int:
    from casaflow.detector.dataset import DatasetError
    from casaflow.detector.model import ModelConfig
    from casaflow.detector.train import TrainConfig, TrainingError, train

    try:
        for folder in [*args.data, *args.eval_data]:
            if not (folder / "cameras.yaml").is_file():
                raise DatasetError(f"{folder} is not a simulator folder (no cameras.yaml)")
        config = TrainConfig(
            data_dirs=tuple(str(p.resolve()) for p in args.data),
            eval_dirs=tuple(str(p.resolve()) for p in args.eval_data),
            out_dir=str(args.out.resolve()),
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            seed=args.seed,
            frame_step=args.frame_step,
            device=args.device,
            num_threads=args.threads,
            model=ModelConfig(backbone=args.backbone, input_size_wh=args.input_size),
            max_steps=args.max_steps,
            eval_every_epochs=max(args.eval_every, 0),
            init_weights=str(args.init_weights.resolve()) if args.init_weights else None,
            repeat_threshold=args.repeat_threshold,
        )
        result = train(config, resume=args.resume, progress=_print_progress)
    except (DatasetError, TrainingError, ValueError, FileNotFoundError) as error:
        return _fail("train-detector", error)
    summary = f"trained {result.steps} steps in {result.seconds / 60:.1f} min; weights: {result.weights_path}"
    if result.report is not None:
        summary += f"\nheld-out mAP50 {result.report.map50:.3f}, mAP@[.5:.95] {result.report.map:.3f}\n{result.report.table()}"
    if result.best_weights_path is not None:
        summary += f"\nbest held-out weights: {result.best_weights_path}"
    print(summary)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from casaflow.detector.dataset import DatasetError, FrameDataset
    from casaflow.detector.evaluate import evaluate_runtime
    from casaflow.detector.runtime import load_detector

    try:
        runtime = load_detector(args.weights, device=args.device, min_confidence=0.05, num_threads=args.threads,
                                cpu_max_input_px=None)
        dataset = FrameDataset(args.data, cache_dir=args.cache, frame_step=args.frame_step, progress=_print_progress)
        report = evaluate_runtime(runtime, dataset, progress=_print_progress)
    except (DatasetError, ValueError, FileNotFoundError) as error:
        return _fail("evaluate-detector", error)
    print(f"mAP50 {report.map50:.3f}, mAP@[.5:.95] {report.map:.3f} on {report.frames} frames\n{report.table()}\n\n{report.found_as_table()}")
    return 0


def run_pack(args: argparse.Namespace) -> int:
    from casaflow.detector.dataset import DatasetError, pack_dataset

    try:
        started = time.perf_counter()
        frames = pack_dataset(args.data, args.out, frame_step=args.frame_step, crf=args.crf, progress=_print_progress)
    except (DatasetError, ValueError, OSError) as error:
        return _fail("pack-dataset", error)
    size_mb = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file()) / 1e6
    print(f"packed {frames} frames of {args.data} into {args.out} ({size_mb:.1f} MB) in {time.perf_counter() - started:.0f} s")
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from casaflow.detector.clip import EPOCH, detect_clip, inventory_start_time, write_detections
    from casaflow.detector.dataset import DatasetError
    from casaflow.detector.runtime import DetectorOptions, build_runtime

    try:
        if not args.video.is_file():
            raise FileNotFoundError(f"video not found: {args.video}")
        if args.coco_model is not None and args.weights is None:
            raise ValueError("--coco-model needs --weights (a local torchvision state dict)")
        options = DetectorOptions(
            model="coco" if args.coco_model else "centernet",
            coco_model=args.coco_model or DetectorOptions().coco_model,
            weights_path=str(args.weights) if args.weights else None,
            device=args.device,
            min_confidence=args.min_confidence,
            input_size_wh=args.input_size,
            num_threads=args.threads,
        )
        runtime = build_runtime(options)
        start_time = args.start_time or inventory_start_time(args.video)
        started = time.perf_counter()
        table, frames = detect_clip(
            runtime,
            args.video,
            start_time=start_time or EPOCH,
            analysis_fps=args.fps,
            batch_size=args.batch_size,
            progress=_print_progress,
        )
        path = write_detections(table, args.out)
    except (DatasetError, ValueError, FileNotFoundError, OSError) as error:
        return _fail("detect", error)
    seconds = time.perf_counter() - started
    counts = table.group_by("cls").aggregate([("cls", "count")]).to_pylist() if table.num_rows else []
    per_class = ", ".join(f"{row['cls_count']} {row['cls']}" for row in sorted(counts, key=lambda r: -r["cls_count"])) or "none"
    print(f"{frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-9):.0f} frames/s), {table.num_rows} detections ({per_class}) -> {path}")
    if start_time is None:
        print("ts counts from 1970-01-01: no --start-time given and no inventory beside the clip")
    return 0


def _fail(command: str, error: Exception) -> int:
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    print(f"casaflow {command}: error: {message}", file=sys.stderr)
    return 2


def _print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _utc_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO time like 2026-01-05T08:00:00Z, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
