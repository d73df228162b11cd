"""Detector throughput through Ray Serve, with callers shaped like camera groups, in one run.

    .venv/bin/python bench/bench_serve.py --callers 1,2 --frames-per-request 8      # this machine
    python3 bench/bench_serve.py --device cuda --callers 8,32,64,128 --max-batch-frames 256

Each caller is a Ray actor that, like a `CameraGroup`, sends one stack of `--frames-per-request` YUV420
frames (640x360, the committed weights) at a time to the detector deployment and waits for its
`Detections`. A row reports frames/s over all callers and the request latency: what separates
`bench_detector.py`'s bare runtime from the cluster is Serve's batching across callers and moving the
frames through the object store. Issue 3's goal on an H100: >= 10,000 images/s with the YUV conversion.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--callers", default="1,2", help="comma-separated numbers of concurrent callers")
    parser.add_argument("--frames-per-request", type=int, default=8)
    parser.add_argument("--max-batch-frames", type=int, default=16)
    parser.add_argument("--input-size", default=None, help="detector input WxH (default: the trained size)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray (default: all)")
    parser.add_argument("--replica-cpus", type=float, default=1.0, help="num_cpus of the replica (its torch threads)")
    parser.add_argument("--replicas", type=int, default=1, help="detector replicas sharing the GPU (each takes 1/N of it)")
    parser.add_argument("--echo", action="store_true",
                        help="a replica with the same batching that runs no model: the transport's ceiling")
    args = parser.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray import serve

    from serve.detector import DetectorDeployment, count_frames

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    gpus = 1.0 if args.device != "cpu" and ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    input_size = tuple(int(v) for v in args.input_size.split("x")) if args.input_size else None

    @serve.deployment(max_ongoing_requests=64)
    class Echo:
        """The detector deployment's batching and transport, with the model replaced by a frame count."""

        def __init__(self) -> None:
            self.load = {"batches": 0, "frames": 0, "busy_s": 0.0}

        @serve.batch(max_batch_size=args.max_batch_frames, batch_wait_timeout_s=0.005, batch_size_fn=count_frames)
        async def detect_batch(self, stacks: list[np.ndarray]) -> list[int]:
            self.load["batches"] += 1
            self.load["frames"] += count_frames(stacks)
            return [int(stack.shape[0]) for stack in stacks]

        async def __call__(self, frames: np.ndarray) -> int:
            return await self.detect_batch(frames)

        def load_stats(self) -> dict:
            return dict(self.load)

    if args.echo:
        app = Echo.options(ray_actor_options={"num_cpus": args.replica_cpus}).bind()
    else:
        app = DetectorDeployment.options(
            num_replicas=args.replicas,
            ray_actor_options={"num_cpus": args.replica_cpus, "num_gpus": gpus / args.replicas},
            user_config={"max_batch_frames": args.max_batch_frames, "batch_wait_timeout_s": 0.005},
        ).bind({"device": args.device, "input_size_wh": input_size})
    replica = serve.run(app, name="bench-detector", route_prefix=None)

    def load_stats() -> dict:
        """The replica's batch counters; a handle reaches one replica at random, so with several: none."""
        if args.replicas > 1:
            return {"batches": 0, "frames": 0, "busy_s": float("nan")}
        return replica.load_stats.remote().result()

    @ray.remote(num_cpus=0.1)
    class Caller:
        """One camera group's request loop: a stack out, its Detections back, the next stack."""

        def __init__(self, frames: int) -> None:
            rng = np.random.default_rng(0)
            self.stack = rng.integers(0, 256, (frames, 540, 640), dtype=np.uint8)
            self.handle = serve.get_app_handle("bench-detector")

        def run(self, until: float) -> list[float]:
            latencies = []
            while time.time() < until:
                begin = time.perf_counter()
                self.handle.remote(self.stack).result()
                latencies.append(time.perf_counter() - begin)
            return latencies

    model = "echo (no model)" if args.echo else f"{args.replicas} detector replica(s) on {args.device} (GPUs reserved {gpus:g})"
    print(f"# Ray Serve {model}, replica num_cpus {args.replica_cpus:g}, {ray.cluster_resources().get('CPU')} CPUs, "
          f"{args.frames_per_request} frames per request, max_batch_frames {args.max_batch_frames}", flush=True)
    print("| callers | frames/s | requests/s | latency p50 ms | latency p95 ms | frames per batch | replica busy |")
    print("|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for count in (int(c) for c in args.callers.split(",")):
        callers = [Caller.remote(args.frames_per_request) for _ in range(count)]
        ray.get([c.run.remote(time.time() + 3.0) for c in callers])
        before = load_stats()
        started = time.time()
        results = ray.get([c.run.remote(started + args.seconds) for c in callers])
        elapsed = time.time() - started
        load = {k: v - before[k] for k, v in load_stats().items()}
        latencies = np.concatenate([np.asarray(r) for r in results]) * 1000
        requests = latencies.size
        print(f"| {count} | {requests * args.frames_per_request / elapsed:,.0f} | {requests / elapsed:,.0f} "
              f"| {np.percentile(latencies, 50):.1f} | {np.percentile(latencies, 95):.1f} "
              f"| {load['frames'] / load['batches'] if load['batches'] else float('nan'):.1f} | {load['busy_s'] / elapsed:.0%} |", flush=True)
        for caller in callers:
            ray.kill(caller)
    serve.shutdown()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
