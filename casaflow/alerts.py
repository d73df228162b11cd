"""Webhook delivery of the incident events: every event of the book POSTed as JSON, in order, with retries.

Each webhook has its own cursor in the book's event log and its own thread, so a slow or unreachable
receiver delays only itself. A failed POST is retried with capped exponential backoff; after
`max_attempts` the event is counted as failed and delivery goes on with the next one, so one bad
payload cannot block a receiver forever.
"""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from casaflow.incident_book import IncidentBook, IncidentEvent
from casaflow.inventory import redact_url

Post = Callable[[str, bytes, float], int]
"""`(url, body, timeout_s) -> HTTP status`; raises OSError when the receiver cannot be reached."""


def http_post(url: str, body: bytes, timeout_s: float) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def check_webhook_url(url: str) -> str:
    """The URL if it is http(s) with a host; raises ValueError with a one-line reason otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook URL must be http(s)://host/...: {redact_url(url)!r}")
    return url


@dataclass
class WebhookStats:
    url: str
    delivered: int = 0
    failed: int = 0
    retries: int = 0
    cursor: int = 0
    last_error: str | None = None


class WebhookNotifier:
    """Delivers the book's events, from the newest at start onwards, to each webhook URL.

    Args:
        book: The incident book whose event log is delivered.
        urls: Receivers; each gets every event as `IncidentEvent.as_dict()` JSON.
        max_attempts: Tries per event before it is counted as failed.
        initial_backoff_s: First retry delay; doubled per attempt up to `max_backoff_s`, with jitter.
        poll_s: How often the event log is checked when idle.
        post: The HTTP call (tests pass their own).
    """

    def __init__(self, book: IncidentBook, urls: Sequence[str], *, max_attempts: int = 6, initial_backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, poll_s: float = 0.2, timeout_s: float = 5.0, post: Post = http_post):
        self.book = book
        self.max_attempts = max_attempts
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.post = post
        self._stop = threading.Event()
        start = book.last_event_id()
        self.stats = [WebhookStats(redact_url(check_webhook_url(url)), cursor=start) for url in urls]
        self._threads = [
            threading.Thread(target=self._deliver, args=(url, stats), daemon=True, name=f"webhook-{i}")
            for i, (url, stats) in enumerate(zip(urls, self.stats))
        ]
        for thread in self._threads:
            thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)

    def _deliver(self, url: str, stats: WebhookStats) -> None:
        rng = random.Random()
        while not self._stop.is_set():
            events = self.book.events_since(stats.cursor, limit=100)
            if not events:
                self._stop.wait(self.poll_s)
                continue
            for event in events:
                if self._stop.is_set():
                    return
                self._send(url, event, stats, rng)
                stats.cursor = event.event_id

    def _send(self, url: str, event: IncidentEvent, stats: WebhookStats, rng: random.Random) -> None:
        body = json.dumps(event.as_dict()).encode()
        for attempt in range(self.max_attempts):
            try:
                status = self.post(url, body, self.timeout_s)
                if 200 <= status < 300:
                    stats.delivered += 1
                    return
                stats.last_error = f"HTTP {status}"
            except OSError as error:
                stats.last_error = f"{type(error).__name__}: {error}"
            if attempt + 1 < self.max_attempts:
                stats.retries += 1
                ceiling = min(self.max_backoff_s, self.initial_backoff_s * 2**attempt)
                if self._stop.wait(ceiling * rng.uniform(0.5, 1.0)):
                    return
        stats.failed += 1
