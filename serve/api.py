"""The HTTP API: FastAPI behind Ray Serve, reading the aggregator.

`create_app(reader)` builds the FastAPI app around anything with the aggregator's read methods, so tests
call it with a plain object and `TestClient`; `ApiIngress` is the Serve shell over the real actor.
"""

import asyncio
import bisect
import inspect
import json
import math
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Literal, Protocol

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from ray import serve

from casaflow.incidents import INCIDENT_STATUSES, INCIDENT_TYPES


IncidentType = Literal[INCIDENT_TYPES]
IncidentStatus = Literal[INCIDENT_STATUSES]
ALERT_POLL_S = 0.1
"""How often an alert stream looks for new events: bounds the alert latency the stream adds."""
ALERT_HEARTBEAT_S = 15.0
"""An SSE comment this often keeps proxies from closing an idle stream."""
ALERT_PAGE = 500
"""Most events one read of the aggregator's log returns."""
ACTIONS = {"acknowledge": "acknowledged", "dispatch": "dispatched", "resolve": "resolved"}
EVIDENCE_MEDIA = {"clip": "video/mp4", "snapshot": "image/jpeg"}


class Transition(BaseModel):
    """Who acknowledges, dispatches or resolves an incident (an operator, a team)."""

    by: str = Field(min_length=1, max_length=200, pattern=r"\S")
    note: str | None = Field(default=None, max_length=2000)


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

    def transition(self, incident_id: str, status: str, by: str) -> dict: ...

    def last_event_id(self) -> int: ...

    def events_since(self, event_id: int, limit: int = 500) -> list[dict]: ...

    def stats(self, filters: dict) -> dict: ...

    def evidence_file(self, incident_id: str, kind: str) -> bytes | None: ...


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
    feed = AlertFeed(reader)

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
        district: str | None = None,
        status: IncidentStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = Query(500, ge=1, le=10_000),
    ) -> dict:
        """Incidents by start time, filtered by type, camera, district, status and time range (ISO 8601, UTC)."""
        filters = {"type": type, "camera": camera, "status": status, "since": _utc(since), "until": _utc(until), "limit": limit}
        if district is not None:
            filters["district"] = district
        rows = await _call(reader, "incidents", filters)
        return {"data": rows, "count": len(rows)}

    @app.get("/api/v1/incidents/{incident_id}")
    async def incident(incident_id: str) -> dict:
        """One incident with its lifecycle history and links to its evidence clip and snapshot."""
        found = await _call(reader, "incident", incident_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"unknown incident {incident_id!r}")
        base = f"/api/v1/incidents/{found['incident_id']}"
        return {**found, "clip_url": f"{base}/clip" if found.get("has_clip") else None,
                "snapshot_url": f"{base}/snapshot" if found.get("has_snapshot") else None}

    @app.get("/api/v1/incidents/{incident_id}/{kind}", responses={200: {"content": {"video/mp4": {}, "image/jpeg": {}}}})
    async def evidence(incident_id: str, kind: Literal["clip", "snapshot"]) -> Response:
        """The incident's evidence: `clip` (MP4, 10 s before to 10 s after) or `snapshot` (JPEG, tracks drawn)."""
        content = await _call(reader, "evidence_file", incident_id, kind)
        if content is None:
            raise HTTPException(status_code=404, detail=f"no {kind} for incident {incident_id!r} (not recorded yet, or expired)")
        suffix = "mp4" if kind == "clip" else "jpg"
        return Response(content, media_type=EVIDENCE_MEDIA[kind],
                        headers={"Content-Disposition": f'inline; filename="{_file_name(incident_id)}.{suffix}"'})

    @app.post("/api/v1/incidents/{incident_id}/{action}")
    async def transition(incident_id: str, action: Literal["acknowledge", "dispatch", "resolve"], body: Transition) -> dict:
        """Move an incident along open -> acknowledged -> dispatched -> resolved (steps may be skipped); 409 if
        it already went past that step."""
        result = await _call(reader, "transition", incident_id, ACTIONS[action], body.by.strip())
        if "error" in result:
            raise HTTPException(status_code={"unknown": 404, "conflict": 409}.get(result["error"], 422), detail=result["detail"])
        return result["incident"]

    @app.get("/api/v1/stats")
    async def stats(
        type: IncidentType | None = None,
        camera: str | None = None,
        district: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict:
        """Incident counts by type, district and hour (UTC), and mean time to detect, over a time range."""
        filters = {"type": type, "camera": camera, "since": _utc(since), "until": _utc(until)}
        if district is not None:
            filters["district"] = district
        return await _call(reader, "stats", filters)

    @app.get("/api/v1/alerts/stream", response_class=StreamingResponse)
    async def alerts_stream(
        request: Request,
        last_event_id: str | None = Header(None, description="set by EventSource on reconnect: resume after it"),
        after: int | None = Query(None, ge=0, description="start after this event id (0: every stored event)"),
    ) -> StreamingResponse:
        """Server-Sent Events: one `event: <kind>` per incident event (raised, merged, ended, evidence,
        acknowledged, dispatched, resolved) with the incident as JSON data. New clients start at the newest
        event; a client reconnecting with `Last-Event-ID` (or `?after=`) gets every event it missed."""
        cursor = after
        if last_event_id is not None:
            try:
                cursor = int(last_event_id)
            except ValueError:
                raise HTTPException(status_code=400, detail="Last-Event-ID must be an event id (integer)") from None
        if cursor is None:
            cursor = await _call(reader, "last_event_id")
        return StreamingResponse(
            alert_events(feed, cursor, is_disconnected=request.is_disconnected), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

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


class AlertFeed:
    """The API replica's one reader of the aggregator's event log, shared by every open alert stream.

    However many operators' screens are connected, the aggregator is asked for new events at most once per
    `poll_s` per replica; the streams read the recent events from here. A stream resuming from an event
    older than what is kept here reads its backlog from the aggregator directly.
    """

    def __init__(self, reader: Any, *, poll_s: float = ALERT_POLL_S, keep: int = 5000):
        self.reader = reader
        self.poll_s = poll_s
        self.keep = keep
        self._events: list[dict] = []
        self._complete_after: int | None = None
        """Every event with a larger id is in `_events` (up to the last poll)."""
        self._polled_at = -math.inf
        self._lock: asyncio.Lock | None = None

    async def after(self, cursor: int) -> list[dict]:
        """Up to a page of events with ids above `cursor`, oldest first (empty when there are none yet)."""
        if self._complete_after is not None and cursor < self._complete_after:
            return await _call(self.reader, "events_since", cursor, ALERT_PAGE)
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._complete_after is None:
                self._complete_after = cursor
            if time.monotonic() - self._polled_at >= self.poll_s:
                await self._poll()
        start = bisect.bisect_right(self._events, cursor, key=lambda event: event["event_id"])
        return self._events[start:start + ALERT_PAGE]

    async def _poll(self) -> None:
        newest = self._events[-1]["event_id"] if self._events else self._complete_after
        fresh = await _call(self.reader, "events_since", newest, ALERT_PAGE)
        self._polled_at = -math.inf if len(fresh) == ALERT_PAGE else time.monotonic()
        self._events.extend(fresh)
        if len(self._events) > 2 * self.keep:
            self._complete_after = self._events[-self.keep - 1]["event_id"]
            del self._events[:-self.keep]


async def alert_events(feed: AlertFeed, cursor: int, *, is_disconnected=None,
                       heartbeat_s: float = ALERT_HEARTBEAT_S) -> AsyncIterator[str]:
    """The SSE text of every event after `cursor`, as they come; ends when the client disconnects."""
    yield "retry: 1000\n\n"
    quiet_since = time.monotonic()
    while not (is_disconnected is not None and await is_disconnected()):
        events = await feed.after(cursor)
        for event in events:
            cursor = event["event_id"]
            yield f"id: {cursor}\nevent: {event['kind']}\ndata: {json.dumps(event, default=str)}\n\n"
        if events:
            quiet_since = time.monotonic()
            continue
        if time.monotonic() - quiet_since >= heartbeat_s:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(feed.poll_s)


def _file_name(incident_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in incident_id)


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
@serve.ingress()
class ApiIngress:
    """Serve shell: the FastAPI app over the aggregator actor handle, built on the replica."""

    def __init__(self, aggregator):
        self.aggregator = aggregator

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self.aggregator)
