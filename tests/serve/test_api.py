"""The HTTP API over the aggregator: health, cameras (credentials redacted), GeoJSON congestion,
Prometheus metrics, the dashboard; unknown routes are 4xx, never 500."""

from fastapi.testclient import TestClient

from serve.api import create_app


class FakeCity:
    def congestion(self) -> dict:
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[-7.59, 33.57], [-7.59, 33.58]]},
             "properties": {"segment_id": "c1.north", "los": "C", "mean_speed_kmh": 31.0}}]}

    def camera_status(self) -> list[dict]:
        return [{"camera_id": "c1", "status": "live", "fps": 5.0, "lag_s": 0.3, "frames_dropped": 2,
                 "frames_analysed": 100, "url": "rtsp://***@10.0.0.1/stream"}]

    def counters(self) -> dict:
        return {"windows_received": 12}

    def incidents(self, filters):
        rows = [{"incident_id": "speeding:c1:c1.north:7:1772438400000", "type": "speeding", "camera_id": "c1", "status": "open"}]
        return [r for r in rows if filters["type"] in (None, r["type"]) and filters["status"] in (None, r["status"])]

    def incident(self, incident_id):
        return {"incident_id": incident_id, "history": []} if incident_id.startswith("speeding:") else None

    def segment_history(self, segment_id, since):
        if segment_id != "c1.north":
            return None
        rows = [{"segment_id": "c1.north", "window_end": "2026-03-02T08:01:00+00:00", "los": "B"}]
        return rows if since is None else []


def client() -> TestClient:
    return TestClient(create_app(FakeCity()))


def test_health_and_dashboard():
    assert client().get("/healthz").json() == {"status": "ok"}
    page = client().get("/")
    assert page.status_code == 200 and "/api/v1/congestion" in page.text
    assert "/api/v1/alerts/stream" in page.text and "snapshot_url" in page.text and "clip_url" in page.text


def test_cameras_and_congestion():
    cameras = client().get("/api/v1/cameras").json()
    assert cameras["count"] == 1 and "secret" not in str(cameras)
    congestion = client().get("/api/v1/congestion").json()
    assert congestion["type"] == "FeatureCollection"
    assert congestion["features"][0]["geometry"]["type"] == "LineString"


def test_metrics_are_prometheus_text():
    text = client().get("/metrics").text
    assert "casaflow_windows_received 12" in text
    assert 'casaflow_camera_lag_seconds{camera_id="c1"} 0.3' in text


def test_segment_history():
    assert client().get("/api/v1/segments/c1.north/history").json()["count"] == 1
    assert client().get("/api/v1/segments/c1.north/history", params={"since": "2026-03-02T08:00:00Z"}).json()["count"] == 0
    assert client().get("/api/v1/segments/c1.north/history", params={"since": "2026-03-02T08:00:00"}).status_code == 200
    assert client().get("/api/v1/segments/nowhere/history").status_code == 404


def test_incidents_filter_and_lookup():
    assert client().get("/api/v1/incidents").json()["count"] == 1
    assert client().get("/api/v1/incidents", params={"type": "collision"}).json()["count"] == 0
    assert client().get("/api/v1/incidents/speeding:c1:c1.north:7:1772438400000").status_code == 200
    assert client().get("/api/v1/incidents/nothing").status_code == 404


def test_bad_requests_are_4xx():
    assert client().get("/api/v1/incidents", params={"type": "meteor"}).status_code == 422
    assert client().get("/api/v1/incidents", params={"status": "lost"}).status_code == 422
    assert client().get("/api/v1/incidents", params={"limit": 0}).status_code == 422
    assert client().get("/api/v1/segments/c1.north/history", params={"since": "yesterday"}).status_code == 422
    assert client().get("/api/v1/nothing").status_code == 404
    assert client().post("/api/v1/cameras").status_code == 405
