"""The history contract (DESIGN.md): segment windows and incidents as Parquet, with fixed schemas."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SEGMENT_SCHEMA = pa.schema(
    [
        ("segment_id", pa.string()),
        ("camera_id", pa.string()),
        ("window_end", pa.timestamp("ms", tz="UTC")),
        ("window_s", pa.float64()),
        ("vehicle_count", pa.int64()),
        ("flow_vph", pa.float64()),
        ("mean_speed_kmh", pa.float64()),
        ("density_vpkm", pa.float64()),
        ("speed_ratio", pa.float64()),
        ("los", pa.string()),
        ("occupancy", pa.float64()),
        ("car_count", pa.int64()),
        ("bus_count", pa.int64()),
        ("truck_count", pa.int64()),
        ("motorcycle_count", pa.int64()),
        ("bicycle_count", pa.int64()),
    ]
)
"""DESIGN.md's segment history, then (appended, so readers of the contract's columns are unaffected):
`occupancy` (mean share of the window a lane's count line is covered by a vehicle, 0..1, as a loop
detector measures it) and the count line's crossings per vehicle class (`<class>_count`, summing to
`vehicle_count`)."""

TRUTH_INCIDENT_SCHEMA = pa.schema(
    [
        ("incident_id", pa.string()),
        ("type", pa.string()),
        ("camera_id", pa.string()),
        ("segment_id", pa.string()),
        ("start_ts", pa.timestamp("ms", tz="UTC")),
        ("end_ts", pa.timestamp("ms", tz="UTC")),
        ("object_ids", pa.list_(pa.string())),
    ]
)

TRUTH_FRAME_SCHEMA = pa.schema(
    [
        ("camera_id", pa.string()),
        ("frame_index", pa.int64()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("object_id", pa.string()),
        ("cls", pa.string()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
        ("visible", pa.float32()),
        ("speed_kmh", pa.float32()),
    ]
)


def write_table(rows: dict[str, list] | pa.Table, schema: pa.Schema, path: Path) -> None:
    """Write columns (or a table) with exactly `schema` to one Parquet file."""
    table = rows if isinstance(rows, pa.Table) else pa.table(rows, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.cast(schema), path)
