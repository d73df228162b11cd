"""Detector throughput through the deployment's batch function, beside torchvision's SSDlite, in one run.

    .venv/bin/python bench/bench_detector.py                       # this machine, default batch sizes
    .venv/bin/python bench/bench_detector.py --device cuda --batch-sizes 64,128,256,512

Each row times `DetectorRuntime.detect_stacks([stack])` (exactly what `DetectorDeployment.detect_batch`
runs): uint8 YUV420 upload, conversion, resize and normalisation on the device, the network, batched
decoding and the copy back to per-frame numpy arrays; on CUDA with and without CUDA graphs (the
default replays the device work as one graph per padded batch size), each with one caller and with
several threads at once. The model-only column times the network alone on an already prepared batch.
`--stages` times each stage of one batch alone. Weights are random (throughput does not depend on them).
Goals (issue 3): >= 40 images/s on the 2-core CPU, >= 10,000 images/s on an H100, both including the
YUV conversion.
"""

from __future__ import annotations

import argparse
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from casaflow.detector.coco import CocoDetectorAdapter, build_coco_model  # noqa: E402
from casaflow.detector.model import BACKBONES, ModelConfig, build_model  # noqa: E402
from casaflow.detector.decode import scale_to_source, split_detections  # noqa: E402
from casaflow.detector.preprocess import normalize_rgb, yuv420_to_rgb  # noqa: E402
from casaflow.detector.runtime import CenterNetDetector, DetectorRuntime  # noqa: E402


