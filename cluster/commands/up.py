"""`casaflow up`: the live system. With no arguments, the embedded default: a local Ray, the `demo`
city (simulated once and cached), its cameras paced in real time, the API and dashboard on
http://127.0.0.1:8000. Ctrl-C shuts everything down cleanly."""

import argparse
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from cluster.commands.options import add_detector_arguments, add_incident_arguments, incident_options, replica_options

DEFAULT_SEED = 1


def default_data_dir() -> Path:
    return Path(os.environ.get("CASAFLOW_DATA", Path.home() / ".cache" / "casaflow"))


def register(subparsers) -> None:
    parser = subparsers.add_parser("up", help="run the live system (default: the simulated demo city on :8000)")
    parser.add_argument("--inventory", type=Path, default=None, help="cameras.yaml (default: the simulated demo city)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    parser.add_argument("--host", default="127.0.0.1", help="API bind address (loopback by default)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data", type=Path, default=None, help="cache and history folder (default $CASAFLOW_DATA or ~/.cache/casaflow)")
    parser.add_argument("--cameras-per-group", type=int, default=8)
    add_detector_arguments(parser)
    add_incident_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from casaflow.inventory import InventoryError, load_inventory

    from cluster.launch import LaunchOptions, connect, detector_options, launch, shutdown, start_groups

    data_dir = args.data or default_data_dir()
    try:
        detector = detector_options(args.weights, args.device, args.input_size)
        incidents = incident_options(args)
        inventory_path = args.inventory or ensure_demo_city(data_dir)
        inventory = load_inventory(inventory_path)
    except (InventoryError, RuntimeError, OSError, ValueError) as exc:
        print(f"casaflow up: error: {exc}", file=sys.stderr)
        return 2

    import ray

    options = LaunchOptions(
        cameras_per_group=args.cameras_per_group, detector=detector, host=args.host, port=args.port, **incidents,
        **replica_options(args),
    )
    history_dir = inventory_path.parent / "history"
    connect(args.address)
    signal.signal(signal.SIGTERM, _interrupt)
    city = None
    try:
        city = launch(inventory_path, out_dir=history_dir, realtime=True, options=options)
        print(
            f"live: {len(inventory.cameras)} cameras of {inventory.city}; dashboard and API on "
            f"http://{args.host}:{args.port}/ (API docs at /docs); history in {history_dir}; Ctrl-C stops",
            flush=True,
        )
        while True:
            done, _ = ray.wait(city.runs, num_returns=len(city.runs), timeout=5.0)
            if len(done) == len(city.runs):
                print("the clips ended; playing them again", flush=True)
                city.groups, city.runs = start_groups(
                    inventory, inventory_path.parent, aggregator=city.aggregator, realtime=True, options=options,
                    start_time=datetime.now(timezone.utc),
                )
    except KeyboardInterrupt:
        print("shutting down", flush=True)
    except (FileNotFoundError, ValueError) as exc:
        print(f"casaflow up: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        shutdown(city, keep_ray=args.address is not None)
    return 0


def _interrupt(signum, frame) -> None:
    """SIGTERM shuts down as cleanly as Ctrl-C."""
    raise KeyboardInterrupt


def demo_city_dir(data_dir: Path) -> Path:
    """Where the demo city of this simulator version is cached (the simulator needs SUMO: imported here)."""
    from casaflow.sim.simulate import SIMULATOR_VERSION

    return data_dir / f"demo-seed{DEFAULT_SEED}-sim{SIMULATOR_VERSION}"


def ensure_demo_city(data_dir: Path) -> Path:
    """The demo city's inventory, simulating it once into the cache if needed."""
    from casaflow.sim.scenario import load_scenario
    from casaflow.sim.simulate import SimulationError, simulate

    city_dir = demo_city_dir(data_dir)
    if not (city_dir / "truth" / "incidents.parquet").exists():
        print(f"simulating the demo city once into {city_dir} (a few minutes; cached afterwards)", flush=True)
        started = time.perf_counter()
        try:
            simulate(load_scenario("demo"), seed=DEFAULT_SEED, out_dir=city_dir, progress=lambda l: print(l, flush=True))
        except SimulationError as exc:
            raise RuntimeError(str(exc)) from exc
        print(f"simulated in {time.perf_counter() - started:.0f} s", flush=True)
    return city_dir / "cameras.yaml"
