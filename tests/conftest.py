"""Session-wide fixtures: one local Ray cluster per test session, started only when a test asks."""

import os
from pathlib import Path

import pytest

TINY_SCENARIO = """
name: tiny
duration_s: 60
warmup_s: 40
window_s: 30
video: {width_px: 320, height_px: 180, fps: 10}
cameras: {count: 2}
demand: {peak_start_s: 20, peak_ramp_s: 20}
incidents:
  - {type: pedestrian_on_road, at_s: 5}
"""


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray cluster with 2 CPUs, shared by every test of the session."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_scenario(tmp_path_factory):
    """A two-camera, one-minute city at 320x180: the smallest that exercises the whole contract."""
    from casaflow.sim.scenario import load_scenario

    path = tmp_path_factory.mktemp("scenario") / "tiny.yaml"
    path.write_text(TINY_SCENARIO)
    return load_scenario(str(path))


@pytest.fixture(scope="session")
def tiny_city(tiny_scenario, tmp_path_factory) -> Path:
    """`casaflow simulate` output of the tiny scenario, seed 3, rendered once per session."""
    from casaflow.sim.simulate import simulate

    out = tmp_path_factory.mktemp("tiny-city")
    simulate(tiny_scenario, seed=3, out_dir=out, progress=lambda line: None)
    return out
