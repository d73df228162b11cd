"""Alert latency of the live system: from the frame an incident was detected on to the SSE client.

Subscribes to `GET /api/v1/alerts/stream` of a running `casaflow up` and, for every `raised` event,
records the client's receive time minus the incident's `detected_ts` (the UTC time of the frame that
raised it, so detector, tracking, reporting and the stream are all inside the figure). Prints p50/p95/p99.

    casaflow up &            # the embedded demo, cameras paced in real time
    python bench/bench_alert_latency.py --alerts 100 --timeout-s 900
"""

import argparse
import json
import sys
import time
import urllib.request
from datetime import datetime, timezone

import numpy as np


def stream_events(url: str, timeout_s: float):
    """Yields (receive UTC time, event dict) from an SSE stream."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        data, kind = [], None
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                data.append(line[6:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif not line and data:
                yield datetime.now(timezone.utc), kind, json.loads("\n".join(data))
                data, kind = [], None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/api/v1/alerts/stream")
    parser.add_argument("--alerts", type=int, default=50, help="stop after this many raised alerts")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="stop after this long")
    args = parser.parse_args(argv)
    latencies_s, started = [], time.monotonic()
    try:
        for received, kind, event in stream_events(args.url, timeout_s=60.0):
            if kind == "raised":
                detected = datetime.fromisoformat(event["incident"]["detected_ts"])
                latencies_s.append((received - detected).total_seconds())
                print(f"{event['incident']['type']:<18} {event['incident']['camera_id']:<8} {latencies_s[-1]:6.3f} s", flush=True)
            if len(latencies_s) >= args.alerts or time.monotonic() - started > args.timeout_s:
                break
    except KeyboardInterrupt:
        pass
    if not latencies_s:
        print("no alert received")
        return 1
    p50, p95, p99 = np.percentile(latencies_s, [50, 95, 99])
    print(f"{len(latencies_s)} alerts: latency p50 {p50:.3f} s, p95 {p95:.3f} s, p99 {p99:.3f} s, max {max(latencies_s):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
