"""Command-line options several commands share (kept free of heavy imports: `casaflow --help` stays fast)."""

import argparse
import math
from pathlib import Path


def positive_int(text: str) -> int:
    """argparse type of a count of at least one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def float_in(low: float, high: float, *, above_low: bool = False):
    """argparse type of a number in [low, high], or (low, high] with `above_low`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (low < value if above_low else low <= value) or not value <= high:
            bound = f"above {low:g}" if above_low else f"at least {low:g}"
            if math.isfinite(high):
                bound += f" and at most {high:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


def size_wh(text: str) -> tuple[int, int]:
    """argparse type of a network input `WxH`, both positive multiples of 32."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH like 512x288, got {text!r}") from None
    if width <= 0 or height <= 0 or width % 32 or height % 32:
        raise argparse.ArgumentTypeError(f"width and height must be positive multiples of 32, got {text!r}")
    return width, height


def add_detector_arguments(parser) -> None:
    """The detector options `casaflow up` and `casaflow run` share."""
    parser.add_argument("--weights", type=Path, default=None, help="detector weights (default: the packaged ones)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--input-size", type=size_wh, default=None, metavar="WxH",
                        help="detector input (default: the trained size; smaller is faster on a CPU)")
    parser.add_argument("--detector-replicas", type=positive_int, default=1, metavar="N",
                        help="detector replicas; Serve spreads the camera groups' batches over them (one H100 "
                             "replica carried 2,100-2,500 frames/s: 420-500 cameras at 5 fps)")
    parser.add_argument("--detector-gpus", type=float_in(0.0, 64.0), default=None, metavar="G",
                        help="GPUs each detector replica reserves (default: 1 on CUDA, 0 on a CPU; 0.5: two share one)")


def replica_options(args) -> dict:
    """LaunchOptions fields from the replica arguments of `add_detector_arguments`."""
    return {"detector_replicas": args.detector_replicas, "detector_gpus": args.detector_gpus}


def add_incident_arguments(parser) -> None:
    """The incident options `casaflow up` and `casaflow run` share."""
    parser.add_argument("--webhook", action="append", default=[], metavar="URL",
                        help="POST every incident event as JSON to URL (repeatable; retried on failure)")
    parser.add_argument("--evidence-retention-days", type=float, default=30.0,
                        help="delete evidence clips and snapshots older than this (0: keep them)")


def incident_options(args) -> dict:
    """LaunchOptions fields from `add_incident_arguments`; raises ValueError on a bad URL or retention."""
    from casaflow.alerts import check_webhook_url

    if args.evidence_retention_days < 0:
        raise ValueError(f"--evidence-retention-days must be >= 0, got {args.evidence_retention_days}")
    return {
        "webhooks": tuple(check_webhook_url(url) for url in args.webhook),
        "evidence_retention_s": args.evidence_retention_days * 86400.0 or None,
    }
