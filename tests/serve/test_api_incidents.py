"""The incident API through a real Aggregator actor: lifecycle transitions with who and when (4xx for
unknown incidents, illegal steps and bad bodies), district filter, statistics, and the Server-Sent
Events alert stream resuming from `Last-Event-ID` with nothing lost."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from casaflow.incidents import Incident
from casaflow.inventory import load_inventory, save_inventory
from serve.api import AlertFeed, alert_events, create_app

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def make_incident(camera_id: str, type_: str, start_s: float, *, delay_s: float = 2.0, track: int = 1) -> Incident:
    start = T0 + timedelta(seconds=start_s)
    return Incident(
        incident_id=f"{type_}:{camera_id}:s:{track}:{int(start.timestamp()) * 1000}", type=type_, camera_id=camera_id,
        segment_id="s", start_ts=start, detected_ts=start + timedelta(seconds=delay_s), lon=-7.6 + track * 0.01,
        lat=33.57, severity=2, object_ids=(f"{camera_id}/{track}",),
    )


@pytest.fixture
def inventory_path(tiny_city, tmp_path):
    """The tiny city with its two cameras in two districts."""
    inventory = load_inventory(tiny_city / "cameras.yaml")
    cameras = [camera.model_copy(update={"district": name}) for camera, name in zip(inventory.cameras, ("Anfa", "Maarif"))]
    path = tmp_path / "cameras.yaml"
    save_inventory(inventory.model_copy(update={"cameras": cameras}), path)
    return path


@pytest.fixture
def aggregator(ray_session, inventory_path, tmp_path):
    from actors.aggregator import Aggregator

    actor = Aggregator.options(num_cpus=0.01).remote(str(inventory_path), None, store_dir=str(tmp_path / "store"))
    yield actor
    ray_session.kill(actor)


@pytest.fixture
def cameras(inventory_path):
    return load_inventory(inventory_path).cameras


def test_lifecycle_over_http(ray_session, aggregator, cameras):
    incident = make_incident(cameras[0].id, "collision", 0)
    ray_session.get(aggregator.submit.remote([], [], [incident]))
    client = TestClient(create_app(aggregator))
    url = f"/api/v1/incidents/{incident.incident_id}"
    acknowledged = client.post(f"{url}/acknowledge", json={"by": "operator 7"})
    assert acknowledged.status_code == 200 and acknowledged.json()["status"] == "acknowledged"
    assert client.post(f"{url}/resolve", json={"by": "team B", "note": "towed"}).json()["status"] == "resolved"
    assert client.post(f"{url}/dispatch", json={"by": "operator 7"}).status_code == 409
    history = client.get(url).json()["history"]
    assert [(e["kind"], e["by"]) for e in history] == [("raised", None), ("acknowledged", "operator 7"), ("resolved", "team B")]
    assert client.post("/api/v1/incidents/nothing/acknowledge", json={"by": "x"}).status_code == 404
    assert client.post(f"{url}/acknowledge", json={"by": "  "}).status_code == 422
    assert client.post(f"{url}/acknowledge", json={}).status_code == 422
    assert client.post(f"{url}/explode", json={"by": "x"}).status_code == 422
    assert client.get("/api/v1/incidents").json()["data"][0]["end_ts"] is None
    assert client.get(f"{url}/clip").status_code == 404
    assert client.get(f"{url}/video").status_code == 422


def test_district_filter_and_stats(ray_session, aggregator, cameras):
    first, second = cameras[0], cameras[1]
    incidents = [make_incident(first.id, "speeding", 0, delay_s=1), make_incident(first.id, "speeding", 3600, delay_s=3, track=2),
                 make_incident(second.id, "wrong_way", 60, delay_s=2, track=3)]
    ray_session.get(aggregator.submit.remote([], [], incidents))
    client = TestClient(create_app(aggregator))
    in_district = client.get("/api/v1/incidents", params={"district": "Anfa"}).json()
    assert in_district["count"] == 2 and {row["camera_id"] for row in in_district["data"]} == {first.id}
    assert all(row["district"] == "Anfa" for row in in_district["data"])
    assert client.get("/api/v1/incidents", params={"district": "atlantis"}).json()["count"] == 0
    stats = client.get("/api/v1/stats").json()
    assert stats["total"] == 3 and stats["by_type"] == {"speeding": 2, "wrong_way": 1}
    assert stats["by_district"] == {"Anfa": 2, "Maarif": 1}
    assert stats["by_hour"] == {"2026-03-02T08:00:00+00:00": 2, "2026-03-02T09:00:00+00:00": 1}
    assert stats["mean_time_to_detect_s"] == pytest.approx(2.0)
    assert stats["time_to_detect_s_by_type"] == {"speeding": 2.0, "wrong_way": 2.0}
    assert client.get("/api/v1/stats", params={"since": "2026-03-02T08:30:00Z"}).json()["total"] == 1
    assert client.get("/api/v1/stats", params={"since": "soon"}).status_code == 422


async def take(stream, count: int) -> list[str]:
    messages = []
    async for message in stream:
        if message.startswith("id: "):
            messages.append(message)
        if len(messages) == count:
            break
    return messages


def test_alert_stream_resumes_from_last_event_id(ray_session, aggregator, cameras):
    camera = cameras[0].id
    ray_session.get(aggregator.submit.remote([], [], [make_incident(camera, "collision", 0), make_incident(camera, "red_light", 5, track=2)]))
    first = asyncio.run(take(alert_events(AlertFeed(aggregator, poll_s=0.01), 0), 2))
    assert [m.split("\n")[1] for m in first] == ["event: raised", "event: raised"]
    last_id = int(first[-1].split("\n")[0].removeprefix("id: "))
    # While the client is away: a transition and a new incident; the resumed stream gets exactly those.
    incident_id = make_incident(camera, "collision", 0).incident_id
    ray_session.get(aggregator.transition.remote(incident_id, "acknowledged", "operator 7"))
    ray_session.get(aggregator.submit.remote([], [], [make_incident(camera, "wrong_way", 9, track=3)]))
    resumed = asyncio.run(take(alert_events(AlertFeed(aggregator, poll_s=0.01), last_id), 2))
    assert [m.split("\n")[1] for m in resumed] == ["event: acknowledged", "event: raised"]
    ids = [int(m.split("\n")[0].removeprefix("id: ")) for m in first + resumed]
    assert ids == sorted(set(ids)) and '"wrong_way"' in resumed[1]


class EventLog:
    """An aggregator's event log, counting how often it is read."""

    def __init__(self, count: int):
        self.events = [{"event_id": i, "kind": "raised", "incident_id": f"i{i}"} for i in range(1, count + 1)]
        self.reads = 0

    def events_since(self, event_id: int, limit: int = 500) -> list[dict]:
        self.reads += 1
        return [e for e in self.events if e["event_id"] > event_id][:limit]


