"""How many live cameras this machine sustains, beside the raw PyAV decode ceiling, in one run.

    .venv/bin/python bench/bench_pipeline.py --city ~/.cache/casaflow/demo-seed1 --cameras 8,16,24
    .venv/bin/python bench/bench_pipeline.py --city DIR --cameras 64,128,256,600 --device cuda   # GPU machine

Each step plays N cameras (the city's 640x360 25 fps clips, reused round-robin) in real time through
the whole live system: CameraGroup actors decoding with PyAV at 5 fps analysis, the detector deployment,
tracking, measurement and the aggregator. After a warm-up it samples every camera's lag (wall clock
minus frame time) and analysed fps from the aggregator. A step is sustained when the p95 lag stays
under 2 s and the cameras keep their analysis fps (drops under 5 %). The decode ceiling is measured
in the same run: one thread decoding a clip as fast as it can, as cameras per core at 25 fps.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from casaflow.inventory import Inventory, load_inventory, save_inventory  # noqa: E402


def decode_ceiling(clip: Path, *, seconds: float = 10.0) -> float:
    """Frames/s one thread decodes (YUV planes kept, no colour conversion)."""
    frames, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = 1
            for frame in container.decode(stream):
                frame.to_ndarray()
                frames += 1
                if time.perf_counter() - started >= seconds:
                    break
    return frames / (time.perf_counter() - started)


def replicated(city: Path, count: int, out: Path) -> Path:
    """An inventory of `count` cameras reusing the city's clips (absolute URLs, unique ids)."""
    source = load_inventory(city / "cameras.yaml")
    cameras = []
    for k in range(count):
        clip = source.cameras[k % len(source.cameras)]
        data = clip.model_dump()
        new_id = f"bench{k:03d}"
        data.update(id=new_id, url=str((city / clip.url).resolve()))
        rename = {s["id"]: f"{new_id}.{s['id'].split('.', 1)[1]}" for s in data["segments"]}
        for segment in data["segments"]:
            segment["id"] = rename[segment["id"]]
        for item in (*data["stop_lines"], *data["no_stopping_zones"]):
            item["segment_id"] = rename[item["segment_id"]]
        cameras.append(data)
    path = out / f"bench-{count}.yaml"
    save_inventory(Inventory.model_validate({"city": source.city, "cameras": cameras}), path)
    return path


def run_step(inventory_path: Path, *, seconds: float, warmup_s: float, options) -> dict:
    import ray

    from cluster.launch import launch, shutdown

    city = launch(inventory_path, out_dir=None, realtime=True, options=options)
    try:
        time.sleep(warmup_s)
        lags, fps, drops, analysed = [], [], 0, 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            time.sleep(2.0)
            rows = ray.get(city.aggregator.camera_status.remote())
            lags += [r["lag_s"] for r in rows if r.get("lag_s") is not None]
            fps += [r["fps"] for r in rows if r.get("fps")]
        rows = ray.get(city.aggregator.camera_status.remote())
        reporting = sum(1 for r in rows if r.get("frames_analysed"))
        drops = sum(r.get("frames_dropped", 0) for r in rows)
        analysed = sum(r.get("frames_analysed", 0) for r in rows)
    finally:
        shutdown(city, keep_ray=True)
    return {
        "lag_p50_s": float(np.percentile(lags, 50)) if lags else float("nan"),
        "lag_p95_s": float(np.percentile(lags, 95)) if lags else float("nan"),
        "fps_mean": float(np.mean(fps)) if fps else 0.0,
        "drop_share": drops / max(drops + analysed, 1),
        "reporting": reporting,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--city", type=Path, default=None, help="a simulated city (default: the demo city `casaflow up` cached)")
    parser.add_argument("--cameras", default="8,12,16,24")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--warmup-s", type=float, default=20.0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--cameras-per-group", type=int, default=8)
    args = parser.parse_args()
    if args.city is None:
        from cluster.commands.up import default_data_dir, demo_city_dir

        args.city = demo_city_dir(default_data_dir())

    import ray

    from cluster.launch import LaunchOptions, connect

    clip = args.city / load_inventory(args.city / "cameras.yaml").cameras[0].url
    ceiling = decode_ceiling(clip)
    print(f"decode ceiling: {ceiling:.0f} frames/s on one thread = {ceiling / 25:.1f} cameras/core at 25 fps "
          f"({os.cpu_count()} cores: {ceiling / 25 * os.cpu_count():.0f} cameras)", flush=True)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    connect(None)
    detector = {"device": args.device, **({"weights_path": str(args.weights)} if args.weights else {})}
    options = LaunchOptions(cameras_per_group=args.cameras_per_group, detector=detector,
                            api=False, port=18124)
    print("| cameras | analysing | lag p50 s | lag p95 s | analysed fps per camera | dropped | sustained |")
    print("|---:|---:|---:|---:|---:|---:|:---:|")
    with tempfile.TemporaryDirectory() as scratch:
        for count in [int(c) for c in args.cameras.split(",")]:
            result = run_step(replicated(args.city, count, Path(scratch)), seconds=args.seconds,
                              warmup_s=args.warmup_s, options=options)
            ok = result["lag_p95_s"] < 2.0 and result["drop_share"] < 0.05 and result["reporting"] == count
            print(f"| {count} | {result['reporting']} | {result['lag_p50_s']:.2f} | {result['lag_p95_s']:.2f} | {result['fps_mean']:.2f} "
                  f"| {100 * result['drop_share']:.1f} % | {'yes' if ok else 'no'} |", flush=True)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
