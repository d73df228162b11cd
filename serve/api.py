"""The HTTP API: FastAPI behind Ray Serve, reading the aggregator.

`create_app(reader)` builds the FastAPI app around anything with the aggregator's read methods, so tests
call it with a plain object and `TestClient`; `ApiIngress` is the Serve shell over the real actor.
"""

import asyncio
import inspect
from typing import Any, Literal, Protocol

from datetime import datetime, timezone
from importlib import resources

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from ray import serve

from casaflow.incidents import INCIDENT_STATUSES, INCIDENT_TYPES


IncidentType = Literal[INCIDENT_TYPES]
IncidentStatus = Literal[INCIDENT_STATUSES]


def _utc(ts: datetime | None) -> datetime | None:
    """Query times without a zone are taken as UTC."""
    return ts.replace(tzinfo=timezone.utc) if ts is not None and ts.tzinfo is None else ts


class CityReader(Protocol):
    def congestion(self) -> dict: ...

    def camera_status(self) -> list[dict]: ...

    def counters(self) -> dict: ...

    def segment_history(self, segment_id: str, since: datetime | None) -> list[dict] | None: ...

    def incidents(self, filters: dict) -> list[dict]: ...

    def incident(self, incident_id: str) -> dict | None: ...


async def _call(reader: Any, method: str, *args):
    """Call a reader method on a plain object, or `.remote()` on a Ray actor handle."""
    attribute = getattr(reader, method)
    if hasattr(attribute, "remote"):
        return await attribute.remote(*args)
    result = attribute(*args)
    return await result if inspect.isawaitable(result) else result


def create_app(reader: CityReader) -> FastAPI:
    app = FastAPI(title="casaflow", version="0.1.0", description="Live traffic state of the city's cameras.")
    dashboard = (resources.files("serve") / "dashboard.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        """The operators' dashboard: the congestion map and camera states, refreshed every few seconds."""
        return dashboard

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/api/v1/cameras")
    async def cameras() -> dict:
        """Every camera: source state, analysed fps, lag, drops; URLs with credentials redacted."""
        rows = await _call(reader, "camera_status")
        return {"data": rows, "count": len(rows)}

    @app.get("/api/v1/congestion")
    async def congestion() -> dict:
        """GeoJSON FeatureCollection: one LineString per segment with its latest window and LOS."""
        return await _call(reader, "congestion")

    @app.get("/api/v1/segments/{segment_id}/history")
    async def segment_history(segment_id: str, since: datetime | None = None) -> dict:
        """A segment's windows (oldest first), those ending after `since` (ISO 8601) if given."""
        rows = await _call(reader, "segment_history", segment_id, _utc(since))
        if rows is None:
            raise HTTPException(status_code=404, detail=f"unknown segment {segment_id!r}")
        return {"data": rows, "count": len(rows)}

    @app.get("/api/v1/incidents")
    async def incidents(
        type: IncidentType | None = None,
        camera: str | None = None,
        status: IncidentStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = Query(500, ge=1, le=10_000),
    ) -> dict:
        """Incidents by start time, filtered by type, camera, status and time range (ISO 8601, UTC)."""
        filters = {"type": type, "camera": camera, "status": status, "since": _utc(since), "until": _utc(until), "limit": limit}
        rows = await _call(reader, "incidents", filters)
        return {"data": rows, "count": len(rows)}

    @app.get("/api/v1/incidents/{incident_id}")
    async def incident(incident_id: str) -> dict:
        """One incident with its lifecycle history."""
        found = await _call(reader, "incident", incident_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"unknown incident {incident_id!r}")
        return found

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> str:
        """Prometheus text exposition of the city-level counters and per-camera gauges."""
        counters, rows = await asyncio.gather(_call(reader, "counters"), _call(reader, "camera_status"))
        lines = []
        for name, value in counters.items():
            lines += [f"# TYPE casaflow_{name} gauge", f"casaflow_{name} {value}"]
        for metric, key in (
            ("camera_fps", "fps"), ("camera_lag_seconds", "lag_s"), ("camera_frames_dropped", "frames_dropped"),
            ("camera_frames_analysed", "frames_analysed"),
        ):
            lines.append(f"# TYPE casaflow_{metric} gauge")
            for row in rows:
                if row.get(key) is not None:
                    lines.append(f'casaflow_{metric}{{camera_id="{row["camera_id"]}"}} {row[key]}')
        return "\n".join(lines) + "\n"

    return app


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
@serve.ingress()
class ApiIngress:
    """Serve shell: the FastAPI app over the aggregator actor handle, built on the replica."""

    def __init__(self, aggregator):
        self.aggregator = aggregator

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self.aggregator)
