"""The scorer on doctored histories: perfect, biased speeds, missed vehicles, LOS off by one, and the
refusal to compare windows of different lengths."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from casaflow.measures import level_of_service
from casaflow.score import ScoreError, format_table, score_segments

START = datetime(2026, 3, 2, 7, 55, tzinfo=timezone.utc)


def windows(speeds, counts, *, camera="cam01", segment="cam01.a", limit=50.0) -> pd.DataFrame:
    rows = []
    for k, (speed, count) in enumerate(zip(speeds, counts)):
        ratio = None if speed is None else speed / limit
        rows.append(dict(segment_id=segment, camera_id=camera, window_end=START + timedelta(minutes=k + 1),
                         window_s=60.0, vehicle_count=count, flow_vph=count * 60.0, mean_speed_kmh=speed,
                         density_vpkm=count * 1.0, speed_ratio=ratio, los=level_of_service(ratio)))
    return pd.DataFrame(rows)


TRUTH = windows([45.0, 30.0, None, 12.0], [20, 10, 0, 40])


def overall(measured: pd.DataFrame):
    return score_segments(TRUTH, measured)[-1]


def test_perfect_replay_scores_perfectly():
    score = overall(TRUTH.copy())
    assert score.count_accuracy_pct == 100 and score.count_mae == 0
    assert score.speed_mae_kmh == 0 and score.los_exact_pct == 100 and score.los_windows == 3


def test_biased_speeds_and_missed_vehicles():
    measured = windows([47.0, 32.0, None, 14.0], [18, 9, 0, 36])
    score = overall(measured)
    assert score.speed_mae_kmh == pytest.approx(2.0)
    assert score.count_accuracy_pct == pytest.approx(100 - 100 * 7 / 70, abs=0.01)
    assert score.count_mae == pytest.approx(7 / 4)


def test_los_one_class_off_is_within_one():
    measured = windows([38.0, 23.0, None, 17.0], [20, 10, 0, 40])
    score = overall(measured)
    assert score.los_exact_pct == 0 and score.los_within_one_pct == 100


def test_missing_windows_count_as_zero_and_tables_print():
    score = overall(TRUTH.iloc[:2])
    assert score.measured_vehicles == 30 and score.count_accuracy_pct == pytest.approx(100 - 100 * 40 / 70, abs=0.01)
    assert "overall" in format_table(score_segments(TRUTH, TRUTH))


def test_different_window_lengths_are_refused():
    with pytest.raises(ScoreError, match="window lengths differ"):
        score_segments(TRUTH, TRUTH.assign(window_s=30.0))
