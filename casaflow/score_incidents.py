"""Score a replay's incidents against the simulator's truth incidents (`casaflow score`).

A truth incident is matched by a detection of the same type, on the same camera or the same segment (the
aggregator keeps one incident for an event several cameras saw, attributed to one of them; a congestion,
a segment's state, on the same segment only: the other direction's jam on the same camera is not it), whose
start_ts..detected_ts overlaps the truth's start_ts..end_ts widened by a tolerance on both sides. Congestion
truth comes in whole windows, so it gets the window as tolerance. Matching is one-to-one, greedy by
start-time distance; a detection left unmatched (a duplicate of a matched one included) is a false alarm.
Per type and overall:
- detection rate: matched / truth incidents, in % (None without truth incidents of the type);
- false alarms, and false alarms per camera-hour of the run;
- time to detect (TTD): detected_ts - truth start_ts of matched pairs, clamped at 0; mean and p95, s;
- the goals: detection rate >= 95 % for every type, <= 0.5 false alarms per camera-hour overall, mean TTD
  <= 10 s (3 s for red_light, wrong_way and speeding); None where there is nothing to judge.
"""

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from casaflow.history import TRUTH_FRAME_SCHEMA, TRUTH_INCIDENT_SCHEMA
from casaflow.incidents import INCIDENT_SCHEMA, INCIDENT_TYPES
from casaflow.score import fmt, read_table

DETECTION_GOAL_PCT = 95.0
FALSE_ALARMS_GOAL_PER_CAMERA_HOUR = 0.5
TTD_GOAL_S = 10.0
TTD_GOAL_S_BY_TYPE = MappingProxyType({"red_light": 3.0, "wrong_way": 3.0, "speeding": 3.0})
CONGESTION_TOLERANCE_S = 60.0

TRUTH_COLUMNS = ["incident_id", "type", "camera_id", "segment_id", "start_ts", "end_ts"]
DETECTED_COLUMNS = ["incident_id", "type", "camera_id", "segment_id", "start_ts", "detected_ts"]


@dataclass(frozen=True)
class IncidentScore:
    scope: str
    truth: int
    detected: int
    matched: int
    detection_pct: float | None
    false_alarms: int
    false_alarms_per_camera_hour: float | None
    ttd_mean_s: float | None
    ttd_p95_s: float | None
    detection_ok: bool | None
    false_alarms_ok: bool | None
    ttd_ok: bool | None


def read_truth_incidents(path: Path) -> pd.DataFrame:
    """`truth/incidents.parquet` of a simulated city (the columns scoring needs)."""
    return read_table(path, TRUTH_INCIDENT_SCHEMA, "truth incidents", TRUTH_COLUMNS).to_pandas()


def read_detected_incidents(path: Path) -> pd.DataFrame:
    """A history's `incidents.parquet` (the columns scoring needs)."""
    return read_table(path, INCIDENT_SCHEMA, "detected incidents", DETECTED_COLUMNS).to_pandas()


def read_camera_hours(path: Path) -> float:
    """Run time summed over cameras, from `truth/frames.parquet`: per camera, the ts span of its frames
    with road users plus one frame interval (frames without any are not in the file)."""
    frames = read_table(path, TRUTH_FRAME_SCHEMA, "truth frames", ["camera_id", "frame_index", "ts"])
    spans = frames.group_by("camera_id").aggregate(
        [("ts", "min"), ("ts", "max"), ("frame_index", "min"), ("frame_index", "max")]
    ).to_pandas()
    span_s = (spans.ts_max - spans.ts_min).dt.total_seconds()
    steps = spans.frame_index_max - spans.frame_index_min
    seconds = (span_s * (steps + 1) / steps.clip(lower=1)).where(steps > 0, 0.0)
    return float(seconds.sum()) / 3600.0


def match_incidents(
    truth: pd.DataFrame,
    detected: pd.DataFrame,
    *,
    tolerance_s: float = 5.0,
    congestion_tolerance_s: float = CONGESTION_TOLERANCE_S,
) -> pd.DataFrame:
    """Matched pairs, one row each: `truth` and `detected` (row labels of the inputs), `type`, `ttd_s`."""
    t = truth.assign(
        truth=truth.index,
        start_ts=pd.to_datetime(truth.start_ts, utc=True),
        end_ts=pd.to_datetime(truth.end_ts, utc=True).fillna(pd.to_datetime(truth.start_ts, utc=True)),
    )
    d = detected.assign(
        detected=detected.index,
        detected_start_ts=pd.to_datetime(detected.start_ts, utc=True),
        detected_ts=pd.to_datetime(detected.detected_ts, utc=True),
    )
    truth_columns = ["type", "camera_id", "segment_id", "truth", "start_ts", "end_ts"]
    detected_columns = ["type", "camera_id", "segment_id", "detected", "detected_start_ts", "detected_ts"]
    same_camera = t[truth_columns].merge(d[detected_columns], on=["type", "camera_id"], suffixes=("", "_detected"))
    same_camera = same_camera[(same_camera.type != "congestion") | (same_camera.segment_id == same_camera.segment_id_detected)]
    same_segment = t[truth_columns].merge(d[detected_columns], on=["type", "segment_id"], suffixes=("", "_detected"))
    candidates = pd.concat([same_camera, same_segment]).drop_duplicates(["truth", "detected"])
    tolerance = pd.to_timedelta(
        np.where(candidates.type == "congestion", congestion_tolerance_s, tolerance_s), unit="s"
    )
    overlaps = (candidates.detected_start_ts <= candidates.end_ts + tolerance) & (
        candidates.detected_ts >= candidates.start_ts - tolerance
    )
    candidates = candidates.assign(distance=(candidates.detected_start_ts - candidates.start_ts).abs())[
        overlaps
    ].sort_values(["distance", "truth", "detected"], kind="stable")
    used_truth, used_detected, pairs = set(), set(), []
    for row in candidates.itertuples(index=False):
        if row.truth not in used_truth and row.detected not in used_detected:
            used_truth.add(row.truth)
            used_detected.add(row.detected)
            ttd_s = max((row.detected_ts - row.start_ts).total_seconds(), 0.0)
            pairs.append((row.truth, row.detected, row.type, ttd_s))
    return pd.DataFrame(pairs, columns=["truth", "detected", "type", "ttd_s"])


