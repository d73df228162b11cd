"""Score a replay's history against the simulator's truth (`casaflow score`).

Segment windows are joined on (segment_id, window_end). Per camera and overall:
- count accuracy: 100 - |measured - true| / true vehicles, in %, over all windows;
- count MAE: mean absolute per-window count error (vehicles);
- speed MAE: mean absolute error of the space-mean speed (km/h) where both have one;
- density error: mean absolute error (veh/km) and relative error of the totals (%);
- LOS: exact and within-one-class agreement over windows with vehicles in the truth.
A truth window with no measured row counts as measured zero (and speed missing).
Incidents are scored in `casaflow.score_incidents`.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from casaflow.history import SEGMENT_SCHEMA

LOS_ORDER = "ABCDEF"


class ScoreError(ValueError):
    """Missing or malformed truth or results."""


@dataclass(frozen=True)
class SegmentScore:
    scope: str
    windows: int
    true_vehicles: int
    measured_vehicles: int
    count_accuracy_pct: float
    count_mae: float
    speed_mae_kmh: float | None
    speed_windows: int
    density_mae_vpkm: float
    density_error_pct: float | None
    los_exact_pct: float | None
    los_within_one_pct: float | None
    los_windows: int


def read_table(path: Path, schema: pa.Schema, what: str, columns: list[str] | None = None) -> pa.Table:
    """A Parquet file or dataset read as `schema` (only `columns` if given); ScoreError if missing or unreadable."""
    if not path.exists():
        raise ScoreError(f"no {what} at {path}")
    try:
        return pq.read_table(path, columns=columns, schema=schema)
    except Exception as exc:
        raise ScoreError(f"cannot read {what} at {path}: {str(exc).splitlines()[0]}") from exc


def read_windows(path: Path) -> pd.DataFrame:
    """A segments table or dataset (file or folder) with the history schema."""
    return read_table(path, SEGMENT_SCHEMA, "segment windows").to_pandas()


def score_segments(truth: pd.DataFrame, measured: pd.DataFrame) -> list[SegmentScore]:
    """Scores per camera (sorted) and overall (last)."""
    truth_s, measured_s = set(truth.window_s), set(measured.window_s)
    if measured_s and truth_s != measured_s:
        raise ScoreError(
            f"window lengths differ: truth {sorted(truth_s)} s, results {sorted(measured_s)} s "
            "(replay with `casaflow run --window-s` equal to the truth's)"
        )
    both = truth.merge(measured, on=["segment_id", "window_end"], how="left", suffixes=("_true", ""))
    both["vehicle_count"] = both["vehicle_count"].fillna(0)
    both["density_vpkm"] = both["density_vpkm"].fillna(0.0)
    scores = [_score(f"camera {camera}", rows) for camera, rows in both.groupby("camera_id_true", sort=True)]
    return scores + [_score("overall", both)]


def _score(scope: str, rows: pd.DataFrame) -> SegmentScore:
    true_total = int(rows.vehicle_count_true.sum())
    measured_total = int(rows.vehicle_count.sum())
    accuracy = 100.0 - 100.0 * abs(measured_total - true_total) / true_total if true_total else float("nan")
    speeds = rows.dropna(subset=["mean_speed_kmh_true", "mean_speed_kmh"])
    with_vehicles = rows[rows.mean_speed_kmh_true.notna()]
    los_true = with_vehicles.los_true.map(LOS_ORDER.index)
    los_measured = with_vehicles.los.fillna("A").map(LOS_ORDER.index)
    density_true = rows.density_vpkm_true.sum()
    return SegmentScore(
        scope=scope,
        windows=len(rows),
        true_vehicles=true_total,
        measured_vehicles=measured_total,
        count_accuracy_pct=round(float(accuracy), 2),
        count_mae=round(float((rows.vehicle_count - rows.vehicle_count_true).abs().mean()), 3),
        speed_mae_kmh=round(float((speeds.mean_speed_kmh - speeds.mean_speed_kmh_true).abs().mean()), 3) if len(speeds) else None,
        speed_windows=len(speeds),
        density_mae_vpkm=round(float((rows.density_vpkm - rows.density_vpkm_true).abs().mean()), 3),
        density_error_pct=round(float(100 * (rows.density_vpkm.sum() - density_true) / density_true), 2) if density_true else None,
        los_exact_pct=round(float(100 * (los_true == los_measured).mean()), 2) if len(with_vehicles) else None,
        los_within_one_pct=round(float(100 * ((los_true - los_measured).abs() <= 1).mean()), 2) if len(with_vehicles) else None,
        los_windows=len(with_vehicles),
    )


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for a table; a dash where there is none."""
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def format_table(scores: list[SegmentScore]) -> str:
    """A plain-text table, one line per scope."""
    header = f"{'scope':<16} {'windows':>7} {'true veh':>8} {'meas veh':>8} {'count acc %':>11} {'speed MAE':>9} {'dens err %':>10} {'LOS exact %':>11} {'LOS ±1 %':>8}"
    lines = [header, "-" * len(header)]
    for s in scores:
        lines.append(
            f"{s.scope:<16} {s.windows:>7} {s.true_vehicles:>8} {s.measured_vehicles:>8} {fmt(s.count_accuracy_pct):>11} "
            f"{fmt(s.speed_mae_kmh, 2):>9} {fmt(s.density_error_pct):>10} {fmt(s.los_exact_pct):>11} {fmt(s.los_within_one_pct):>8}"
        )
    return "\n".join(lines)


def as_json(scores: list[SegmentScore]) -> dict:
    return {"segments": [asdict(s) for s in scores]}
