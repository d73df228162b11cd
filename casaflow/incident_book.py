"""The aggregator's incident store: idempotent, deduplicated across cameras, durable, with a resumable event log.

One SQLite file in WAL mode (synchronous=FULL), so a restarted aggregator finds every incident, transition
and event it committed. Events (every raise, end, merge and transition) get monotonic integer ids, so an
alert stream (Server-Sent Events) resumes from `Last-Event-ID` with `events_since`.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType

from casaflow.history import write_table
from casaflow.incidents import INCIDENT_SCHEMA, INCIDENT_STATUSES, Incident

SAME_WAY_DEG = 45.0
"""Segments whose travel bearings differ by at most this carry the same traffic stream."""
TRANSITIONS = {"acknowledged": ("open",), "dispatched": ("open", "acknowledged"),
               "resolved": ("open", "acknowledged", "dispatched")}
"""Target status -> statuses it may be reached from: forward only, steps may be skipped."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    incident_id TEXT PRIMARY KEY, type TEXT NOT NULL, camera_id TEXT NOT NULL, segment_id TEXT NOT NULL,
    start_ms INTEGER NOT NULL, detected_ms INTEGER NOT NULL, end_ms INTEGER, lon REAL NOT NULL, lat REAL NOT NULL,
    severity INTEGER NOT NULL, object_ids TEXT NOT NULL, clip_path TEXT, status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_start ON incidents (start_ms);
