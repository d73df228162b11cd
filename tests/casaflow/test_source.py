"""Pins the frame-source contract: one frame per analysis slot chosen by timestamp (constant or variable
frame rate), YUV420 planes in the layout of `to_ndarray()`, `ts = start_time + pts` for files, real-time
pacing on request, capped and jittered reconnection backoff, failures reported in `state` (never raised out
of the iterator), a packet ring bounded by time, and evidence clips remuxed from the ring that start on a
keyframe and decode."""

import random
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import av
import numpy as np
import pytest

from casaflow.source import (
    AnalysisSampler,
    EncodedPacket,
    Frame,
    FrameSource,
    MemorySource,
    PacketRing,
    PyAVSource,
    RetryPolicy,
    redact_url,
    write_clip,
    yuv420_planes,
)

START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
WIDTH, HEIGHT = 160, 96


def luma_of(index: int) -> int:
    return 20 + 2 * index


def index_of(yuv: np.ndarray) -> int:
    return round((float(yuv[:HEIGHT].mean()) - 20) / 2)


def encode_clip(path, pts_ms: list[int], *, gop: int = 10) -> str:
    """Writes an H.264 MP4 whose frame i is flat grey `luma_of(i)` with a moving square, at the given pts."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.gop_size = gop
        stream.options = {"bf": "0", "sc_threshold": "0", "preset": "ultrafast"}
        for i, pts in enumerate(pts_ms):
            yuv = np.full((HEIGHT * 3 // 2, WIDTH), 128, np.uint8)
            yuv[:HEIGHT] = luma_of(i)
            x = (4 * i) % (WIDTH - 16)
            yuv[40:56, x:x + 16] = luma_of(i) + 10
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


@pytest.fixture(scope="module")
def clip_25fps(tmp_path_factory) -> str:
    """4 s at 25 fps, GOP 10 (a keyframe every 0.4 s)."""
    return encode_clip(tmp_path_factory.mktemp("clips") / "cam.mp4", [40 * i for i in range(100)])


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now_s = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds


def make_source(url: str, **kwargs) -> PyAVSource:
    fake = kwargs.pop("fake", None) or FakeTime()
    kwargs.setdefault("analysis_fps", None)
    kwargs.setdefault("hwaccel", "none")
    return PyAVSource("cam01", url, start_time=START, clock=fake.clock, sleep=fake.sleep,
                      rng=random.Random(7), **kwargs)


def test_keeps_every_fifth_frame_of_25fps_at_5fps(clip_25fps):
    source = make_source(clip_25fps, analysis_fps=5)
    frames = list(source)
    assert [f.frame_index for f in frames] == list(range(0, 100, 5))
    assert [index_of(f.yuv) for f in frames] == list(range(0, 100, 5))
    assert [f.ts for f in frames] == [START + timedelta(seconds=0.2 * k) for k in range(20)]
    state = source.state
    assert (state.status, state.frames_decoded, state.frames_kept, state.frames_dropped) == ("ended", 100, 20, 80)
    assert state.last_frame_ts == frames[-1].ts
    assert isinstance(source, FrameSource)


@pytest.mark.parametrize(
    ("pts_ms", "kept_ms"),
    [
        ([0, 30, 90, 150, 210, 260, 330, 400, 410, 420, 600, 610, 800, 1000],
         [0, 210, 400, 600, 800, 1000]),
        ([0, 199, 200, 201, 399, 1000, 1100, 1190, 1210], [0, 200, 1000, 1210]),
    ],
    ids=["jittery", "boundaries-and-gap"],
)
def test_variable_frame_rate_is_sampled_by_time(tmp_path, pts_ms, kept_ms):
    source = make_source(encode_clip(tmp_path / "vfr.mp4", pts_ms), analysis_fps=5)
    assert [f.ts for f in source] == [START + timedelta(milliseconds=ms) for ms in kept_ms]


def test_sampler_never_goes_back_to_an_earlier_slot():
    sampler = AnalysisSampler(5)
    assert [sampler.keep(t) for t in (0.0, 0.5, 0.3, 0.61, 0.79, 0.8)] == [True, True, False, True, False, True]


def test_yuv_planes_match_to_ndarray(clip_25fps):
    frames = list(make_source(clip_25fps))
    with av.open(clip_25fps) as container:
        reference = [f.to_ndarray() for f in container.decode(video=0)]
    assert len(frames) == len(reference) == 100
    for frame, expected in zip(frames, reference, strict=True):
        assert frame.yuv.dtype == np.uint8 and frame.yuv.shape == (HEIGHT * 3 // 2, WIDTH)
        np.testing.assert_array_equal(frame.yuv, expected)
    assert (frames[0].width, frames[0].height) == (WIDTH, HEIGHT)


@pytest.mark.parametrize("pix_fmt", ["nv12", "yuvj420p", "yuv422p"])
def test_other_pixel_formats_become_yuv420_planes(pix_fmt):
    rng = np.random.default_rng(0)
    planes = rng.integers(16, 235, (HEIGHT * 3 // 2, WIDTH), dtype=np.uint8)
    planes[HEIGHT:] = 128
    source = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    converted = yuv420_planes(source.reformat(format=pix_fmt))
    assert converted.shape == planes.shape and converted.dtype == np.uint8
    if pix_fmt == "nv12":
        np.testing.assert_array_equal(converted, planes)
    else:
        np.testing.assert_allclose(converted[:HEIGHT], planes[:HEIGHT], atol=40)


@pytest.mark.parametrize(
    ("make_url", "reason_part"),
    [
        (lambda tmp: str(tmp / "missing.mp4"), "No such file"),
        (lambda tmp: _write(tmp / "corrupt.mp4", np.random.default_rng(1).bytes(20_000)), "Error"),
        (lambda tmp: "ftp://camera.local/stream", "unsupported URL scheme 'ftp'"),
    ],
    ids=["missing", "corrupt", "bad-scheme"],
)
def test_broken_inputs_end_failed_with_a_reason(tmp_path, make_url, reason_part):
    fake = FakeTime()
    source = make_source(make_url(tmp_path), fake=fake, retry=RetryPolicy(initial_s=0.5, max_s=2, max_attempts=3))
    assert list(source) == []
    state = source.state
    assert state.status == "failed"
    assert reason_part in state.reason and "\n" not in state.reason
    if "scheme" in reason_part:
        assert fake.sleeps == []
    else:
        assert state.attempts == 3 and len(fake.sleeps) == 2


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_backoff_is_capped_exponential_with_full_jitter(tmp_path):
    fake = FakeTime()
    policy = RetryPolicy(initial_s=1.0, max_s=8.0, max_attempts=9)
    source = make_source(str(tmp_path / "nope.mp4"), fake=fake, retry=policy)
    list(source)
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert len(fake.sleeps) == len(ceilings)
    assert all(0 <= s <= c for s, c in zip(fake.sleeps, ceilings, strict=True))
    assert len(set(fake.sleeps)) == len(fake.sleeps)
    draws = np.array([policy.delay_s(10, random.Random(i)) for i in range(2000)])
    assert draws.max() <= 8.0 and draws.min() >= 0.0
    assert abs(draws.mean() - 4.0) < 0.3


class StateRecorder(FakeTime):
    """Records the source's state whenever it sleeps."""

    def __init__(self) -> None:
        super().__init__()
        self.source: PyAVSource | None = None
        self.seen: list[tuple[str, int, float | None]] = []

    def sleep(self, seconds: float) -> None:
        state = self.source.state
        self.seen.append((state.status, state.attempts, state.retry_in_s))
        super().sleep(seconds)


