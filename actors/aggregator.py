"""The aggregator actor: single writer of the history, holder of the city state the API reads."""

import time
from datetime import datetime
from pathlib import Path

import ray

from casaflow.city import CityState, HistoryWriter
from casaflow.incident_book import IncidentBook
from casaflow.incidents import Incident
from casaflow.inventory import load_inventory
from casaflow.measurement import SegmentWindow

FLUSH_EVERY_S = 10.0


@ray.remote
class Aggregator:
    """Receives segment windows and camera status from every CameraGroup (at least once, idempotent)."""

    def __init__(self, inventory_path: str, out_dir: str | None, *, incident_store: str):
        self.state = CityState(load_inventory(inventory_path))
        self.out_dir = Path(out_dir) if out_dir else None
        self.writer = HistoryWriter(self.out_dir) if self.out_dir else None
        self.book = IncidentBook(incident_store)
        self.cameras: dict[str, dict] = {}
        self.windows_received = 0
        self._last_flush = time.monotonic()

    def submit(self, windows: list[SegmentWindow], camera_status: list[dict], incidents: list[Incident] = ()) -> int:
        """Apply a group's batch (windows, camera states, raised or ended incidents); returns how many
        windows were new. Both windows and incidents are idempotent, so a batch sent twice is harmless."""
        self.book.upsert(incidents)
        fresh = self.state.apply(windows)
        self.windows_received += len(windows)
        for status in camera_status:
            self.cameras[status["camera_id"]] = status
        if self.writer is not None:
            self.writer.add(fresh)
            if time.monotonic() - self._last_flush > FLUSH_EVERY_S:
                self.flush()
        return len(fresh)

    def flush(self) -> int:
        """Write buffered windows and the incidents table to the history."""
        self._last_flush = time.monotonic()
        if self.writer is None:
            return 0
        self.book.write_parquet(self.out_dir / "incidents.parquet")
        return self.writer.flush()

    def incidents(self, filters: dict) -> list[dict]:
        return [incident.as_row() for incident in self.book.list(**filters)]

    def incident(self, incident_id: str) -> dict | None:
        found = self.book.get(incident_id)
        if found is None:
            return None
        history = [{"kind": e.kind, "by": e.by, "at": e.at} for e in self.book.history(incident_id)]
        return {**found.as_row(), "history": history}

    def congestion(self) -> dict:
        return self.state.congestion_geojson()

    def segment_history(self, segment_id: str, since: datetime | None = None) -> list[dict] | None:
        """The segment's windows after `since`; None for an unknown segment."""
        try:
            return [w.as_row() for w in self.state.segment_history(segment_id, since)]
        except KeyError:
            return None

    def camera_status(self) -> list[dict]:
        return [
            {**self.cameras.get(camera.id, {"camera_id": camera.id, "status": "connecting"}),
             "name": camera.name, "url": camera.redacted_url, "lon": camera.lon, "lat": camera.lat}
            for camera in self.state.inventory.cameras
        ]

    def counters(self) -> dict:
        return {"windows_received": self.windows_received, "segments_with_data": len(self.state.latest)}
