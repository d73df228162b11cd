"""`casaflow run`: replay every camera of an inventory as fast as possible and write the history."""

import argparse
import sys
import time
from pathlib import Path

from cluster.commands.options import add_detector_arguments, add_incident_arguments, incident_options, replica_options


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="replay an inventory's clips through the pipeline and write the history",
        description="Replay every camera of the inventory as fast as possible through the same actors and "
        "deployments as the live system; writes DIR/segments/ and exits when the clips end.",
    )
    parser.add_argument("--inventory", type=Path, required=True, help="cameras.yaml")
    parser.add_argument("--out", type=Path, required=True, help="history folder")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    parser.add_argument("--cameras-per-group", type=int, default=8)
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--window-s", type=float, default=60.0, help="segment window length, seconds")
    add_detector_arguments(parser)
    add_incident_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import ray

    from casaflow.inventory import InventoryError, load_inventory
    from cluster.launch import LaunchOptions, connect, detector_options, launch, shutdown

    try:
        inventory = load_inventory(args.inventory)
        detector = detector_options(args.weights, args.device, args.input_size)
        incidents = incident_options(args)
        args.out.mkdir(parents=True, exist_ok=True)
    except (InventoryError, OSError, ValueError) as exc:
        print(f"casaflow run: error: {exc}", file=sys.stderr)
        return 2
    options = LaunchOptions(cameras_per_group=args.cameras_per_group, detector=detector, api=False,
                            window_s=args.window_s, **incidents, **replica_options(args))
    connect(args.address, num_cpus=args.num_cpus)
    started = time.perf_counter()
    print(f"replaying {len(inventory.cameras)} cameras from {args.inventory}", flush=True)
    city = None
    try:
        city = launch(args.inventory, out_dir=args.out, realtime=False, options=options)
        summaries = ray.get(city.runs)
    except ValueError as exc:
        cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else exc
        print(f"casaflow run: error: {cause}", file=sys.stderr)
        return 2
    finally:
        shutdown(city, keep_ray=args.address is not None)
    seconds = time.perf_counter() - started
    frames = sum(s["frames_analysed"] for s in summaries)
    dropped = sum(s["frames_dropped"] for s in summaries)
    failed = [c for s in summaries for c in s["cameras"] if c["status"] == "failed"]
    print(f"done in {seconds:.0f} s: {frames} frames analysed ({frames / seconds:.1f} frames/s), {dropped} dropped; "
          f"history in {args.out}")
    for camera in failed:
        print(f"  {camera['camera_id']} failed: {camera['reason']}", file=sys.stderr)
    return 0
