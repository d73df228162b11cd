"""`casaflow up`: the embedded default, a simulated Casablanca you can look at on http://127.0.0.1:8000.

Until the streaming pipeline lands, this simulates the `demo` city once (cached), then serves its
clips, inventory and ground truth on loopback with an overview page.
"""

import argparse
import functools
import html
import http.server
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq

from casaflow.inventory import InventoryError, load_inventory

DEFAULT_SEED = 1


def default_data_dir() -> Path:
    return Path(os.environ.get("CASAFLOW_DATA", Path.home() / ".cache" / "casaflow"))


def register(subparsers) -> None:
    parser = subparsers.add_parser("up", help="run the embedded default: the simulated demo city on :8000")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data", type=Path, default=None, help="cache folder (default $CASAFLOW_DATA or ~/.cache/casaflow)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from casaflow.sim.scenario import load_scenario
    from casaflow.sim.simulate import SimulationError, simulate

    city_dir = (args.data or default_data_dir()) / f"demo-seed{DEFAULT_SEED}"
    if not (city_dir / "truth" / "incidents.parquet").exists():
        print(f"simulating the demo city once into {city_dir} (a few minutes; cached afterwards)", flush=True)
        try:
            simulate(load_scenario("demo"), seed=DEFAULT_SEED, out_dir=city_dir, progress=lambda l: print(l, flush=True))
        except SimulationError as exc:
            print(f"casaflow up: error: {exc}", file=sys.stderr)
            return 2
    try:
        (city_dir / "index.html").write_text(overview_page(city_dir))
    except InventoryError as exc:
        print(f"casaflow up: error: {exc}", file=sys.stderr)
        return 2
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(city_dir))
    try:
        server = http.server.ThreadingHTTPServer((args.host, args.port), handler)
    except OSError as exc:
        print(f"casaflow up: error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"the demo city is served on http://{args.host}:{args.port}/ (files in {city_dir}); Ctrl-C stops", flush=True)
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
    return 0


def overview_page(city_dir: Path) -> str:
    """An HTML page with every camera's clip and the ground-truth incidents."""
    inventory = load_inventory(city_dir / "cameras.yaml")
    incidents = pq.read_table(city_dir / "truth" / "incidents.parquet").to_pylist()
    cards = "\n".join(
        f'<figure><video src="{html.escape(c.url)}" controls muted loop preload="metadata" width="426"></video>'
        f"<figcaption><b>{html.escape(c.id)}</b> {html.escape(c.name)}<br>{c.lat:.5f}, {c.lon:.5f} · "
        f"{len(c.segments)} segment(s)</figcaption></figure>"
        for c in inventory.cameras
    )
    rows = "\n".join(
        f"<tr><td>{html.escape(i['type'])}</td><td>{html.escape(i['camera_id'])}</td>"
        f"<td>{i['start_ts']:%H:%M:%S}</td><td>{i['end_ts']:%H:%M:%S}</td></tr>"
        for i in incidents
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>casaflow · {html.escape(inventory.city)}</title>
<style>body{{font-family:system-ui;margin:1.5em}} figure{{display:inline-block;margin:.4em}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:.2em .6em}}</style></head><body>
<h1>casaflow · simulated {html.escape(inventory.city)}</h1>
<p>{len(inventory.cameras)} cameras from {inventory.start_time:%Y-%m-%d %H:%M} UTC.
Files: <a href="cameras.yaml">cameras.yaml</a>, <a href="truth/">truth/</a> (Parquet).</p>
{cards}
<h2>Incidents in view (ground truth)</h2>
<table><tr><th>type</th><th>camera</th><th>start</th><th>end</th></tr>
{rows}</table></body></html>"""
