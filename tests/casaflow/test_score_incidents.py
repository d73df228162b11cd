"""The incident scorer on doctored truth and detections: perfect, missed, duplicated, seen from a neighbouring
camera, of the wrong type; the false-alarm rate per camera-hour; and `casaflow score` end to end on files."""

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from casaflow.history import SEGMENT_SCHEMA, TRUTH_FRAME_SCHEMA, TRUTH_INCIDENT_SCHEMA, write_table
from casaflow.incidents import INCIDENT_SCHEMA
from casaflow.score_incidents import match_incidents, read_camera_hours, score_incidents
from cluster.cli import main

START = datetime(2026, 3, 2, 7, 55, tzinfo=timezone.utc)


def at(seconds: float | None) -> datetime | None:
    return None if seconds is None else START + timedelta(seconds=seconds)


def truth(*rows) -> pd.DataFrame:
    """Rows of (type, camera, segment, start s, end s or None)."""
    return pd.DataFrame(
        [dict(incident_id=f"truth-{k:04d}", type=kind, camera_id=camera, segment_id=segment, start_ts=at(start),
              end_ts=at(end), object_ids=[]) for k, (kind, camera, segment, start, end) in enumerate(rows)],
        columns=TRUTH_INCIDENT_SCHEMA.names,
    )


def detections(*rows) -> pd.DataFrame:
    """Rows of (type, camera, segment, start s, detected s)."""
    return pd.DataFrame(
        [dict(incident_id=f"{kind}:{camera}:{k}", type=kind, camera_id=camera, segment_id=segment, start_ts=at(start),
              detected_ts=at(detected), lon=0.0, lat=0.0, severity=2, object_ids=[], clip_path=None, status="open")
         for k, (kind, camera, segment, start, detected) in enumerate(rows)],
        columns=INCIDENT_SCHEMA.names,
    )


TRUTH = truth(
    ("stopped_vehicle", "cam01", "cam01.a", 10.0, 50.0),
    ("red_light", "cam02", "cam02.a", 20.0, None),
    ("speeding", "cam01", "cam01.a", 30.0, 33.0),
    ("congestion", "cam02", "cam02.a", 60.0, 180.0),
)
PERFECT = detections(
    ("stopped_vehicle", "cam01", "cam01.a", 11.0, 18.0),
    ("red_light", "cam02", "cam02.a", 20.0, 21.0),
    ("speeding", "cam01", "cam01.a", 30.5, 32.0),
    ("congestion", "cam02", "cam02.a", 120.0, 140.0),
)


def by_scope(scores) -> dict:
    return {s.scope: s for s in scores}


def test_perfect_detections_score_100_percent_with_their_time_to_detect():
    scores = by_scope(score_incidents(TRUTH, PERFECT, camera_hours=2.0))
    overall = scores["overall"]
    assert (overall.truth, overall.matched, overall.detection_pct, overall.false_alarms) == (4, 4, 100.0, 0)
    assert overall.false_alarms_per_camera_hour == 0 and overall.false_alarms_ok
    assert scores["stopped_vehicle"].ttd_mean_s == 8.0 and scores["red_light"].ttd_mean_s == 1.0
    assert scores["speeding"].ttd_mean_s == 2.0 and scores["congestion"].ttd_mean_s == 80.0
    assert overall.ttd_mean_s == pytest.approx((8 + 1 + 2 + 80) / 4)
    assert overall.ttd_p95_s == pytest.approx(np.percentile([8, 1, 2, 80], 95), abs=0.01)
    assert scores["red_light"].ttd_ok and scores["stopped_vehicle"].ttd_ok and not scores["congestion"].ttd_ok
    assert not overall.ttd_ok and overall.detection_ok
    assert scores["collision"].detection_pct is None and scores["collision"].detection_ok is None