def score_incidents(
    truth: pd.DataFrame,
    detected: pd.DataFrame,
    *,
    camera_hours: float,
    tolerance_s: float = 5.0,
    congestion_tolerance_s: float = CONGESTION_TOLERANCE_S,
) -> list[IncidentScore]:
    """Scores per type (`INCIDENT_TYPES`, then any other type seen) and overall (last)."""
    pairs = match_incidents(truth, detected, tolerance_s=tolerance_s, congestion_tolerance_s=congestion_tolerance_s)
    seen = set(truth.type) | set(detected.type)
    types = list(INCIDENT_TYPES) + sorted(seen - set(INCIDENT_TYPES))
    per_type = [
        _score(
            kind, int((truth.type == kind).sum()), int((detected.type == kind).sum()),
            pairs.ttd_s[pairs.type == kind], camera_hours, TTD_GOAL_S_BY_TYPE.get(kind, TTD_GOAL_S),
        )
        for kind in types
    ]
    overall = _score("overall", len(truth), len(detected), pairs.ttd_s, camera_hours, None)
    overall = replace(
        overall,
        detection_ok=_all_ok(s.detection_ok for s in per_type),
        false_alarms_ok=(
            overall.false_alarms_per_camera_hour <= FALSE_ALARMS_GOAL_PER_CAMERA_HOUR
            if overall.false_alarms_per_camera_hour is not None else None
        ),
        ttd_ok=_all_ok(s.ttd_ok for s in per_type),
    )
    return per_type + [overall]


def _score(
    scope: str, n_truth: int, n_detected: int, ttd_s: pd.Series, camera_hours: float, ttd_goal_s: float | None
) -> IncidentScore:
    matched = len(ttd_s)
    false_alarms = n_detected - matched
    detection_pct = round(100.0 * matched / n_truth, 2) if n_truth else None
    ttd_mean_s = round(float(ttd_s.mean()), 2) if matched else None
    return IncidentScore(
        scope=scope,
        truth=n_truth,
        detected=n_detected,
        matched=matched,
        detection_pct=detection_pct,
        false_alarms=false_alarms,
        false_alarms_per_camera_hour=round(false_alarms / camera_hours, 3) if camera_hours > 0 else None,
        ttd_mean_s=ttd_mean_s,
        ttd_p95_s=round(float(np.percentile(ttd_s, 95)), 2) if matched else None,
        detection_ok=detection_pct >= DETECTION_GOAL_PCT if detection_pct is not None else None,
        false_alarms_ok=None,
        ttd_ok=ttd_mean_s <= ttd_goal_s if ttd_mean_s is not None and ttd_goal_s is not None else None,
    )


def _all_ok(verdicts) -> bool | None:
    judged = [v for v in verdicts if v is not None]
    return all(judged) if judged else None


def format_incident_table(scores: list[IncidentScore]) -> str:
    """A plain-text table, one line per type and overall; the goal columns say pass, FAIL or –."""
    header = (
        f"{'incident type':<19} {'truth':>5} {'detected':>8} {'matched':>7} {'detect %':>8} {'≥95%':>4} "
        f"{'false al':>8} {'FA/cam-h':>8} {'≤0.5':>4} {'TTD mean s':>10} {'TTD p95 s':>9} {'TTD':>4}"
    )
    lines = [header, "-" * len(header)]
    for s in scores:
        detection = "n/a" if s.detection_pct is None else fmt(s.detection_pct)
        lines.append(
            f"{s.scope:<19} {s.truth:>5} {s.detected:>8} {s.matched:>7} {detection:>8} {_verdict(s.detection_ok):>4} "
            f"{s.false_alarms:>8} {fmt(s.false_alarms_per_camera_hour, 2):>8} {_verdict(s.false_alarms_ok):>4} "
            f"{fmt(s.ttd_mean_s, 2):>10} {fmt(s.ttd_p95_s, 2):>9} {_verdict(s.ttd_ok):>4}"
        )
    return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else "pass" if ok else "FAIL"


def incidents_as_json(scores: list[IncidentScore], camera_hours: float) -> dict:
    return {"incidents": [asdict(s) for s in scores], "camera_hours": round(camera_hours, 4)}