def concurrent_images_per_second(step, batch: int, *, callers: int, seconds: float) -> float:
    """Frames per second of `callers` threads calling `step` back to back (as the deployment's concurrent
    batches do), after one warm-up call per thread."""
    if callers == 1:
        return images_per_second(step, batch, seconds=seconds, device=torch.device("cpu"))
    barrier, counts = threading.Barrier(callers + 1), [0] * callers

    def caller(slot: int) -> None:
        step()
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            step()
            counts[slot] += batch

    deadline = [float("inf")]
    threads = [threading.Thread(target=caller, args=(slot,)) for slot in range(callers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    deadline[0] = started + seconds
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def images_per_second(step, batch: int, *, seconds: float, device: torch.device) -> float:
    """Median rate over timed repetitions after two warm-up calls."""
    for _ in range(2):
        step()
    rates, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds or len(rates) < 3:
        begin = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        rates.append(batch / (time.perf_counter() - begin))
    return float(np.median(rates))


def stage_milliseconds(runtime: DetectorRuntime, frames: np.ndarray, *, repeats: int = 20) -> dict[str, float]:
    """Median milliseconds of each stage of one batch, run alone and synchronised (no overlap between
    stages or batches): where the time of `detect_stacks` goes."""
    device, (width, height) = runtime.device, runtime.input_size_wh
    staging = torch.empty(frames.shape, dtype=torch.uint8, pin_memory=True)
    host = torch.from_numpy(frames)
    uploaded = staging.to(device)
    rgb = {dtype: yuv420_to_rgb(uploaded, size_hw=(height, width), dtype=dtype) for dtype in (torch.float32, torch.float16)}
    boxes = []

    @torch.inference_mode()
    def network_and_peaks() -> None:
        with runtime._autocast():
            boxes[:] = [runtime.detector.detect_rgb(rgb[torch.float16], min_confidence=runtime.min_confidence, top_k=runtime.top_k)]

    stages = {
        "copy into pinned host memory": lambda: staging.copy_(host),
        "upload (pinned to device)": lambda: staging.to(device, non_blocking=True),
        "YUV to RGB + resize, fp32": lambda: yuv420_to_rgb(uploaded, size_hw=(height, width)),
        "YUV to RGB + resize, fp16": lambda: yuv420_to_rgb(uploaded, size_hw=(height, width), dtype=torch.float16),
        "normalise + network + peaks (fp16)": network_and_peaks,
        "scale + copy back + split": lambda: split_detections(scale_to_source(boxes[0], input_size_wh=(width, height),
                                                                              source_size_wh=(frames.shape[2], frames.shape[1] * 2 // 3))),
    }
    result = {}
    for name, stage in stages.items():
        times = []
        for _ in range(repeats + 2):
            torch.cuda.synchronize(device)
            begin = time.perf_counter()
            stage()
            torch.cuda.synchronize(device)
            times.append(time.perf_counter() - begin)
        result[name] = 1000 * float(np.median(times[2:]))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--batch-sizes", default="1,4,8,16,32,64", help="comma-separated")
    parser.add_argument("--source-size", default="640x360", help="YUV frame WxH")
    parser.add_argument("--input-size", default="384x224", help="CenterNet input WxH")
    parser.add_argument("--backbone", default="mobilenet_v3_small", choices=BACKBONES)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row and model")
    parser.add_argument("--no-fp16", action="store_true", help="fp32 on CUDA")
    parser.add_argument("--skip-ssdlite", action="store_true")
    parser.add_argument("--stages", action="store_true", help="on CUDA, also time each stage of the largest batch alone")
    parser.add_argument("--callers", type=int, default=None, help="threads calling the runtime at once (default: 2 on CUDA, as the deployment runs batches)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    source_w, source_h = (int(v) for v in args.source_size.split("x"))
    input_wh = tuple(int(v) for v in args.input_size.split("x"))
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))
    fp16 = None if not args.no_fp16 else False
    torch.manual_seed(0)
    detector = CenterNetDetector(build_model(ModelConfig(backbone=args.backbone, input_size_wh=input_wh)))
    centernet = DetectorRuntime(detector, device=str(device), fp16=fp16)
    eager = DetectorRuntime(detector, device=str(device), fp16=fp16, cuda_graphs=False) if centernet.cuda_graphs else None
    ssdlite = None
    if not args.skip_ssdlite:
        adapter = CocoDetectorAdapter(build_coco_model("ssdlite320_mobilenet_v3_large"), input_size_wh=(320, 320))
        ssdlite = DetectorRuntime(adapter, device=str(device), fp16=fp16)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU"
    print(f"# {name}, torch {torch.__version__}, {torch.get_num_threads()} threads, fp16 {centernet.fp16}")
    print(f"# frames {source_w}x{source_h} yuv420p; CenterNet {args.backbone} at {input_wh[0]}x{input_wh[1]}; SSDlite at 320x320")
    callers = args.callers or (2 if device.type == "cuda" else 1)
    runtimes = {"graphs": centernet, "eager": eager} if eager is not None else {"eager": centernet}
    heads = " | ".join(f"CenterNet {name} img/s | same, {callers} callers" for name in runtimes)
    print(f"| batch | {heads} | CenterNet model only | SSDlite320 img/s (YUV to Detections) | ratio |")
    print("|---:|" + "---:|" * (2 * len(runtimes) + 3))
    rng = np.random.default_rng(0)
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        frames = rng.integers(0, 256, (batch, source_h * 3 // 2, source_w), dtype=np.uint8)
        rates = []
        for runtime in runtimes.values():
            step = lambda runtime=runtime: runtime.detect_stacks([frames])  # noqa: E731
            rates += [images_per_second(step, batch, seconds=args.seconds, device=device),
                      concurrent_images_per_second(step, batch, callers=callers, seconds=args.seconds)]
        images = normalize_rgb(torch.rand(batch, 3, input_wh[1], input_wh[0], device=device) * 255)
        images = images.contiguous(memory_format=torch.channels_last)

        @torch.inference_mode()
        def model_only() -> None:
            with centernet._autocast():
                centernet.detector.model(images)

        model_rate = images_per_second(model_only, batch, seconds=args.seconds, device=device)
        theirs = images_per_second(lambda: ssdlite.detect_stacks([frames]), batch, seconds=args.seconds, device=device) if ssdlite else float("nan")
        cells = " | ".join(f"{rate:,.0f}" for rate in rates)
        print(f"| {batch} | {cells} | {model_rate:,.0f} | {theirs:,.0f} | {rates[0] / theirs:.1f}x |", flush=True)
    if args.stages and device.type == "cuda":
        print(f"\n| stage, batch {batch} alone | ms per batch | µs per image |\n|---|---:|---:|")
        for name, ms in stage_milliseconds(centernet, frames).items():
            print(f"| {name} | {ms:.2f} | {1000 * ms / batch:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