def test_a_missed_incident_lowers_the_detection_rate():
    scores = by_scope(score_incidents(TRUTH, PERFECT.drop(index=1), camera_hours=2.0))
    assert scores["red_light"].detection_pct == 0 and not scores["red_light"].detection_ok
    assert scores["overall"].detection_pct == 75.0 and not scores["overall"].detection_ok
    assert scores["overall"].false_alarms == 0


def test_a_duplicate_is_a_false_alarm():
    duplicate = detections(("stopped_vehicle", "cam01", "cam01.a", 12.0, 19.0))
    scores = by_scope(score_incidents(TRUTH, pd.concat([PERFECT, duplicate], ignore_index=True), camera_hours=2.0))
    assert scores["stopped_vehicle"].matched == 1 and scores["stopped_vehicle"].false_alarms == 1
    assert scores["stopped_vehicle"].ttd_mean_s == 8.0, "the detection nearer in time is the match"


def test_a_neighbouring_camera_on_the_same_segment_matches_and_a_wrong_type_does_not():
    neighbour = detections(("red_light", "cam03", "cam02.a", 19.5, 21.5))
    assert score_incidents(TRUTH.iloc[[1]], neighbour, camera_hours=1.0)[-1].matched == 1
    elsewhere = detections(("red_light", "cam03", "cam03.b", 19.5, 21.5))
    assert score_incidents(TRUTH.iloc[[1]], elsewhere, camera_hours=1.0)[-1].matched == 0
    wrong_type = detections(("wrong_way", "cam02", "cam02.a", 20.0, 21.0))
    scores = by_scope(score_incidents(TRUTH.iloc[[1]], wrong_type, camera_hours=1.0))
    assert scores["red_light"].detection_pct == 0 and scores["wrong_way"].false_alarms == 1
    assert scores["wrong_way"].detection_pct is None


def test_a_congestion_matches_on_its_own_segment_only():
    """A stopped vehicle near a zone's edge may be put on the camera's other segment; a jam is one segment's
    state, and the other direction's on the same camera is another jam."""
    other_direction = detections(("congestion", "cam02", "cam02.b", 60.0, 70.0))
    assert match_incidents(TRUTH.iloc[[3]], other_direction).empty
    next_zone = detections(("stopped_vehicle", "cam01", "cam01.b", 11.0, 18.0))
    assert len(match_incidents(TRUTH.iloc[[0]], next_zone)) == 1


def test_time_tolerance_and_the_congestion_window():
    late = detections(("red_light", "cam02", "cam02.a", 26.0, 27.0))
    assert match_incidents(TRUTH.iloc[[1]], late).empty
    assert len(match_incidents(TRUTH.iloc[[1]], late, tolerance_s=6.0)) == 1
    window_late = detections(("congestion", "cam02", "cam02.a", 230.0, 240.0))
    assert len(match_incidents(TRUTH.iloc[[3]], window_late)) == 1
    assert match_incidents(TRUTH.iloc[[3]], window_late, congestion_tolerance_s=30.0).empty


def test_false_alarms_per_camera_hour():
    noise = detections(*[("collision", "cam09", "cam09.a", 100.0 + k, 101.0 + k) for k in range(3)])
    scores = by_scope(score_incidents(TRUTH, pd.concat([PERFECT, noise], ignore_index=True), camera_hours=4.0))
    assert scores["collision"].false_alarms == 3 and scores["collision"].false_alarms_per_camera_hour == 0.75
    assert scores["overall"].false_alarms_per_camera_hour == 0.75 and not scores["overall"].false_alarms_ok
    assert scores["overall"].detection_pct == 100.0
    assert score_incidents(TRUTH, noise.iloc[:2], camera_hours=4.0)[-1].false_alarms_ok


