"""IncidentBook is the aggregator's durable, idempotent incident store.

Pins: re-delivered incidents change nothing (at-least-once safe); the same event from two neighbouring
cameras is one incident; end times and clips arrive later on the same id; the lifecycle only moves
forward (open -> acknowledged -> dispatched -> resolved) and records who and when, refusing illegal steps
with IllegalTransition; a reopened book has everything; events have monotonic ids that a client resumes
from; incidents.parquet follows the history contract.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from casaflow.incident_book import IllegalTransition, IncidentBook, UnknownIncident
from casaflow.incidents import INCIDENT_SCHEMA, Incident

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def incident(camera_id: str = "c1", *, type_: str = "collision", start_s: float = 0.0, lon: float = -7.6,
             lat: float = 33.57, track: int = 1) -> Incident:
    start = T0 + timedelta(seconds=start_s)
    return Incident(
        incident_id=f"{type_}:{camera_id}:s1:{track}:{int(start.timestamp()) * 1000}",
        type=type_, camera_id=camera_id, segment_id="s1", start_ts=start, detected_ts=start + timedelta(seconds=2),
        lon=lon, lat=lat, severity=3, object_ids=(f"{camera_id}/{track}",),
    )


@pytest.fixture
def book(tmp_path):
    with IncidentBook(tmp_path / "incidents.sqlite") as book:
        yield book


def test_upsert_is_idempotent(book):
    first = incident()
    assert book.upsert([first, first]) == [first.incident_id] * 2
    assert book.upsert([first]) == [first.incident_id]
    assert len(book.list()) == 1
    assert [e.kind for e in book.events_since(0)] == ["raised"]


@pytest.mark.parametrize(
    ("other", "merged"),
    [
        (incident("c2", start_s=2.0, lon=-7.6003), True),
        (incident("c2", start_s=2.0, lon=-7.61), False),
        (incident("c2", start_s=20.0), False),
        (incident("c2", type_="stopped_vehicle"), False),
        (incident("c1", start_s=1.0, track=2), False),
    ],
    ids=["neighbour_camera", "1km_away", "20s_later", "other_type", "same_camera"],
)
def test_cross_camera_dedupe(book, other, merged):
    first = incident()
    ids = book.upsert([first, other])
    assert (ids[1] == first.incident_id) is merged
    assert len(book.list()) == (1 if merged else 2)
    if merged:
        assert book.get(other.incident_id).object_ids == ("c1/1", "c2/1")
        assert book.upsert([other]) == [first.incident_id]
        assert len(book.events_since(0)) == 2


def test_queues_on_two_approaches_of_one_junction_are_two_events(tmp_path):
    with IncidentBook(tmp_path / "incidents.sqlite", segment_bearings_deg={"north": 0.0, "west": 270.0, "north2": 10.0}) as book:
        first = replace(incident("c1", type_="congestion"), segment_id="north")
        crossing = replace(incident("c2", type_="congestion", lon=-7.6003), segment_id="west")
        same_way = replace(incident("c3", type_="congestion", lon=-7.6003), segment_id="north2")
        assert book.upsert([first, crossing, same_way]) == [first.incident_id, crossing.incident_id, first.incident_id]


def test_end_and_clip_arrive_later(book):
    first = incident()
    book.upsert([first])
    end = first.start_ts + timedelta(seconds=90)
    book.upsert([replace(first, end_ts=end), replace(first, end_ts=end)])
    book.upsert([replace(first, clip_path="clips/c1/x.mp4")])
    stored = book.get(first.incident_id)
    assert stored.end_ts == end and stored.clip_path == "clips/c1/x.mp4"
    assert [e.kind for e in book.events_since(0)] == ["raised", "ended", "evidence"]


def test_lifecycle_records_who_and_when(book):
    first = incident()
    book.upsert([first])
    at = T0 + timedelta(minutes=1)
    book.acknowledge(first.incident_id, by="amina", at=at)
    book.dispatch(first.incident_id, by="amina", at=at + timedelta(seconds=30))
    resolved = book.resolve(first.incident_id, by="youssef", at=at + timedelta(minutes=20))
    assert resolved.status == "resolved"
    steps = [(e.kind, e.by, e.at) for e in book.history(first.incident_id)][1:]
    assert steps == [
        ("acknowledged", "amina", at),
        ("dispatched", "amina", at + timedelta(seconds=30)),
        ("resolved", "youssef", at + timedelta(minutes=20)),
    ]
    book.upsert([first])
    assert book.get(first.incident_id).status == "resolved"


@pytest.mark.parametrize(
    ("done", "step"),
    [
        (["acknowledge"], "acknowledge"),
        (["dispatch"], "acknowledge"),
        (["resolve"], "dispatch"),
        (["resolve"], "resolve"),
    ],
)
def test_illegal_transitions(book, done, step):
    first = incident()
    book.upsert([first])
    for name in done:
        getattr(book, name)(first.incident_id, by="op")
    with pytest.raises(IllegalTransition):
        getattr(book, step)(first.incident_id, by="op")


def test_unknown_and_anonymous_transitions(book):
    with pytest.raises(UnknownIncident):
        book.acknowledge("nope", by="op")
    book.upsert([incident()])
    with pytest.raises(ValueError):
        book.acknowledge(incident().incident_id, by=" ")


def test_reopen_loses_nothing(tmp_path):
    path = tmp_path / "book.sqlite"
    with IncidentBook(path) as book:
        book.upsert([incident(), incident("c2", start_s=1.0, lon=-7.6002)])
        book.acknowledge(incident().incident_id, by="op", at=T0)
        events = book.events_since(0)
    with IncidentBook(path) as book:
        assert book.events_since(0) == events
        assert book.get(incident().incident_id).status == "acknowledged"
        assert book.get(incident("c2", start_s=1.0).incident_id).incident_id == incident().incident_id
        book.upsert([incident()])
        assert len(book.events_since(0)) == len(events)


def test_events_resume_from_last_event_id(book):
    book.upsert([incident(track=k, start_s=10.0 * k, camera_id=f"c{k}") for k in range(5)])
    book.acknowledge(incident(track=2, start_s=20.0, camera_id="c2").incident_id, by="op")
    events = book.events_since(0)
    assert [e.event_id for e in events] == sorted({e.event_id for e in events})
    resumed = book.events_since(events[2].event_id)
    assert resumed == events[3:]
    assert resumed[-1].kind == "acknowledged" and resumed[-1].incident.status == "acknowledged"
    assert book.events_since(events[-1].event_id) == []
    assert book.events_since(0, limit=2) == events[:2]


def test_list_filters(book):
    book.upsert([
        incident("c1", type_="speeding", start_s=0.0, track=1),
        incident("c2", type_="speeding", start_s=100.0, track=2),
        incident("c1", type_="red_light", start_s=200.0, track=3),
    ])
    book.dispatch(incident("c2", type_="speeding", start_s=100.0, track=2).incident_id, by="op")
    assert [i.camera_id for i in book.list(type="speeding")] == ["c1", "c2"]
    assert [i.type for i in book.list(camera="c1")] == ["speeding", "red_light"]
    assert [i.camera_id for i in book.list(status="dispatched")] == ["c2"]
    assert len(book.list(since=T0 + timedelta(seconds=50), until=T0 + timedelta(seconds=200))) == 1
    with pytest.raises(ValueError):
        book.list(status="closed")


def test_parquet_follows_the_contract(book, tmp_path):
    book.upsert([incident(), incident("c9", type_="congestion", start_s=300.0)])
    path = tmp_path / "history" / "incidents.parquet"
    assert book.write_parquet(path) == 2
    table = pq.read_table(path)
    assert table.schema.equals(INCIDENT_SCHEMA)
    assert table.column("object_ids").to_pylist()[0] == ["c1/1"]
    assert table.column("status").to_pylist() == ["open", "open"]
