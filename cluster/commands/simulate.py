"""`casaflow simulate`: render a simulated city with exact ground truth."""

import argparse
import sys
from pathlib import Path

from casaflow.sim.scenario import ScenarioError, builtin_scenarios, load_scenario


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a city with SUMO and render its cameras",
        description="Simulate a scenario with SUMO, render every camera to H.264 and write the ground truth.",
    )
    parser.add_argument("--scenario", default="demo", help=f"built-in ({', '.join(builtin_scenarios())}) or a .yaml path")
    parser.add_argument("--seed", type=int, default=1, help="varies layout, demand and incidents")
    parser.add_argument("--duration-s", type=float, default=None, help="recorded seconds (default: the scenario's)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from casaflow.sim.simulate import SimulationError, simulate

    try:
        scenario = load_scenario(args.scenario)
        if args.duration_s is not None:
            if not args.duration_s > 0:
                raise ScenarioError(f"--duration-s must be positive, got {args.duration_s:g}")
            scenario = scenario.model_validate({**scenario.model_dump(), "duration_s": args.duration_s})
        summary = simulate(scenario, seed=args.seed, out_dir=args.out, progress=lambda line: print(line, flush=True))
    except (ScenarioError, SimulationError, ValueError) as exc:
        print(f"casaflow simulate: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    incidents = ", ".join(f"{n} {kind}" for kind, n in sorted(summary.incidents.items())) or "none"
    print(
        f"done in {summary.seconds:.0f} s: {summary.cameras} cameras, {summary.frames} frames rendered "
        f"({summary.render_fps_per_core:.0f} frames/s per core), {summary.size_bytes / 1e6:.1f} MB in {summary.out_dir}\n"
        f"incidents in view: {incidents}\n"
        f"inventory: {summary.out_dir / 'cameras.yaml'}; clips: {summary.out_dir / 'video'}; truth: {summary.out_dir / 'truth'}"
    )
    return 0
