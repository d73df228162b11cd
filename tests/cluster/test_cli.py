"""Bad input to the `casaflow` CLI (simulate, run, up) fails with one line on stderr and exit code 2, never a traceback."""

import subprocess
import sys

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cluster.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args, says",
    [
        (["simulate", "--scenario", "atlantis", "--out", "{tmp}/out"], "unknown scenario 'atlantis'"),
        (["simulate", "--scenario", "demo", "--duration-s", "-5", "--out", "{tmp}/out"], "--duration-s must be positive"),
        (["simulate", "--scenario", "demo", "--out", "{tmp}/a-file/out"], "cannot write to output folder"),
        (["simulate", "--scenario", "{tmp}/broken.yaml", "--out", "{tmp}/out"], "not valid YAML"),
        (["simulate", "--scenario", "{tmp}/typo.yaml", "--out", "{tmp}/out"], "durashun_s: Extra inputs are not permitted"),
        (["simulate", "--seed", "many", "--out", "{tmp}/out"], "invalid int value"),
        (["simulate"], "--out"),
        (["run", "--inventory", "{tmp}/missing.yaml", "--out", "{tmp}/h"], "cannot read inventory"),
        (["run", "--inventory", "{tmp}/broken.yaml", "--out", "{tmp}/h"], "not valid YAML"),
        (["run", "--inventory", "{tmp}/typo.yaml", "--out", "{tmp}/h"], "city: Field required"),
        (["up", "--weights", "{tmp}/no.pt"], "detector weights not found"),
        (["up", "--detector-replicas", "0"], "--detector-replicas: must be >= 1"),
        (["detect", "clip.mp4", "--out", "{tmp}/d.parquet", "--min-confidence", "1.5"], "must be at least 0 and at most 1, got 1.5"),
        (["run", "--inventory", "{tmp}/typo.yaml", "--out", "{tmp}/h", "--detector-gpus", "half"], "--detector-gpus: expected a number"),
        (["evaluate-detector", "--data", "{tmp}/nowhere", "--weights", "{tmp}/no.pt"], "weights not found"),
        (["score", "--truth", "{tmp}/nowhere", "--results", "{tmp}/nowhere"], "no segment windows"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, says):
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    (tmp_path / "typo.yaml").write_text("name: typo\ndurashun_s: 10\n")
    result = run_cli(*(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "pyarrow" not in line.lower() and line.strip()]
    assert len(lines) == 1, result.stderr
    assert says in lines[0]
    assert "Traceback" not in result.stderr
