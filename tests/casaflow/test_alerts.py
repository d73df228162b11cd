"""Webhooks against a real local HTTP receiver: every event delivered in order, a failing receiver retried
until it accepts, an unreachable one counted as failed without blocking, bad URLs refused."""

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from casaflow.alerts import WebhookNotifier, check_webhook_url
from casaflow.incident_book import IncidentBook
from casaflow.incidents import Incident

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def incident(track: int) -> Incident:
    start = T0 + timedelta(seconds=track)
    return Incident(incident_id=f"collision:c1:s1:{track}:{int(start.timestamp()) * 1000}", type="collision", camera_id="c1",
                    segment_id="s1", start_ts=start, detected_ts=start, lon=-7.6 + track * 0.01, lat=33.57, severity=3)


class Receiver:
    """An HTTP server that answers 503 to the first `failures` POSTs, then 204, recording the bodies."""

    def __init__(self, failures: int = 0):
        self.bodies: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.attempts += 1
                if receiver.attempts <= failures:
                    self.send_response(503)
                else:
                    receiver.bodies.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()


def wait_until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_events_delivered_in_order_with_retries(tmp_path):
    receiver = Receiver(failures=2)
    with IncidentBook(tmp_path / "book.sqlite") as book:
        book.upsert([incident(0)])
        notifier = WebhookNotifier(book, [receiver.url], initial_backoff_s=0.01, poll_s=0.01)
        book.upsert([incident(1), incident(2)])
        book.acknowledge(incident(1).incident_id, by="operator 7")
        wait_until(lambda: len(receiver.bodies) == 3)
        notifier.close()
    receiver.close()
    assert [(b["kind"], b["incident"]["incident_id"]) for b in receiver.bodies] == [
        ("raised", incident(1).incident_id), ("raised", incident(2).incident_id), ("acknowledged", incident(1).incident_id)]
    assert receiver.bodies[2]["by"] == "operator 7"
    stats = notifier.stats[0]
    assert (stats.delivered, stats.failed, stats.retries, stats.last_error) == (3, 0, 2, "HTTP 503")


def test_unreachable_receiver_fails_alone(tmp_path):
    receiver = Receiver()
    with IncidentBook(tmp_path / "book.sqlite") as book:
        notifier = WebhookNotifier(book, ["http://127.0.0.1:9/nobody", receiver.url], max_attempts=2,
                                   initial_backoff_s=0.01, poll_s=0.01, timeout_s=1.0)
        book.upsert([incident(1), incident(2)])
        wait_until(lambda: len(receiver.bodies) == 2 and notifier.stats[0].failed == 2)
        notifier.close()
    receiver.close()
    assert notifier.stats[0].delivered == 0 and notifier.stats[0].retries == 2
    assert "ConnectionRefusedError" in notifier.stats[0].last_error or "URLError" in notifier.stats[0].last_error


@pytest.mark.parametrize("url", ["ftp://host/x", "hooks.example.org/x", "http:///nohost", ""])
def test_bad_webhook_urls_are_refused(url):
    with pytest.raises(ValueError, match="webhook URL"):
        check_webhook_url(url)