def test_alert_streams_share_one_reader_and_old_cursors_get_their_backlog():
    log = EventLog(3)
    feed = AlertFeed(log, poll_s=0.05, keep=2)

    async def screens() -> list[list[str]]:
        streams = [take(alert_events(feed, 1), 4) for _ in range(20)]
        async def grow():
            for i in range(4, 7):
                await asyncio.sleep(0.03)
                log.events.append({"event_id": i, "kind": "raised", "incident_id": f"i{i}"})
        results = await asyncio.gather(*streams, grow())
        return results[:-1]

    seen = asyncio.run(screens())
    ids = [[int(m.split("\n")[0].removeprefix("id: ")) for m in stream] for stream in seen]
    assert ids == [[2, 3, 4, 5]] * 20
    assert log.reads < 20, "one read per poll for the replica, not one per stream"
    backlog = asyncio.run(take(alert_events(feed, 0), 6))
    assert [int(m.split("\n")[0].removeprefix("id: ")) for m in backlog] == [1, 2, 3, 4, 5, 6]


def test_alert_stream_http_headers_and_bad_last_event_id(aggregator):
    client = TestClient(create_app(aggregator))
    assert client.get("/api/v1/alerts/stream", headers={"Last-Event-ID": "yesterday"}).status_code == 400
    assert client.get("/api/v1/alerts/stream", params={"after": -1}).status_code == 422


def test_a_restarted_aggregator_loses_nothing(ray_session, inventory_path, tmp_path, cameras):
    from actors.aggregator import Aggregator

    store = str(tmp_path / "store")
    first = Aggregator.options(num_cpus=0.01).remote(str(inventory_path), None, store_dir=store)
    incident = make_incident(cameras[0].id, "collision", 0)
    ray_session.get(first.submit.remote([], [], [incident]))
    ray_session.get(first.transition.remote(incident.incident_id, "dispatched", "operator 7"))
    events = ray_session.get(first.events_since.remote(0))
    ray_session.kill(first)
    second = Aggregator.options(num_cpus=0.01).remote(str(inventory_path), None, store_dir=store)
    try:
        assert ray_session.get(second.events_since.remote(0)) == events
        assert ray_session.get(second.incident.remote(incident.incident_id))["status"] == "dispatched"
        ray_session.get(second.submit.remote([], [], [incident]))
        assert len(ray_session.get(second.incidents.remote({}))) == 1
    finally:
        ray_session.kill(second)