def test_camera_hours_from_the_frames(tmp_path):
    rows = [("cam01", k, at(k / 5)) for k in range(0, 600)] + [("cam02", k, at(k / 5)) for k in range(100, 400)]
    columns = {name: [] for name in TRUTH_FRAME_SCHEMA.names}
    for camera, index, ts in rows:
        for name, value in zip(TRUTH_FRAME_SCHEMA.names, (camera, index, ts, "v", "car", 0, 0, 1, 1, 1.0, 30.0)):
            columns[name].append(value)
    write_table(columns, TRUTH_FRAME_SCHEMA, tmp_path / "frames.parquet")
    assert read_camera_hours(tmp_path / "frames.parquet") == pytest.approx((120 + 60) / 3600)


def write_case(tmp_path, *, with_incidents=True):
    """A truth folder (two cameras, 120 s) and a results folder scoring like PERFECT plus one false alarm."""
    truth_dir, results = tmp_path / "truth", tmp_path / "results"
    windows = {name: [] for name in SEGMENT_SCHEMA.names}
    for camera in ("cam01", "cam02"):
        for k in (1, 2):
            for name, value in zip(SEGMENT_SCHEMA.names, (f"{camera}.a", camera, at(60 * k), 60.0, 5, 300.0, 40.0,
                                                          10.0, 0.8, "B", 0.05, 5, 0, 0, 0, 0)):
                windows[name].append(value)
    write_table(windows, SEGMENT_SCHEMA, truth_dir / "truth" / "segments.parquet")
    write_table(windows, SEGMENT_SCHEMA, results / "segments" / "part-0.parquet")
    frames = {name: [] for name in TRUTH_FRAME_SCHEMA.names}
    for camera in ("cam01", "cam02"):
        for k in range(600):
            for name, value in zip(TRUTH_FRAME_SCHEMA.names, (camera, k, at(k / 5), "v", "car", 0, 0, 1, 1, 1.0, 30.0)):
                frames[name].append(value)
    write_table(frames, TRUTH_FRAME_SCHEMA, truth_dir / "truth" / "frames.parquet")
    if with_incidents:
        write_table(pa_table(TRUTH, TRUTH_INCIDENT_SCHEMA), TRUTH_INCIDENT_SCHEMA,
                    truth_dir / "truth" / "incidents.parquet")
        extra = detections(("collision", "cam01", "cam01.a", 100.0, 101.0))
        write_table(pa_table(pd.concat([PERFECT, extra], ignore_index=True), INCIDENT_SCHEMA), INCIDENT_SCHEMA,
                    results / "incidents.parquet")
    return truth_dir, results


def pa_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def test_cli_prints_the_incident_table_and_writes_json(tmp_path, capsys):
    truth_dir, results = write_case(tmp_path)
    out = tmp_path / "scores.json"
    assert main(["score", "--truth", str(truth_dir), "--results", str(results), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "incident type" in printed and "0.07 camera-hours" in printed
    overall_line = next(line for line in printed.splitlines() if line.startswith("overall") and "FAIL" in line)
    assert overall_line.split()[1:6] == ["4", "5", "4", "100.0", "pass"]
    report = json.loads(out.read_text())
    assert report["segments"][-1]["scope"] == "overall"
    overall = report["incidents"][-1]
    assert overall["scope"] == "overall" and overall["false_alarms"] == 1 and overall["matched"] == 4
    assert overall["false_alarms_per_camera_hour"] == pytest.approx(1 / (240 / 3600), abs=0.001)
    assert report["camera_hours"] == pytest.approx(240 / 3600, abs=1e-4)


def test_cli_without_incidents_says_so_and_scores_segments(tmp_path, capsys):
    truth_dir, results = write_case(tmp_path, with_incidents=False)
    out = tmp_path / "scores.json"
    assert main(["score", "--truth", str(truth_dir), "--results", str(results), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "incidents not scored" in printed and "incident type" not in printed
    assert "incidents" not in json.loads(out.read_text())


def test_cli_unreadable_incidents_are_one_line_and_exit_2(tmp_path, capsys):
    truth_dir, results = write_case(tmp_path)
    (results / "incidents.parquet").write_text("not parquet")
    assert main(["score", "--truth", str(truth_dir), "--results", str(results)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "cannot read detected incidents" in captured.err
