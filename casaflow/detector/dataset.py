"""Training and evaluation frames from `casaflow simulate` folders: YUV420 frames plus truth boxes.

Folder contract: `cameras.yaml` (`start_time`, `cameras: [{id, url, ...}]`, urls relative to the file),
the clips it names, and `truth/frames.parquet` (`camera_id, frame_index, ts, object_id, cls, x1, y1, x2,
y2, visible, speed_kmh`; boxes in pixels of the rendered frame, `visible` in 0..1). Decoded frames are
cached as raw yuv420p in a uint8 memmap, so later epochs read pages instead of decoding again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from casaflow.detections import CLASS_IDS
from casaflow.source import PyAVSource, RetryPolicy

Progress = Callable[[str], None]
CACHE_FORMAT_VERSION = 1


class DatasetError(ValueError):
    """A dataset folder, clip or truth file is missing or does not follow the contract."""


@dataclass(frozen=True)
class Clip:
    """One camera's clip inside a dataset folder."""

    camera_id: str
    video_path: Path


@dataclass(frozen=True)
class FrameTruth:
    """Truth boxes of one frame.

    Attributes:
        xyxy: (n, 4) float32 boxes in source pixels.
        class_id: (n,) int64.
        visible: (n,) float32 visible fraction in 0..1.
    """

    xyxy: np.ndarray
    class_id: np.ndarray
    visible: np.ndarray


