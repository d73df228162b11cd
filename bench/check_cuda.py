"""The committed detector on CUDA (fp16, channels_last, CUDA graphs) against the CPU (fp32) on real frames.

    python3 bench/check_cuda.py CLIP.mp4 [--frames 64]

Runs the same frames through `DetectorRuntime` on both devices and matches each CPU detection to a CUDA
detection of its class at IoU >= 0.5; then the CUDA runtime without graphs against the graphed one, fed
in uneven stacks (several padded sizes) from two threads at once, as the Serve replica runs it. Prints
the share matched both ways, the mean IoU of the matches and the largest confidence difference; exits 1
when fewer than 98 % match (a broken device path, not fp16 rounding).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import torch
from torchvision.ops import box_iou

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from casaflow.detector.runtime import load_detector  # noqa: E402


def read_frames(clip: Path, count: int) -> np.ndarray:
    """The first `count` frames as a (B, H*3//2, W) yuv420p stack."""
    with av.open(str(clip)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="yuv420p"))
            if len(frames) == count:
                break
    return np.stack(frames)


def matched_share(ours, theirs) -> tuple[int, int, list[float], float]:
    """Detections of `ours` with a same-class detection of `theirs` at IoU >= 0.5."""
    matched, total, ious, confidence_gap = 0, 0, [], 0.0
    for a, b in zip(ours, theirs):
        total += len(a)
        if not len(a) or not len(b):
            continue
        iou = box_iou(torch.from_numpy(a.xyxy).float(), torch.from_numpy(b.xyxy).float()).numpy()
        iou[a.class_id[:, None] != b.class_id[None, :]] = 0.0
        best = iou.argmax(axis=1)
        hit = iou[np.arange(len(a)), best] >= 0.5
        matched += int(hit.sum())
        ious += iou[np.arange(len(a)), best][hit].tolist()
        if hit.any():
            confidence_gap = max(confidence_gap, float(np.abs(a.confidence[hit] - b.confidence[best[hit]]).max()))
    return matched, total, ious, confidence_gap


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("--frames", type=int, default=64)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    stack = read_frames(args.clip, args.frames)
    cpu = load_detector(device="cpu").detect(stack)
    graphed = load_detector(device="cuda")
    cuda = graphed.detect(stack)
    eager = load_detector(device="cuda", cuda_graphs=False).detect(stack)
    bounds = np.cumsum([0, 5, 11, 3, 20])
    chunks = [stack[a:b] for a, b in zip(bounds, [*bounds[1:], len(stack)])]
    with ThreadPoolExecutor(2) as pool:
        threaded = [d for part in pool.map(graphed.detect, chunks * 2) for d in part][: len(stack)]
    print(f"graphs: {graphed.cuda_graphs}, threads' graphs captured: {len(chunks)} stack sizes")
    worst = 1.0
    pairs = {"cpu->cuda": (cpu, cuda), "cuda->cpu": (cuda, cpu), "eager->graphs in threads": (eager, threaded),
             "graphs in threads->eager": (threaded, eager)}
    for name, (a, b) in pairs.items():
        matched, total, ious, gap = matched_share(a, b)
        share = matched / max(total, 1)
        worst = min(worst, share)
        print(f"{name}: {matched}/{total} matched ({100 * share:.1f} %), mean IoU {np.mean(ious):.4f}, "
              f"largest confidence difference {gap:.3f}")
    return 0 if worst >= 0.98 else 1


if __name__ == "__main__":
    sys.exit(main())
