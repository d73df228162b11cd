"""CityState applies each segment window once and serves the congestion map; HistoryWriter writes the
history contract and loses nothing buffered."""

from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest

from casaflow.city import CityState, HistoryWriter, read_segments
from casaflow.history import SEGMENT_SCHEMA
from casaflow.inventory import Calibration, Camera, Inventory, Segment
from casaflow.measurement import SegmentWindow

END = datetime(2026, 3, 2, 8, 1, tzinfo=timezone.utc)


def inventory() -> Inventory:
    segment = Segment(
        id="c1.north", name="Bd Zerktouni northbound", zone=[[0, 0], [10, 0], [10, 10]], count_line=[[0, 5], [10, 5]],
        direction_deg=0, lanes=2, length_m=45, speed_limit_kmh=50, geometry=[[-7.59, 33.57], [-7.59, 33.571]],
    )
    camera = Camera(id="c1", url="rtsp://user:secret@10.0.0.1/stream", lon=-7.59, lat=33.57,
                    calibration=Calibration(homography=[[1, 0, 0], [0, 1, 0], [0, 0, 1]]), segments=[segment])
    return Inventory(city="Casablanca", cameras=[camera])


def window(minutes: int, speed_kmh: float | None = 40.0) -> SegmentWindow:
    ratio = None if speed_kmh is None else speed_kmh / 50
    return SegmentWindow("c1.north", "c1", END + timedelta(minutes=minutes), 60.0, 10, 600.0, speed_kmh, 12.0, ratio, "B")


def test_each_window_applied_once_and_latest_wins():
    state = CityState(inventory())
    assert len(state.apply([window(0), window(1)])) == 2
    assert state.apply([window(1), window(0)]) == []
    assert state.latest["c1.north"].window_end == END + timedelta(minutes=1)


def test_congestion_map_is_geojson_with_every_segment():
    state = CityState(inventory())
    empty = state.congestion_geojson()
    assert empty["type"] == "FeatureCollection" and empty["features"][0]["properties"]["los"] is None
    state.apply([window(0, speed_kmh=20.0)])
    feature = state.congestion_geojson()["features"][0]
    assert feature["geometry"]["type"] == "LineString"
    assert feature["properties"]["jam_class"] == "slow"
    assert feature["properties"]["name"] == "Bd Zerktouni northbound"


def test_history_writer_appends_parts_with_the_contract_schema(tmp_path):
    writer = HistoryWriter(tmp_path)
    writer.add([window(0), window(1)])
    assert writer.flush() == 2
    writer.add([window(2, speed_kmh=None)])
    assert writer.flush() == 1 and writer.flush() == 0
    table = read_segments(tmp_path)
    assert table.schema.equals(SEGMENT_SCHEMA) and table.num_rows == 3
    assert pq.read_table(tmp_path / "segments").column("mean_speed_kmh").null_count == 1
    assert len(list((tmp_path / "segments").glob("part-*.parquet"))) == 2


def test_segment_history_and_unknown_segment():
    state = CityState(inventory())
    state.apply([window(0), window(1), window(2)])
    assert [w.window_end for w in state.segment_history("c1.north", END)] == [END + timedelta(minutes=k) for k in (1, 2)]
    assert len(state.segment_history("c1.north")) == 3
    with pytest.raises(KeyError):
        state.segment_history("nowhere")


def test_city_summary_share_and_congestion_index():
    state = CityState(inventory())
    assert state.summary()["congestion_index"] is None
    state.apply([window(0, speed_kmh=25.0)])
    summary = state.congestion_geojson()["summary"]
    assert summary["congestion_index"] == 2.0
    assert summary["share_los_e_or_f"] == 0.0 and summary["segments_measured"] == 1
