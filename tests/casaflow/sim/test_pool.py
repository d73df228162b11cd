"""`casablanca-600`: 600 cameras over the city's districts, each replaying a clip of the rendered pool
with that clip's calibration and its segments moved to the camera's place."""

import shutil

from casaflow.inventory import load_inventory
from casaflow.sim.pool import write_pool_inventory
from casaflow.sim.scenario import load_scenario


def test_pool_inventory_spreads_600_cameras_over_the_districts(tiny_city, tmp_path):
    shutil.copytree(tiny_city, tmp_path / "pool")
    scenario = load_scenario("casablanca-600")
    write_pool_inventory(scenario, out_dir=tmp_path, pool_dir=tmp_path / "pool", seed=1)
    inventory = load_inventory(tmp_path / "cameras.yaml")
    pool = load_inventory(tmp_path / "pool" / "cameras.yaml")
    assert len(inventory.cameras) == 600
    assert {c.district for c in inventory.cameras} == set(scenario.pool.districts)
    for camera in inventory.cameras[:10]:
        assert (tmp_path / camera.url).is_file()
        source = next(p for p in pool.cameras if camera.url.endswith(p.url))
        assert camera.calibration == source.calibration
        assert all(s.id.startswith(camera.id + ".") for s in camera.segments)
        lat, lon = scenario.pool.districts[camera.district]
        assert abs(camera.lat - lat) < 0.02 and abs(camera.lon - lon) < 0.02
