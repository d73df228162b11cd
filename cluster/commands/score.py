"""`casaflow score`: compare a replay's history with the simulator's truth."""

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "score", help="score a replay's history against simulated truth",
        description="Compare DIR/segments/ written by `casaflow run` with TRUTH/truth/segments.parquet: count "
        "accuracy, speed MAE, density error, LOS agreement; per camera and overall.",
    )
    parser.add_argument("--truth", type=Path, required=True, help="a `casaflow simulate` folder")
    parser.add_argument("--results", type=Path, required=True, help="a `casaflow run` history folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the scores as JSON here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from casaflow.score import ScoreError, as_json, format_table, read_windows, score_segments

    try:
        scores = score_segments(
            read_windows(args.truth / "truth" / "segments.parquet"), read_windows(args.results / "segments")
        )
    except ScoreError as exc:
        print(f"casaflow score: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(scores))
    if args.json is not None:
        args.json.write_text(json.dumps(as_json(scores), indent=2))
        print(f"scores written to {args.json}")
    return 0