CREATE INDEX IF NOT EXISTS incidents_type_start ON incidents (type, start_ms);
CREATE TABLE IF NOT EXISTS aliases (alias_id TEXT PRIMARY KEY, incident_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL, kind TEXT NOT NULL,
    by TEXT, at_ms INTEGER NOT NULL, incident TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_incident ON events (incident_id);
"""


class IllegalTransition(ValueError):
    """A lifecycle transition not allowed from the incident's current status."""


class UnknownIncident(KeyError):
    """No incident with that id (or alias)."""


@dataclass(frozen=True)
class IncidentEvent:
    """One entry of the alert stream.

    Attributes:
        event_id: Monotonic, for `Last-Event-ID`.
        kind: raised, merged, ended, evidence, acknowledged, dispatched or resolved.
        incident_id: The (canonical) incident.
        by: Who made a transition; None for the system's own events.
        at: UTC time of the event (the transition's time; the detection time for a raise).
        incident: The incident as it stood after the event.
    """

    event_id: int
    kind: str
    incident_id: str
    by: str | None
    at: datetime
    incident: Incident

    def as_dict(self) -> dict:
        """JSON-ready form for the alert stream and webhooks (times as ISO 8601 UTC)."""
        incident = {**self.incident.as_row(), "end_ts": self.incident.end_ts}
        return {
            "event_id": self.event_id, "kind": self.kind, "incident_id": self.incident_id, "by": self.by,
            "at": self.at.isoformat(),
            "incident": {k: v.isoformat() if isinstance(v, datetime) else v for k, v in incident.items()},
        }


def _ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return int(round(ts.timestamp() * 1000))


def _ts(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def distance_m(lon_a: float, lat_a: float, lon_b: float, lat_b: float) -> float:
    """Ground distance between two lon/lat points (equirectangular, fine below a few km), metres."""
    mean_lat = math.radians((lat_a + lat_b) / 2)
    dx = math.radians(lon_b - lon_a) * math.cos(mean_lat)
    dy = math.radians(lat_b - lat_a)
    return 6_371_008.8 * math.hypot(dx, dy)


class IncidentBook:
    """Durable incident store with lifecycle and alert stream.

    Args:
        path: The SQLite file (created if missing).
        dedupe_m: Incidents of the same type from different cameras closer than this are one event.
        dedupe_s: ... and whose starts differ by at most this many seconds.
        segment_bearings_deg: Travel bearing by segment id (`Inventory.segment_bearings_deg`): two cameras
            see one event only on segments travelling the same way (within `SAME_WAY_DEG`). The approaches
            of one junction are within `dedupe_m` of each other, and each one's queue is its own event.
    """

    def __init__(self, path: str | Path, *, dedupe_m: float = 60.0, dedupe_s: float = 5.0,
                 segment_bearings_deg: Mapping[str, float] = MappingProxyType({})):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dedupe_m = dedupe_m
        self.dedupe_s = dedupe_s
        self.segment_bearings_deg = dict(segment_bearings_deg)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> IncidentBook:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------------------

    def upsert(self, incidents: Iterable[Incident]) -> list[str]:
        """Stores incidents from the cameras, at-least-once safe.

        A known id (or an id merged before) changes nothing but a newly known `end_ts` or `clip_path`; an
        incident of the same type from another camera within `dedupe_m` and `dedupe_s` is merged into the
        existing one (its objects added, its id kept as an alias). The lifecycle status stays the book's.

        Returns:
            The canonical incident id of each input, in order.
        """
        ids = []
        with self._lock, self._transaction():
            for incident in incidents:
                ids.append(self._upsert_one(incident))
        return ids

    def _upsert_one(self, incident: Incident) -> str:
        canonical = self._canonical(incident.incident_id)
        if canonical is None:
            duplicate = self._duplicate_of(incident)
            if duplicate is None:
                stored = replace(incident, status="open")
                self._write(stored)
                self._event(stored, "raised", by=None, at=incident.detected_ts)
                return stored.incident_id
            self._db.execute("INSERT INTO aliases VALUES (?, ?)", (incident.incident_id, duplicate.incident_id))
            merged = replace(duplicate, object_ids=tuple(dict.fromkeys(duplicate.object_ids + incident.object_ids)))
            self._write(merged)
            self._event(merged, "merged", by=None, at=incident.detected_ts)
            canonical = duplicate.incident_id
        stored = self._get(canonical)
        if incident.end_ts is not None and stored.end_ts is None:
            stored = replace(stored, end_ts=incident.end_ts)
            self._write(stored)
            self._event(stored, "ended", by=None, at=incident.end_ts)
        if incident.clip_path is not None and stored.clip_path is None:
            stored = replace(stored, clip_path=incident.clip_path)
            self._write(stored)
            self._event(stored, "evidence", by=None, at=incident.detected_ts)
        return canonical

    def _duplicate_of(self, incident: Incident) -> Incident | None:
        window_ms = int(self.dedupe_s * 1000)
        start_ms = _ms(incident.start_ts)
        rows = self._db.execute(
            "SELECT * FROM incidents WHERE type = ? AND camera_id != ? AND start_ms BETWEEN ? AND ? ORDER BY start_ms",
            (incident.type, incident.camera_id, start_ms - window_ms, start_ms + window_ms),
        ).fetchall()
        for row in rows:
            other = self._incident(row)
            if distance_m(incident.lon, incident.lat, other.lon, other.lat) <= self.dedupe_m and self._same_way(incident, other):
                return other
        return None

    def _same_way(self, a: Incident, b: Incident) -> bool:
        bearing_a, bearing_b = self.segment_bearings_deg.get(a.segment_id), self.segment_bearings_deg.get(b.segment_id)
        if bearing_a is None or bearing_b is None:
            return True
        return abs((bearing_a - bearing_b + 180.0) % 360.0 - 180.0) <= SAME_WAY_DEG

    def set_clip(self, incident_id: str, clip_path: str) -> Incident:
        """Records the evidence clip of an incident."""
        with self._lock, self._transaction():
            stored = self._require(incident_id)
            stored = replace(stored, clip_path=clip_path)
            self._write(stored)
            self._event(stored, "evidence", by=None, at=datetime.now(timezone.utc))
            return stored

    def acknowledge(self, incident_id: str, *, by: str, at: datetime | None = None) -> Incident:
        """open -> acknowledged."""
        return self._transition(incident_id, "acknowledged", by=by, at=at)

    def dispatch(self, incident_id: str, *, by: str, at: datetime | None = None) -> Incident:
        """open or acknowledged -> dispatched (a field team is on its way)."""
        return self._transition(incident_id, "dispatched", by=by, at=at)

    def resolve(self, incident_id: str, *, by: str, at: datetime | None = None) -> Incident:
        """Any status but resolved -> resolved."""
        return self._transition(incident_id, "resolved", by=by, at=at)

    def _transition(self, incident_id: str, status: str, *, by: str, at: datetime | None) -> Incident:
        if not by or not by.strip():
            raise ValueError("a transition needs who made it (by)")
        at = at or datetime.now(timezone.utc)
        _ms(at)
        with self._lock, self._transaction():
            stored = self._require(incident_id)
            if stored.status not in TRANSITIONS[status]:
                raise IllegalTransition(f"incident {stored.incident_id} is {stored.status}; it cannot become {status}")
            stored = replace(stored, status=status)
            self._write(stored)
            self._event(stored, status, by=by, at=at)
            return stored

    # -- reads --------------------------------------------------------------------------------------

    def get(self, incident_id: str) -> Incident | None:
        """The incident by id or alias, None if unknown."""
        with self._lock:
            canonical = self._canonical(incident_id)
            return None if canonical is None else self._get(canonical)

    def list(self, *, type: str | None = None, camera: str | None = None, status: str | None = None,
             since: datetime | None = None, until: datetime | None = None, limit: int | None = None,
             cameras: Iterable[str] | None = None) -> list[Incident]:
        """Incidents by start time, oldest first, filtered (`since` <= start_ts < `until`; `cameras`: any of)."""
        if status is not None and status not in INCIDENT_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        clauses, params = [], []
        for column, value in (("type", type), ("camera_id", camera), ("status", status)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if cameras is not None:
            cameras = list(cameras)
            clauses.append(f"camera_id IN ({', '.join('?' * len(cameras))})" if cameras else "0")
            params += cameras
        if since is not None:
            clauses.append("start_ms >= ?")
            params.append(_ms(since))
        if until is not None:
            clauses.append("start_ms < ?")
            params.append(_ms(until))
        sql = "SELECT * FROM incidents" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        sql += " ORDER BY start_ms, incident_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._lock:
            return [self._incident(row) for row in self._db.execute(sql, params).fetchall()]

    def history(self, incident_id: str) -> list[IncidentEvent]:
        """Every event of one incident, oldest first: raise, merges, end, transitions with who and when."""
        with self._lock:
            canonical = self._canonical(incident_id)
            if canonical is None:
                raise UnknownIncident(incident_id)
            rows = self._db.execute("SELECT * FROM events WHERE incident_id = ? ORDER BY event_id", (canonical,))
            return [self._event_row(row) for row in rows.fetchall()]

    def events_since(self, event_id: int = 0, *, limit: int = 1000) -> list[IncidentEvent]:
        """Events after `event_id` (0: from the start), in order, at most `limit`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events WHERE event_id > ? ORDER BY event_id LIMIT ?", (int(event_id), int(limit))
            )
            return [self._event_row(row) for row in rows.fetchall()]

    def last_event_id(self) -> int:
        """The newest event's id (0 when there is none): where a new alert subscriber starts."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(event_id), 0) FROM events").fetchone()[0])

    def write_parquet(self, path: str | Path) -> int:
        """Writes the history's `incidents.parquet` (`INCIDENT_SCHEMA`); returns the row count."""
        incidents = self.list()
        columns = {name: [i.as_row()[name] for i in incidents] for name in INCIDENT_SCHEMA.names}
        write_table(columns, INCIDENT_SCHEMA, Path(path))
        return len(incidents)

    # -- plumbing -----------------------------------------------------------------------------------

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, exc, tb):
                db.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    def _canonical(self, incident_id: str) -> str | None:
        if self._db.execute("SELECT 1 FROM incidents WHERE incident_id = ?", (incident_id,)).fetchone():
            return incident_id
        row = self._db.execute("SELECT incident_id FROM aliases WHERE alias_id = ?", (incident_id,)).fetchone()
        return None if row is None else row[0]

    def _require(self, incident_id: str) -> Incident:
        canonical = self._canonical(incident_id)
        if canonical is None:
            raise UnknownIncident(incident_id)
        return self._get(canonical)

    def _get(self, canonical: str) -> Incident:
        row = self._db.execute("SELECT * FROM incidents WHERE incident_id = ?", (canonical,)).fetchone()
        return self._incident(row)

    def _write(self, incident: Incident) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                incident.incident_id, incident.type, incident.camera_id, incident.segment_id,
                _ms(incident.start_ts), _ms(incident.detected_ts),
                None if incident.end_ts is None else _ms(incident.end_ts),
                incident.lon, incident.lat, incident.severity, json.dumps(list(incident.object_ids)),
                incident.clip_path, incident.status,
            ),
        )

    def _event(self, incident: Incident, kind: str, *, by: str | None, at: datetime) -> None:
        self._db.execute(
            "INSERT INTO events (incident_id, kind, by, at_ms, incident) VALUES (?, ?, ?, ?, ?)",
            (incident.incident_id, kind, by, _ms(at), json.dumps(_to_json(incident))),
        )

    @staticmethod
    def _incident(row) -> Incident:
        (incident_id, type_, camera_id, segment_id, start_ms, detected_ms, end_ms, lon, lat, severity, object_ids,
         clip_path, status) = row
        return Incident(
            incident_id=incident_id, type=type_, camera_id=camera_id, segment_id=segment_id,
            start_ts=_ts(start_ms), detected_ts=_ts(detected_ms), end_ts=_ts(end_ms), lon=lon, lat=lat,
            severity=severity, object_ids=tuple(json.loads(object_ids)), clip_path=clip_path, status=status,
        )

    @staticmethod
    def _event_row(row) -> IncidentEvent:
        event_id, incident_id, kind, by, at_ms, payload = row
        return IncidentEvent(event_id, kind, incident_id, by, _ts(at_ms), _from_json(json.loads(payload)))


