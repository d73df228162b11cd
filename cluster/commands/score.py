"""`casaflow score`: compare a replay's history with the simulator's truth."""

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "score", help="score a replay's history against simulated truth",
        description="Compare DIR/segments/ written by `casaflow run` with TRUTH/truth/segments.parquet: count "
        "accuracy, speed MAE, density error, LOS agreement; per camera and overall. Then DIR/incidents.parquet "
        "with TRUTH/truth/incidents.parquet: detection rate, false alarms per camera-hour, time to detect; per "
        "type and overall, against the goals.",
    )
    parser.add_argument("--truth", type=Path, required=True, help="a `casaflow simulate` folder")
    parser.add_argument("--results", type=Path, required=True, help="a `casaflow run` history folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the scores as JSON here")
    parser.add_argument(
        "--tolerance-s", type=float, default=5.0,
        help="seconds a detection may lie before or after a truth incident and still match it (congestion: "
        "the window length)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from casaflow.score import ScoreError, as_json, format_table, read_windows, score_segments
    from casaflow.score_incidents import (
        format_incident_table, incidents_as_json, read_camera_hours, read_detected_incidents,
        read_truth_incidents, score_incidents,
    )

    truth_incidents = args.truth / "truth" / "incidents.parquet"
    detected_incidents = args.results / "incidents.parquet"
    try:
        if not args.tolerance_s >= 0:
            raise ScoreError(f"--tolerance-s must be 0 or more, got {args.tolerance_s}")
        truth_windows = read_windows(args.truth / "truth" / "segments.parquet")
        scores = score_segments(truth_windows, read_windows(args.results / "segments"))
        window_s = float(truth_windows.window_s.max()) if len(truth_windows) else 60.0
        missing = next((path for path in (truth_incidents, detected_incidents) if not path.exists()), None)
        if missing is None:
            camera_hours = read_camera_hours(args.truth / "truth" / "frames.parquet")
            incident_scores = score_incidents(
                read_truth_incidents(truth_incidents), read_detected_incidents(detected_incidents),
                camera_hours=camera_hours, tolerance_s=args.tolerance_s, congestion_tolerance_s=window_s,
            )
    except ScoreError as exc:
        print(f"casaflow score: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(scores))
    report = as_json(scores)
    print()
    if missing is None:
        print(
            f"incidents over {camera_hours:.2f} camera-hours, tolerance {args.tolerance_s:g} s "
            f"(congestion {window_s:g} s)"
        )
        print(format_incident_table(incident_scores))
        report.update(incidents_as_json(incident_scores, camera_hours))
    else:
        print(f"no incidents at {missing}: incidents not scored")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"scores written to {args.json}")
    return 0