def read_clips(data_dir: str | Path) -> tuple[datetime | None, list[Clip]]:
    """Reads `start_time` and the cameras' clips from `data_dir/cameras.yaml`.

    Raises:
        DatasetError: missing or malformed inventory.
    """
    path = Path(data_dir) / "cameras.yaml"
    try:
        inventory = yaml.safe_load(path.read_text())
        cameras = inventory["cameras"]
        clips = [Clip(str(camera["id"]), (path.parent / str(camera["url"])).resolve()) for camera in cameras]
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error.strerror or error}") from error
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise DatasetError(f"{path} is not a camera inventory: {type(error).__name__} {error}") from error
    start_time = inventory.get("start_time")
    if isinstance(start_time, str):
        start_time = datetime.fromisoformat(start_time.replace("Z", "+00:00"))
    if isinstance(start_time, datetime) and start_time.tzinfo is None:
        start_time = start_time.replace(tzinfo=timezone.utc)
    return start_time, clips


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iter_yuv420_frames(video_path: str | Path, *, threads: int = 0) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decodes every frame of a clip in order, through the pipeline's own `PyAVSource`.

    Yields:
        `(frame_index, pts_s, frame)` with frame (H*3//2, W) uint8 yuv420p.

    Raises:
        DatasetError: the file cannot be opened or decoded.
    """
    source = PyAVSource(
        "clip", str(video_path), analysis_fps=None, start_time=_EPOCH, live=False, hwaccel="none",
        threads=threads, retry=RetryPolicy(initial_s=0.0, max_s=0.0, max_attempts=1),
    )
    for frame in source:
        yield frame.frame_index, (frame.ts - _EPOCH).total_seconds(), frame.yuv
    if source.state.status == "failed":
        raise DatasetError(f"cannot decode {video_path}: {source.state.reason}")


class FrameDataset:
    """Every `frame_step`-th frame of every clip of some simulator folders, with truth.

    Attributes:
        samples: list of `(clip_index, cached_row, frame_index)` per sample.
        clips: `(camera_id, video_path)` of each clip.
    """

    def __init__(
        self,
        data_dirs: Sequence[str | Path],
        *,
        cache_dir: str | Path,
        frame_step: int = 5,
        progress: Progress | None = None,
    ) -> None:
        if frame_step < 1:
            raise ValueError(f"frame_step must be >= 1, got {frame_step}")
        if not data_dirs:
            raise DatasetError("no dataset folders given")
        self.frame_step = frame_step
        self.clips: list[Clip] = []
        self._frames: list[np.ndarray] = []
        self._truth: list[dict[int, FrameTruth]] = []
        self.samples: list[tuple[int, int, int]] = []
        cache = Path(cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        for data_dir in data_dirs:
            clips = read_clips(data_dir)[1]
            truth_by_camera = _read_truth(Path(data_dir))
            for clip in clips:
                if not clip.video_path.is_file():
                    raise DatasetError(f"clip of camera {clip.camera_id} not found: {clip.video_path}")
                frames, frame_indices = _cached_frames(clip.video_path, cache, frame_step=frame_step, progress=progress)
                clip_index = len(self.clips)
                self.clips.append(clip)
                self._frames.append(frames)
                self._truth.append(truth_by_camera.get(clip.camera_id, {}))
                self.samples.extend((clip_index, row, int(f)) for row, f in enumerate(frame_indices))

    def __len__(self) -> int:
        return len(self.samples)

    def frame(self, index: int) -> np.ndarray:
        """(H*3//2, W) uint8 yuv420p frame of sample `index`."""
        clip_index, row, _ = self.samples[index]
        return self._frames[clip_index][row]

    def truth(self, index: int) -> FrameTruth:
        """Truth boxes of sample `index` (empty if no road user is in view)."""
        clip_index, _, frame_index = self.samples[index]
        return self._truth[clip_index].get(frame_index, _EMPTY_TRUTH)

    def frame_size_wh(self, index: int) -> tuple[int, int]:
        rows, width = self._frames[self.samples[index][0]].shape[1:]
        return width, rows * 2 // 3

    def clip_of(self, index: int) -> int:
        return self.samples[index][0]


_EMPTY_TRUTH = FrameTruth(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))


def _read_truth(data_dir: Path) -> dict[str, dict[int, FrameTruth]]:
    path = data_dir / "truth" / "frames.parquet"
    columns = ["camera_id", "frame_index", "cls", "x1", "y1", "x2", "y2", "visible"]
    try:
        table = pq.read_table(path, columns=columns).to_pandas()
    except FileNotFoundError as error:
        raise DatasetError(f"truth not found: {path}") from error
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read truth {path}: {str(error).splitlines()[0]}") from error
    unknown = sorted(set(table["cls"]) - set(CLASS_IDS))
    if unknown:
        raise DatasetError(f"{path} has unknown classes: {', '.join(map(str, unknown[:5]))}")
    table["class_id"] = table["cls"].map(CLASS_IDS).astype(np.int64)
    result: dict[str, dict[int, FrameTruth]] = {}
    for (camera_id, frame_index), rows in table.groupby(["camera_id", "frame_index"], sort=False):
        result.setdefault(str(camera_id), {})[int(frame_index)] = FrameTruth(
            xyxy=rows[["x1", "y1", "x2", "y2"]].to_numpy(np.float32),
            class_id=rows["class_id"].to_numpy(np.int64),
            visible=rows["visible"].to_numpy(np.float32),
        )
    return result


def _cached_frames(
    video_path: Path, cache_dir: Path, *, frame_step: int, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (frames memmap (N, H*3//2, W) uint8, frame indices (N,)) of every `frame_step`-th frame."""
    stat = video_path.stat()
    key = json.dumps([str(video_path), stat.st_size, stat.st_mtime_ns, frame_step, CACHE_FORMAT_VERSION])
    stem = cache_dir / hashlib.sha1(key.encode()).hexdigest()[:16]
    index_path, data_path = stem.with_suffix(".json"), stem.with_suffix(".u8")
    if index_path.is_file() and data_path.is_file():
        meta = json.loads(index_path.read_text())
        frames = np.memmap(data_path, dtype=np.uint8, mode="r", shape=tuple(meta["shape"]))
        return frames, np.asarray(meta["frame_indices"], np.int64)
    if progress:
        progress(f"decoding {video_path} into the frame cache (1 frame in {frame_step})")
    temporary = data_path.with_suffix(".u8.tmp")
    frame_indices: list[int] = []
    shape: tuple[int, int] | None = None
    with open(temporary, "wb") as out:
        for frame_index, _, frame in iter_yuv420_frames(video_path):
            if frame_index % frame_step:
                continue
            if shape is None:
                shape = frame.shape
            elif frame.shape != shape:
                raise DatasetError(f"{video_path} changes frame size at frame {frame_index}")
            out.write(frame.tobytes())
            frame_indices.append(frame_index)
    if shape is None:
        temporary.unlink(missing_ok=True)
        raise DatasetError(f"{video_path} has no frames")
    temporary.replace(data_path)
    full_shape = (len(frame_indices), *shape)
    index_path.write_text(json.dumps({"video": str(video_path), "shape": full_shape, "frame_indices": frame_indices}))
    return np.memmap(data_path, dtype=np.uint8, mode="r", shape=full_shape), np.asarray(frame_indices, np.int64)


def pack_dataset(data_dir: str | Path, out_dir: str | Path, *, frame_step: int, crf: int = 23, progress: Progress | None = None) -> int:
    """Writes a compact copy of a simulator folder holding one frame in `frame_step`, for training elsewhere.

    The copy follows the same contract (read it with `frame_step=1`): `cameras.yaml` with each camera's url
    at `video/<id>.mp4`, those clips re-encoded from the kept frames only (H.264 at `crf`), and
    `truth/frames.parquet` of the kept frames, `frame_index` renumbered to the row in the packed clip and
    `source_frame_index` added. One frame a second of an 8-camera, 2-minute seed is about 3 MB at crf 23
    instead of 37 MB of video: small enough to send to a GPU machine behind a transfer limit.

    Returns:
        Frames written.

    Raises:
        DatasetError: unreadable folder, clip or truth.
    """
    import av
    import pyarrow as pa
    import pyarrow.compute as pc

    if frame_step < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    source, target = Path(data_dir), Path(out_dir)
    clips = read_clips(source)[1]
    inventory = yaml.safe_load((source / "cameras.yaml").read_text())
    try:
        truth = pq.read_table(source / "truth" / "frames.parquet")
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read truth in {source}: {str(error).splitlines()[0]}") from error
    (target / "video").mkdir(parents=True, exist_ok=True)
    (target / "truth").mkdir(parents=True, exist_ok=True)
    packed_truth, written = [], 0
    for camera, clip in zip(inventory["cameras"], clips):
        if progress:
            progress(f"packing {clip.video_path} (1 frame in {frame_step}, crf {crf})")
        kept: list[int] = []
        with av.open(str(target / "video" / f"{clip.camera_id}.mp4"), mode="w") as container:
            stream = None
            for frame_index, _, frame in iter_yuv420_frames(clip.video_path):
                if frame_index % frame_step:
                    continue
                if stream is None:
                    stream = container.add_stream("libx264", rate=25)
                    stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0] * 2 // 3, "yuv420p"
                    stream.options = {"crf": str(crf), "preset": "medium"}
                picture = av.VideoFrame.from_ndarray(frame, format="yuv420p")
                picture.pts = len(kept)
                container.mux(stream.encode(picture))
                kept.append(frame_index)
            if stream is not None:
                container.mux(stream.encode(None))
        camera["url"] = f"video/{clip.camera_id}.mp4"
        rows = truth.filter(pc.equal(truth["camera_id"], clip.camera_id))
        rows = rows.filter(pc.is_in(rows["frame_index"], pa.array(kept, pa.int64())))
        renumber = {source_index: row for row, source_index in enumerate(kept)}
        source_index = rows["frame_index"].to_numpy()
        rows = rows.set_column(rows.schema.get_field_index("frame_index"), "frame_index", pa.array([renumber[int(i)] for i in source_index], pa.int64()))
        packed_truth.append(rows.append_column("source_frame_index", pa.array(source_index, pa.int64())))
        written += len(kept)
    pq.write_table(pa.concat_tables(packed_truth), target / "truth" / "frames.parquet")
    (target / "cameras.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    return written
