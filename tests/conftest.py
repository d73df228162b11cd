"""Session-wide fixtures: one local Ray cluster per test session, started only when a test asks."""

import os

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray cluster with 2 CPUs, shared by every test of the session."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