def test_retrying_state_is_observable_during_backoff(tmp_path):
    recorder = StateRecorder()
    source = make_source(str(tmp_path / "nope.mp4"), fake=recorder,
                         retry=RetryPolicy(initial_s=1, max_s=1, max_attempts=3))
    recorder.source = source
    list(source)
    seen = recorder.seen
    assert [(status, attempts) for status, attempts, _ in seen] == [("retrying", 1), ("retrying", 2)]
    assert all(0 <= delay <= 1 for _, _, delay in seen)


def test_realtime_paces_a_file_like_a_camera(clip_25fps):
    fake = FakeTime()
    source = make_source(clip_25fps, analysis_fps=5, realtime=True, fake=fake)
    lags = [fake.now_s - (frame.ts - START).total_seconds() for frame in source]
    assert len(lags) == 20
    np.testing.assert_allclose(lags, 0.0, atol=1e-6)
    assert sum(fake.sleeps) == pytest.approx(3.8)

    fast = FakeTime()
    assert len(list(make_source(clip_25fps, analysis_fps=5, fake=fast))) == 20
    assert fast.sleeps == []


def test_a_live_url_reconnects_after_eof_and_keeps_counting(clip_25fps):
    wall = iter(START + timedelta(milliseconds=10 * i) for i in range(10**6))
    source = make_source(clip_25fps, live=True, now=lambda: next(wall), retry=RetryPolicy(max_attempts=2))
    frames = []
    for frame in source:
        frames.append(frame)
        if len(frames) == 250:
            source.close()
    assert [f.frame_index for f in frames] == list(range(250))
    state = source.state
    assert state.connections == 3 and state.status == "ended" and state.reason == "closed"
    assert all(b.ts > a.ts for a, b in zip(frames[:100], frames[1:100]))


