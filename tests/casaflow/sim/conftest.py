"""Shared fixtures: a tiny 3x3 SUMO grid with traffic lights, sidewalks and crossings, and its scene."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from casaflow.sim.scene import StaticScene


def sumo_binary(name: str) -> str:
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    found = shutil.which(name, path=path)
    if found is None and os.environ.get("SUMO_HOME"):
        found = shutil.which(name, path=os.path.join(os.environ["SUMO_HOME"], "bin"))
    if found is None:
        pytest.skip(f"SUMO binary {name!r} not found")
    return found


@pytest.fixture(scope="session")
def grid_net_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("net") / "grid.net.xml"
    subprocess.run(
        [
            sumo_binary("netgenerate"), "--grid", "--grid.number", "3", "--grid.length", "150",
            "--default.lanenumber", "2", "--tls.guess", "true", "--sidewalks.guess", "true",
            "--crossings.guess", "true", "--offset.disable-normalization", "true", "-o", str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def grid_scene(grid_net_path) -> StaticScene:
    return StaticScene.from_sumo_net(grid_net_path, seed=7)
