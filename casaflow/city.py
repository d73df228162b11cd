"""The city state kept by the aggregator: the latest window of every segment, the congestion map,
and the history it writes (DESIGN.md's segments dataset).

Windows arrive at least once from the camera groups; they are keyed by (segment_id, window_end), so a
window delivered twice is applied and written once.
"""

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from casaflow.history import SEGMENT_SCHEMA
from casaflow.inventory import Inventory
from casaflow.measurement import SegmentWindow
from casaflow.measures import jam_class


@dataclass
class CityState:
    """Latest state of every segment of an inventory, fed with measured windows."""

    inventory: Inventory
    history_windows: int = 1440
    """Windows kept in memory per segment for the history endpoint (a day of minutes)."""
    latest: dict[str, SegmentWindow] = field(default_factory=dict)
    _seen: dict[str, datetime] = field(default_factory=dict)
    _history: dict[str, deque] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._segments = {s.id: s for c in self.inventory.cameras for s in c.segments}

    def apply(self, windows: Iterable[SegmentWindow]) -> list[SegmentWindow]:
        """Take windows in; returns those not seen before (to be written to the history)."""
        fresh = []
        for window in windows:
            newest = self._seen.get(window.segment_id)
            if newest is not None and window.window_end <= newest:
                continue
            self._seen[window.segment_id] = window.window_end
            self.latest[window.segment_id] = window
            self._history.setdefault(window.segment_id, deque(maxlen=self.history_windows)).append(window)
            fresh.append(window)
        return fresh

    def segment_history(self, segment_id: str, since: datetime | None = None) -> list[SegmentWindow]:
        """A segment's windows ending after `since` (oldest first); KeyError for an unknown segment."""
        if segment_id not in self._segments:
            raise KeyError(segment_id)
        return [w for w in self._history.get(segment_id, ()) if since is None or w.window_end > since]

    def summary(self) -> dict:
        """City-wide state: share of measured segments at LOS E or F, and the congestion index
        (observed travel time / free-flow travel time over the measured segments, free flow taken
        as the speed limit)."""
        measured = [(self._segments[s], w) for s, w in self.latest.items() if w.mean_speed_kmh]
        observed_h = sum(seg.length_m / 1000 / w.mean_speed_kmh for seg, w in measured)
        free_flow_h = sum(seg.length_m / 1000 / seg.speed_limit_kmh for seg, _ in measured)
        with_los = list(self.latest.values())
        return {
            "segments": len(self._segments),
            "segments_measured": len(with_los),
            "share_los_e_or_f": (sum(w.los in ("E", "F") for w in with_los) / len(with_los)) if with_los else None,
            "congestion_index": observed_h / free_flow_h if free_flow_h else None,
        }

    def congestion_geojson(self) -> dict:
        """A GeoJSON FeatureCollection: one LineString per segment with its latest window and LOS."""
        features = []
        for camera in self.inventory.cameras:
            for segment in camera.segments:
                window = self.latest.get(segment.id)
                properties = {
                    "segment_id": segment.id,
                    "camera_id": camera.id,
                    "name": segment.name,
                    "direction_deg": segment.direction_deg,
                    "speed_limit_kmh": segment.speed_limit_kmh,
                    "window_end": window.window_end.isoformat() if window else None,
                    "vehicle_count": window.vehicle_count if window else None,
                    "flow_vph": window.flow_vph if window else None,
                    "mean_speed_kmh": window.mean_speed_kmh if window else None,
                    "density_vpkm": window.density_vpkm if window else None,
                    "speed_ratio": window.speed_ratio if window else None,
                    "los": window.los if window else None,
                    "jam_class": jam_class(window.speed_ratio) if window else None,
                }
                features.append(
                    {
                        "type": "Feature",
                        "geometry": {"type": "LineString", "coordinates": segment.geometry},
                        "properties": properties,
                    }
                )
        return {"type": "FeatureCollection", "features": features, "summary": self.summary()}


class HistoryWriter:
    """Appends segment windows to `DIR/segments/` as Parquet parts; nothing buffered is lost on close."""

    def __init__(self, out_dir: Path):
        self.segments_dir = Path(out_dir) / "segments"
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        self._buffer: list[SegmentWindow] = []
        self._part = len(list(self.segments_dir.glob("part-*.parquet")))

    def add(self, windows: Iterable[SegmentWindow]) -> None:
        self._buffer.extend(windows)

    def flush(self) -> int:
        """Write what is buffered as one new part; returns the number of rows written."""
        if not self._buffer:
            return 0
        rows = [w.as_row() for w in self._buffer]
        columns = {name: [row[name] for row in rows] for name in SEGMENT_SCHEMA.names}
        table = pa.table(columns, schema=SEGMENT_SCHEMA)
        path = self.segments_dir / f"part-{self._part:06d}.parquet"
        temporary = path.with_suffix(".tmp")
        pq.write_table(table, temporary)
        temporary.rename(path)
        self._part += 1
        written = len(self._buffer)
        self._buffer = []
        return written


def read_segments(out_dir: Path) -> pa.Table:
    """The whole segments dataset of a history folder."""
    return pq.read_table(Path(out_dir) / "segments", schema=SEGMENT_SCHEMA)
