"""The aggregator actor: single writer of the history, holder of the city state the API reads."""

import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import ray

from casaflow.alerts import WebhookNotifier
from casaflow.city import CityState, HistoryWriter
from casaflow.evidence import Evidence, EvidenceStore
from casaflow.incident_book import IllegalTransition, IncidentBook, UnknownIncident, incident_stats
from casaflow.incidents import Incident
from casaflow.inventory import load_inventory
from casaflow.measurement import SegmentWindow

FLUSH_EVERY_S = 10.0


@ray.remote
class Aggregator:
    """Receives segment windows, camera status, incidents and their evidence from every CameraGroup (at
    least once, idempotent); keeps incidents and evidence under `store_dir`, which survives a restart."""

    def __init__(self, inventory_path: str, out_dir: str | None, *, store_dir: str, evidence_retention_s: float | None = None,
                 webhooks: tuple[str, ...] = ()):
        self.state = CityState(load_inventory(inventory_path))
        self.district_of = {camera.id: camera.district for camera in self.state.inventory.cameras}
        self.out_dir = Path(out_dir) if out_dir else None
        self.writer = HistoryWriter(self.out_dir) if self.out_dir else None
        self.book = IncidentBook(Path(store_dir) / "incidents.sqlite", segment_bearings_deg=self.state.inventory.segment_bearings_deg())
        self.evidence = EvidenceStore(Path(store_dir) / "evidence", retention_s=evidence_retention_s)
        self.notifier = WebhookNotifier(self.book, webhooks) if webhooks else None
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

    def attach_evidence(self, evidence: Evidence) -> str | None:
        """Store an incident's clip and snapshot; returns the clip path recorded on the incident (the first
        camera's evidence wins when several cameras saw a merged incident)."""
        incident = self.book.get(evidence.incident_id)
        if incident is None or incident.clip_path is not None:
            return None
        clip_path, _ = self.evidence.save(replace(evidence, incident_id=incident.incident_id))
        if clip_path is None:
            return None
        self.book.set_clip(incident.incident_id, str(clip_path))
        return str(clip_path)

    def evidence_file(self, incident_id: str, kind: str) -> bytes | None:
        """The clip (`kind` 'clip') or snapshot ('snapshot') bytes of an incident, None if absent or expired."""
        incident = self.book.get(incident_id)
        if incident is None:
            return None
        clip_path, snapshot_path = self.evidence.paths(incident.incident_id)
        path = clip_path if kind == "clip" else snapshot_path
        try:
            return path.read_bytes() if path is not None else None
        except FileNotFoundError:
            return None

    def transition(self, incident_id: str, status: str, by: str) -> dict:
        """acknowledge / dispatch / resolve; `{"incident": row}` or `{"error": reason, "detail": text}`."""
        action = {"acknowledged": self.book.acknowledge, "dispatched": self.book.dispatch, "resolved": self.book.resolve}[status]
        try:
            return {"incident": self._row(action(incident_id, by=by))}
        except UnknownIncident:
            return {"error": "unknown", "detail": f"unknown incident {incident_id!r}"}
        except IllegalTransition as error:
            return {"error": "conflict", "detail": str(error)}
        except ValueError as error:
            return {"error": "invalid", "detail": str(error)}

    def last_event_id(self) -> int:
        return self.book.last_event_id()

    def events_since(self, event_id: int, limit: int = 500) -> list[dict]:
        """Alert-stream events after `event_id`, oldest first."""
        return [event.as_dict() for event in self.book.events_since(event_id, limit=limit)]

    def stats(self, filters: dict) -> dict:
        """Incident counts by type, district and hour, and time to detect, over the filtered incidents."""
        return incident_stats(self.book.list(**self._book_filters(filters)), self.district_of)

    def flush(self) -> int:
        """Write buffered windows and the incidents table to the history; drop evidence past retention."""
        self._last_flush = time.monotonic()
        self.evidence.prune(datetime.now(timezone.utc))
        if self.writer is None:
            return 0
        self.book.write_parquet(self.out_dir / "incidents.parquet")
        return self.writer.flush()

    def incidents(self, filters: dict) -> list[dict]:
        return [self._row(incident) for incident in self.book.list(**self._book_filters(filters))]

    def incident(self, incident_id: str) -> dict | None:
        found = self.book.get(incident_id)
        if found is None:
            return None
        history = [{"kind": e.kind, "by": e.by, "at": e.at} for e in self.book.history(incident_id)]
        clip_path, snapshot_path = self.evidence.paths(found.incident_id)
        return {**self._row(found), "has_clip": clip_path is not None,
                "has_snapshot": snapshot_path is not None, "history": history}

    def _row(self, incident: Incident) -> dict:
        return {**incident.as_row(), "end_ts": incident.end_ts, "district": self.district_of.get(incident.camera_id, "")}

    def _book_filters(self, filters: dict) -> dict:
        """API filters -> `IncidentBook.list` arguments (a district becomes its cameras)."""
        filters = dict(filters)
        district = filters.pop("district", None)
        if district is not None:
            filters["cameras"] = [camera for camera, name in self.district_of.items() if name == district]
        return filters

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