def incident_stats(incidents: Iterable[Incident], district_of: dict[str, str]) -> dict:
    """Counts by type, district (of the camera) and UTC hour, and the time to detect (detected - start).

    Returns:
        `{"total", "by_type", "by_district", "by_hour", "by_status", "mean_time_to_detect_s",
        "time_to_detect_s_by_type"}`; hours are ISO 8601 UTC hour starts.
    """
    by_type: dict[str, int] = {}
    by_district: dict[str, int] = {}
    by_hour: dict[str, int] = {}
    by_status: dict[str, int] = {}
    delays: dict[str, list[float]] = {}
    for incident in incidents:
        by_type[incident.type] = by_type.get(incident.type, 0) + 1
        district = district_of.get(incident.camera_id) or "unassigned"
        by_district[district] = by_district.get(district, 0) + 1
        hour = incident.start_ts.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0).isoformat()
        by_hour[hour] = by_hour.get(hour, 0) + 1
        by_status[incident.status] = by_status.get(incident.status, 0) + 1
        delays.setdefault(incident.type, []).append(max((incident.detected_ts - incident.start_ts).total_seconds(), 0.0))
    every = [d for values in delays.values() for d in values]
    return {
        "total": len(every),
        "by_type": dict(sorted(by_type.items())),
        "by_district": dict(sorted(by_district.items())),
        "by_hour": dict(sorted(by_hour.items())),
        "by_status": dict(sorted(by_status.items())),
        "mean_time_to_detect_s": round(sum(every) / len(every), 2) if every else None,
        "time_to_detect_s_by_type": {t: round(sum(v) / len(v), 2) for t, v in sorted(delays.items())},
    }


def _to_json(incident: Incident) -> dict:
    row = incident.as_row()
    row["end_ts"] = incident.end_ts
    return {k: (_ms(v) if isinstance(v, datetime) else v) for k, v in row.items()}


def _from_json(data: dict) -> Incident:
    return Incident(
        **{k: v for k, v in data.items() if k not in ("start_ts", "detected_ts", "end_ts", "object_ids")},
        start_ts=_ts(data["start_ts"]), detected_ts=_ts(data["detected_ts"]), end_ts=_ts(data.get("end_ts")),
        object_ids=tuple(data["object_ids"]),
    )
