"""`casaflow detect`, `train-detector` and `pack-dataset` pin their command-line contracts: detections Parquet
with `frame_index, ts, cls, confidence, x1, y1, x2, y2` and `ts = start_time + pts`; training end to end
on simulator folders; bad input gives one line on stderr and exit code 2, never a traceback."""

import argparse
from datetime import datetime, timezone

import pyarrow.parquet as pq
import pytest

from cluster.commands import detector as detector_commands
TINY_INPUT_WH = (128, 64)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="casaflow")
    detector_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_detect_writes_the_contract(synthetic_dirs, tiny_weights, tmp_path, capsys):
    video = synthetic_dirs[0] / "video" / "cam01.mp4"
    out = tmp_path / "detections.parquet"
    code = run(["detect", str(video), "--out", str(out), "--weights", str(tiny_weights), "--device", "cpu", "--min-confidence", "0.0", "--fps", "5"])
    assert code == 0
    table = pq.read_table(out)
    assert table.column_names == ["frame_index", "ts", "cls", "confidence", "x1", "y1", "x2", "y2"]
    frames = sorted(set(table.column("frame_index").to_pylist()))
    assert frames == [0, 5, 10, 15, 20]
    first = table.filter(table.column("frame_index").to_numpy() == 5).column("ts")[0].as_py()
    assert first == datetime(2026, 1, 5, 8, 0, 0, 200_000, tzinfo=timezone.utc)
    assert set(table.column("cls").to_pylist()) <= {"car", "bus", "truck", "motorcycle", "bicycle", "pedestrian"}
    assert "5 frames" in capsys.readouterr().out


def test_detect_with_explicit_start_time(synthetic_dirs, tiny_weights, tmp_path):
    out = tmp_path / "d.parquet"
    video = synthetic_dirs[1] / "video" / "cam01.mp4"
    assert run(["detect", str(video), "--out", str(out), "--weights", str(tiny_weights), "--min-confidence", "0.0", "--start-time", "2030-01-01T00:00:00Z"]) == 0
    table = pq.read_table(out)
    assert table.column("ts")[0].as_py().year == 2030 and len(set(table.column("frame_index").to_pylist())) == 12


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["missing.mp4"], "video not found"),
        (["NOTVIDEO"], "cannot decode"),
        (["VIDEO", "--weights", "missing.pt"], "weights not found"),
        (["VIDEO", "--coco-model", "fasterrcnn_mobilenet_v3_large_fpn"], "--coco-model needs --weights"),
    ],
)
def test_detect_bad_input_exits_2_with_one_line(argv_tail, message, synthetic_dirs, tiny_weights, tmp_path, capsys):
    (tmp_path / "NOTVIDEO").write_bytes(b"garbage" * 10)
    replacements = {"NOTVIDEO": str(tmp_path / "NOTVIDEO"), "VIDEO": str(synthetic_dirs[0] / "video" / "cam01.mp4"), "missing.mp4": str(tmp_path / "missing.mp4"), "missing.pt": str(tmp_path / "missing.pt")}
    argv = ["detect", *[replacements.get(a, a) for a in argv_tail], "--out", str(tmp_path / "o.parquet")]
    if "--weights" not in argv and "--coco-model" not in argv:
        argv += ["--weights", str(tiny_weights)]
    assert run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("bad", [["--input-size", "100x64"], ["--batch-size", "0"], ["--min-confidence", "2"], ["--start-time", "yesterday"]])
def test_detect_bad_arguments_exit_2(bad, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run(["detect", "x.mp4", "--out", str(tmp_path / "o.parquet"), *bad])
    assert exit_info.value.code == 2


def test_train_detector_end_to_end_and_resume(synthetic_dirs, tmp_path, capsys):
    train_dir, eval_dir = synthetic_dirs
    out = tmp_path / "run"
    size = f"{TINY_INPUT_WH[0]}x{TINY_INPUT_WH[1]}"
    argv = ["train-detector", "--data", str(train_dir), "--eval-data", str(eval_dir), "--out", str(out), "--epochs", "1", "--batch-size", "2", "--frame-step", "6", "--seed", "1", "--device", "cpu", "--input-size", size]
    assert run(argv) == 0
    captured = capsys.readouterr()
    assert "held-out mAP50" in captured.out and "| car |" in captured.out
    assert "step 2/2" in captured.err
    assert (out / "detector.pt").is_file() and (out / "checkpoint.pt").is_file()
    assert run(argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert run([*argv, "--resume"]) == 0


def test_train_detector_bad_input(tmp_path, capsys):
    assert run(["train-detector", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a simulator folder" in err[0]


def test_pack_dataset_reports_the_packed_folder_and_refuses_bad_input(synthetic_dirs, tmp_path, capsys):
    assert run(["pack-dataset", str(synthetic_dirs[0]), "--out", str(tmp_path / "packed"), "--frame-step", "6"]) == 0
    assert "packed 4 frames" in capsys.readouterr().out
    assert run(["pack-dataset", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("casaflow pack-dataset: error:")