def test_hwaccel_cuda_falls_back_to_the_cpu_by_itself(clip_25fps):
    source = make_source(clip_25fps, analysis_fps=5, hwaccel="cuda")
    frames = list(source)
    assert len(frames) == 20 and source.state.status == "ended"
    assert source.state.hwaccel == "cuda" or source.state.hwaccel_reason


def packet_at(seconds: float, *, keyframe: bool = False, size: int = 100) -> EncodedPacket:
    pts = round(seconds * 1000)
    return EncodedPacket(data=bytes(size), pts=pts, dts=pts, is_keyframe=keyframe, time_base=Fraction(1, 1000),
                         ts=START + timedelta(seconds=seconds))


def test_packet_ring_is_bounded_by_time_and_bytes():
    ring = PacketRing(max_duration_s=1.0)
    for i in range(125):
        ring.push(packet_at(i / 25, keyframe=i % 10 == 0))
    assert ring.duration_s <= 1.0 and len(ring) == 26
    small = PacketRing(max_duration_s=30.0, max_bytes=1000)
    for i in range(50):
        small.push(packet_at(i / 25))
    assert small.nbytes <= 1000 and len(small) == 10


def test_write_clip_starts_on_a_keyframe_and_covers_the_range(clip_25fps, tmp_path):
    source = make_source(clip_25fps, ring_s=30)
    list(source)
    assert source.ring.codec_header is not None and len(source.ring) == 100
    clip = write_clip(source.ring, tmp_path / "evidence.mp4", start_ts=START + timedelta(seconds=1.3),
                      end_ts=START + timedelta(seconds=2.5))
    assert clip.start_ts == START + timedelta(seconds=1.2) and clip.packets == 33
    with av.open(str(clip.path)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 33
    assert decoded[0].key_frame
    assert [index_of(f.to_ndarray()) for f in decoded] == list(range(30, 63))
    assert decoded[-1].time - decoded[0].time == pytest.approx(1.28, abs=1e-3)


def test_write_clip_refuses_an_empty_ring(tmp_path):
    with pytest.raises(ValueError, match="no keyframe"):
        write_clip(PacketRing(), tmp_path / "x.mp4", start_ts=START, end_ts=START)


def test_memory_source_samples_by_time_and_can_fail():
    frames = [Frame.blank("cam01", i, ts=START + timedelta(milliseconds=40 * i), width=32, height=16)
              for i in range(50)]
    source = MemorySource("cam01", frames, analysis_fps=5, fail_reason="camera unplugged")
    kept = list(source)
    assert [f.frame_index for f in kept] == list(range(0, 50, 5))
    state = source.state
    assert (state.status, state.reason, state.frames_kept, state.frames_dropped) == ("failed", "camera unplugged", 10, 40)
    assert isinstance(source, FrameSource)
    assert kept[0].yuv.shape == (24, 32) and kept[0].height == 16


def test_reasons_never_carry_camera_credentials():
    url = "rtsp://admin:s3cret@127.0.0.1:1/stream?token=abc"
    source = make_source(url, retry=RetryPolicy(initial_s=0.0, max_s=0.0, max_attempts=1), open_timeout_s=1.0)
    assert list(source) == []
    assert source.state.status == "failed"
    assert "s3cret" not in source.state.reason and "abc" not in source.state.reason
    assert redact_url(url) == "rtsp://***@127.0.0.1:1/stream?***"
    assert redact_url("video/cam01.mp4") == "video/cam01.mp4"
