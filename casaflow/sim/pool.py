"""City-scale inventories whose cameras replay a pool of rendered clips (for load tests).

Each camera keeps the calibration and segments of the clip it plays, moved to its own place in
its district, so the whole pipeline (tracking, measurement, the map) runs as for a real camera.
"""

import re
import unicodedata
from pathlib import Path

import numpy as np

from casaflow.inventory import Camera, Inventory, load_inventory, save_inventory
from casaflow.sim.scenario import Scenario

SPREAD_DEG = 0.012


def write_pool_inventory(scenario: Scenario, *, out_dir: Path, pool_dir: Path, seed: int) -> Inventory:
    """Write `out_dir/cameras.yaml` with the scenario's pool cameras spread over its districts."""
    assert scenario.pool is not None
    source = load_inventory(pool_dir / "cameras.yaml")
    rng = np.random.default_rng(seed + 86028121)
    districts = list(scenario.pool.districts.items())
    relative = pool_dir.relative_to(out_dir)
    cameras = []
    for index in range(scenario.pool.cameras):
        district, (lat, lon) = districts[index % len(districts)]
        clip = source.cameras[index % len(source.cameras)]
        new_lat = lat + float(rng.uniform(-SPREAD_DEG, SPREAD_DEG))
        new_lon = lon + float(rng.uniform(-SPREAD_DEG, SPREAD_DEG))
        camera_id = f"{_slug(district)}-{index + 1:03d}"
        cameras.append(_moved(clip, camera_id, district, new_lon, new_lat, url=f"{relative}/{clip.url}"))
    inventory = Inventory(city=scenario.city, start_time=source.start_time, cameras=cameras)
    save_inventory(inventory, out_dir / "cameras.yaml")
    return inventory


def _moved(clip: Camera, camera_id: str, district: str, lon: float, lat: float, *, url: str) -> Camera:
    d_lon, d_lat = lon - clip.lon, lat - clip.lat
    rename = {segment.id: f"{camera_id}.{segment.id.split('.', 1)[1]}" for segment in clip.segments}
    data = clip.model_dump()
    data.update(id=camera_id, url=url, lon=round(lon, 7), lat=round(lat, 7), district=district,
                name=f"{district}: {clip.name}")
    for segment in data["segments"]:
        segment["id"] = rename[segment["id"]]
        segment["geometry"] = [[round(x + d_lon, 7), round(y + d_lat, 7)] for x, y in segment["geometry"]]
    for item in (*data["stop_lines"], *data["no_stopping_zones"]):
        item["segment_id"] = rename[item["segment_id"]]
        item["id"] = f"{camera_id}.{item['id'].split('.', 1)[1]}"
    return Camera.model_validate(data)


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
